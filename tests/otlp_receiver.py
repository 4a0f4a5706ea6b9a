#!/usr/bin/env python3
"""An OTLP/HTTP receiver for the tests: decodes what evalwatch sends with the OpenTelemetry
project's own protobuf definitions (the `opentelemetry-proto` package), protobuf or JSON, gzip
or not, and keeps what it decoded.

    python tests/otlp_receiver.py --port-file PATH [--refuse-first N] [--refuse-status 503]

POST /v1/logs, /v1/metrics: the first N requests are answered `--refuse-status` (a collector
restarting), the rest decoded and answered 200 with an empty Export*ServiceResponse.
GET /received: JSON {"requests", "refused", "content_types", "headers", "events", "points"}: every
log record as {event_name, time, severity, attributes}, every metric data point as
{name, unit, kind, attributes, value | count, sum}.
"""
import argparse
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest, ExportLogsServiceResponse)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest, ExportMetricsServiceResponse)

LOCK = threading.Lock()
STATE = {"requests": 0, "refused": 0, "content_types": [], "headers": [], "events": [],
         "points": [], "errors": []}


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes(kvs):
    return {kv.key: value_of(kv.value) for kv in kvs}


def decode(message, body, content_type):
    if content_type.startswith("application/json"):
        json_format.Parse(body.decode("utf-8"), message)
    else:
        message.ParseFromString(body)
    return message


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        with LOCK:
            body = json.dumps(STATE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        content_type = self.headers.get("Content-Type", "")
        with LOCK:
            STATE["requests"] += 1
            refuse = STATE["requests"] <= ARGS.refuse_first
            if refuse:
                STATE["refused"] += 1
        if refuse:
            self.send_response(ARGS.refuse_status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path == "/v1/logs":
                request = decode(ExportLogsServiceRequest(), body, content_type)
                events = []
                for rl in request.resource_logs:
                    resource = attributes(rl.resource.attributes)
                    for sl in rl.scope_logs:
                        for r in sl.log_records:
                            events.append({"event_name": r.event_name,
                                           "time": r.time_unix_nano,
                                           "severity": r.severity_number,
                                           "service": resource.get("service.name"),
                                           "scope": sl.scope.name,
                                           "attributes": attributes(r.attributes)})
                reply = ExportLogsServiceResponse()
                with LOCK:
                    STATE["events"].extend(events)
            elif self.path == "/v1/metrics":
                request = decode(ExportMetricsServiceRequest(), body, content_type)
                points = []
                for rm in request.resource_metrics:
                    for sm in rm.scope_metrics:
                        for m in sm.metrics:
                            kind = m.WhichOneof("data")
                            for p in getattr(m, kind).data_points:
                                point = {"name": m.name, "unit": m.unit, "kind": kind,
                                         "time": p.time_unix_nano,
                                         "attributes": attributes(p.attributes)}
                                if kind == "summary":
                                    point.update(count=p.count, sum=p.sum)
                                else:
                                    point["value"] = p.as_double
                                points.append(point)
                reply = ExportMetricsServiceResponse()
                with LOCK:
                    STATE["points"].extend(points)
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        except Exception as e:  # a body that does not decode is a test failure: keep why
            with LOCK:
                STATE["errors"].append(f"{self.path}: {e!r}")
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with LOCK:
            STATE["content_types"].append(content_type)
            STATE["headers"].append({k.lower(): v for k, v in self.headers.items()})
        out = reply.SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--refuse-first", type=int, default=0)
    parser.add_argument("--refuse-status", type=int, default=503)
    ARGS = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(ARGS.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.replace(ARGS.port_file + ".tmp", ARGS.port_file)
    server.serve_forever()
