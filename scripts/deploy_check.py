#!/usr/bin/env python3
"""Reads the shipped deployment files with the parsers and validators their engines use.

  deploy_check.py workloads FILE.yaml   Prints, as JSON, every CronJob/Job container in a
                                        Kubernetes manifest: its name, args, env, mounts and
                                        whether its Job is Indexed (with completions). Needs
                                        PyYAML.
  deploy_check.py batch JOBDEF SUBMIT.. Validates an AWS Batch job definition and submit-job
                                        inputs against botocore's `batch` service model (the
                                        model `aws batch ... --cli-input-json` validates with).
                                        Exits 1 naming every error.
"""
import json
import sys


def workloads(path):
    import yaml

    out = []
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if not doc or doc.get("kind") not in ("CronJob", "Job"):
                continue
            job = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
            pod = job["template"]["spec"]
            for c in pod["containers"]:
                out.append({
                    "name": doc["metadata"]["name"],
                    "indexed": job.get("completionMode") == "Indexed",
                    "completions": job.get("completions", 1),
                    "args": c.get("args", []),
                    "env": {e["name"]: e.get("value", "") for e in c.get("env", [])},
                    "mounts": [m["mountPath"] for m in c.get("volumeMounts", [])],
                })
    print(json.dumps(out))


def batch(jobdef, submits):
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("batch")
    failed = False
    checks = [("RegisterJobDefinition", jobdef)] + [("SubmitJob", s) for s in submits]
    for operation, path in checks:
        with open(path) as f:
            params = json.load(f)
        shape = model.operation_model(operation).input_shape
        report = ParamValidator().validate(params, shape)
        if report.has_errors():
            failed = True
            print(f"{path} ({operation}): {report.generate_report()}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "workloads":
        workloads(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "batch":
        batch(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
