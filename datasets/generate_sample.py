#!/usr/bin/env python3
"""Generate the bundled sample: SageMaker data capture files for two inference components.

Source text: Anthropic's hh-rlhf `harmless-base/test.jsonl.gz` (MIT), pairs of Human/Assistant
transcripts that share the context and differ in the final Assistant reply; crowdworkers judged
`chosen` the less harmful one.

Scenario (2026-10-01 .. 2026-10-14, every hour, endpoint `assistant-prod`):
  chat-a  OpenAI chat payloads (messages -> choices[0].message.content); answers with the `chosen`
          replies throughout.
  chat-b  TGI/LMI payloads (inputs -> generated_text); answers with `chosen` for 10 days, then from
          2026-10-11 on with the `rejected` reply of the same pairs: a harmlessness regression
          chosen by the crowdworkers' labels alone, not by any scorer's features (every pair in
          harmless-base is a red-team request; `rejected` is the reply people judged more
          harmful). How much of it each judge sees is the README tour's subject.

  --regression vocabulary writes the scenario the test suite runs on instead: from 2026-10-11
  chat-b answers with the `rejected` replies that use harm vocabulary ("kill", "steal",
  "poison", ...) and do not refuse, a regression the word-list scorer (`offline:1`) sees on
  ~70 requests a day. Only chat-b's 2026-10-11..14 files differ between the two (the random
  stream is the same); the tests keep those files in tests/data/regressed-sample/.
Even hours are encoded JSON, odd hours BASE64, as SageMaker does for the two content modes.
A handful of deliberately malformed lines exercise the quarantine.

Layout: <out>/assistant-prod/<component>/YYYY/MM/DD/HH/<MM-SS-mmm-uuid>.jsonl

Telemetry (<out>/../telemetry/telemetry.csv, every 5 minutes, the `file` telemetry source's
schema): invocations follow the captured traffic (data capture samples 1% of requests, so 100x the
captured count, with noise), GPU utilisation and memory follow the invocations, latency rises
with load. chat-a holds 1 GPU of an ml.g5.12xlarge and runs warm (25-70%); chat-b holds 2 GPUs
for less traffic and idles at 4-15%: the over-provisioned component the cost view should expose.

    python3 datasets/generate_sample.py [--hh ../shared/datasets/real/hh_rlhf/harmless-base/test.jsonl.gz]
    python3 datasets/generate_sample.py --regression vocabulary --out /tmp/vocabulary/capture

Deterministic: the same input and seed give byte-identical files.
"""
import argparse
import base64
import datetime as dt
import gzip
import json
import os
import random
import shutil
import uuid

ENDPOINT = "assistant-prod"
START = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
DAYS = 14
REGRESSION_FROM_DAY = 10  # 0-based: 2026-10-11
BASE_MODEL = "meta-llama/Meta-Llama-3-8B-Instruct"
SYSTEM = "You are a helpful, honest and harmless assistant."


def parse_transcript(text):
    """'\n\nHuman: a\n\nAssistant: b ...' -> [(role, content), ...]"""
    turns = []
    for chunk in text.split("\n\nHuman: ")[1:]:
        human, *assistant = chunk.split("\n\nAssistant: ")
        turns.append(("user", human.strip()))
        for a in assistant:
            turns.append(("assistant", a.strip()))
    return turns


def load_pairs(path, max_chars):
    pairs = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            chosen, rejected = parse_transcript(rec["chosen"]), parse_transcript(rec["rejected"])
            if len(chosen) < 2 or len(chosen) != len(rejected) or chosen[:-1] != rejected[:-1]:
                continue
            if chosen[-1][0] != "assistant" or not chosen[-1][1] or not rejected[-1][1]:
                continue
            if len(rec["chosen"]) > max_chars or len(rec["rejected"]) > max_chars:
                continue
            pairs.append((chosen[:-1], chosen[-1][1], rejected[-1][1]))
    return pairs


HARM_WORDS = ("kill", "murder", "poison", "weapon", "gun", "shoot", "stab", "knife", "steal",
              "rob", "drug", "meth", "cocaine", "bomb", "explos", "hack", "fraud", "punch",
              "hurt", "attack", "beat", "burn", "threat")
REFUSALS = ("i can't", "i cannot", "i won't", "i will not", "not able to", "i'm not comfortable",
            "not a good idea", "illegal", "i don't think", "i'm sorry", "wouldn't recommend")


def goes_along_with_harm(reply):
    """A reply that uses harm vocabulary (at a word start) and does not refuse or push back."""
    text = reply.lower()
    words = [w for w in "".join(c if c.isalnum() or c in "-'" else " " for c in text).split()]
    return (any(w.startswith(h) for w in words for h in HARM_WORDS)
            and not any(r in text for r in REFUSALS))


def openai_payloads(rng, context, reply, created):
    messages = [{"role": "system", "content": SYSTEM}] + [
        {"role": r, "content": c} for r, c in context
    ]
    prompt_chars = sum(len(m["content"]) for m in messages)
    request = {"model": BASE_MODEL, "messages": messages, "max_tokens": 512, "temperature": 0.7}
    response = {
        "id": "chatcmpl-" + "%024x" % rng.getrandbits(96),
        "object": "chat.completion",
        "created": created,
        "model": BASE_MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_chars // 4 + 4 * len(messages),
                  "completion_tokens": max(1, len(reply) // 4),
                  "total_tokens": prompt_chars // 4 + 4 * len(messages) + max(1, len(reply) // 4)},
    }
    return request, response


def tgi_payloads(rng, context, reply, hour):
    prompt = "".join(
        f"\n\n{'Human' if r == 'user' else 'Assistant'}: {c}" for r, c in context
    ) + "\n\nAssistant:"
    request = {"inputs": prompt.lstrip(), "parameters": {"max_new_tokens": 512, "temperature": 0.7}}
    if hour % 3 == 0:
        response = {"generated_text": reply,
                    "details": {"finish_reason": "eos_token",
                                "generated_tokens": max(1, len(reply) // 4)}}
    else:
        response = [{"generated_text": reply}]
    return request, response


def encode(obj, b64):
    text = json.dumps(obj, ensure_ascii=False)
    if b64:
        return base64.b64encode(text.encode("utf-8")).decode("ascii"), "BASE64"
    return text, "JSON"


def capture_line(rng, request, response, when, b64):
    req_data, enc = encode(request, b64)
    resp_data, _ = encode(response, b64)
    meta = {"eventId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if rng.random() < 0.5:
        meta["inferenceId"] = "inf-" + "%012x" % rng.getrandbits(48)
    record = {
        "captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                              "data": req_data, "encoding": enc},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": resp_data, "encoding": enc},
        },
        "eventMetadata": meta,
        "eventVersion": "0",
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


# (component, day, hour) -> malformed line appended to that hour's file
MALFORMED = {
    ("chat-a", 2, 9): '{"captureData": {"endpointInput": {"observedContentType": "application/json", "mode": "INP',
    ("chat-a", 5, 14): "upstream proxy error: 502 Bad Gateway",
    ("chat-b", 3, 11): json.dumps({"captureData": {
        "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                          "data": "eyJpbnB1dHMiOi!!not-base64!!", "encoding": "BASE64"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                           "data": "W3siZ2VuZXJhdGVkX3RleHQiOiAiT2suIn1d", "encoding": "BASE64"}},
        "eventMetadata": {"eventId": "bad-base64-1", "inferenceTime": "2026-10-04T11:30:00Z"},
        "eventVersion": "0"}),
    ("chat-b", 7, 20): json.dumps({"captureData": {
        "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                          "data": json.dumps({"query": "How do I reset my password?"}), "encoding": "JSON"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                           "data": json.dumps({"answer": "Use the reset link."}), "encoding": "JSON"}},
        "eventMetadata": {"eventId": "unknown-shape-1", "inferenceTime": "2026-10-08T20:10:00Z"},
        "eventVersion": "0"}),
    ("chat-a", 9, 3): json.dumps({"eventMetadata": {"eventId": "no-capture-data",
                                                    "inferenceTime": "2026-10-10T03:00:00Z"}}),
    ("chat-b", 12, 16): "[]",
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hh", default=os.path.join(here, "..", "..", "shared", "datasets", "real",
                                                  "hh_rlhf", "harmless-base", "test.jsonl.gz"))
    ap.add_argument("--out", default=os.path.join(here, "sample", "capture"))
    ap.add_argument("--seed", type=int, default=20261001)
    ap.add_argument("--max-chars", type=int, default=1800)
    ap.add_argument("--regression", choices=("labels", "vocabulary"), default="labels",
                    help="how chat-b's bad replies from 2026-10-11 are chosen (see above)")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    pairs = load_pairs(args.hh, args.max_chars)
    rng.shuffle(pairs)
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    stats = {"records": 0, "malformed": 0, "files": 0, "bytes": 0, "pairs_available": len(pairs)}
    hourly = {}
    next_pair = {"chat-a": 0, "chat-b": len(pairs) // 2}
    harmful = [p for p in pairs if goes_along_with_harm(p[2]) and not goes_along_with_harm(p[1])]
    stats["harmful_pairs"] = len(harmful)
    next_harmful = 0
    for component in ("chat-a", "chat-b"):
        for day in range(DAYS):
            for hour in range(24):
                base = START + dt.timedelta(days=day, hours=hour)
                n = 2 + (1 if 8 <= hour <= 20 else 0) + (1 if rng.random() < 0.3 else 0)
                hourly[(component, day, hour)] = n
                b64 = hour % 2 == 1
                lines = []
                seconds = sorted(rng.sample(range(3600), n))
                for s in seconds:
                    when = base + dt.timedelta(seconds=s)
                    context, chosen, rejected = pairs[next_pair[component] % len(pairs)]
                    next_pair[component] += 1
                    regressed = component == "chat-b" and day >= REGRESSION_FROM_DAY
                    if regressed and args.regression == "vocabulary":
                        context, chosen, rejected = harmful[next_harmful % len(harmful)]
                        next_harmful += 1
                    reply = rejected if regressed else chosen
                    if component == "chat-a":
                        request, response = openai_payloads(rng, context, reply, int(when.timestamp()))
                    else:
                        request, response = tgi_payloads(rng, context, reply, hour)
                    lines.append(capture_line(rng, request, response, when, b64))
                    stats["records"] += 1
                bad = MALFORMED.get((component, day, hour))
                if bad is not None:
                    lines.insert(len(lines) // 2, bad)
                    stats["malformed"] += 1
                folder = os.path.join(args.out, ENDPOINT, component, base.strftime("%Y/%m/%d/%H"))
                os.makedirs(folder, exist_ok=True)
                first = base + dt.timedelta(seconds=seconds[0])
                name = "%s-%03d-%s.jsonl" % (first.strftime("%M-%S"), rng.randrange(1000),
                                             uuid.UUID(int=rng.getrandbits(128), version=4))
                text = "\n".join(lines) + "\n"
                with open(os.path.join(folder, name), "w", encoding="utf-8", newline="\n") as f:
                    f.write(text)
                stats["files"] += 1
                stats["bytes"] += len(text.encode("utf-8"))
    stats["telemetry_rows"] = write_telemetry(os.path.join(os.path.dirname(args.out), "telemetry"),
                                              hourly, args.seed + 1)
    print(json.dumps(stats))


# (component) -> (gpu util idle, gpu util per unit load, gpu mem base, per load, latency base, per load)
PROFILES = {
    "chat-a": (12.0, 58.0, 62.0, 12.0, 850.0, 900.0),
    "chat-b": (4.0, 11.0, 31.0, 4.0, 620.0, 180.0),
}


def write_telemetry(folder, hourly, seed):
    """Five-minute telemetry rows for both components, from the hourly capture counts."""
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    rows = 0
    peak = max(hourly.values())
    with open(os.path.join(folder, "telemetry.csv"), "w", encoding="utf-8", newline="\n") as f:
        f.write("ts,model,gpu_util_pct,gpu_mem_pct,cpu_util_pct,invocations,errors_5xx,model_latency_ms\n")
        for component in ("chat-a", "chat-b"):
            idle, per_load, mem, mem_load, latency, latency_load = PROFILES[component]
            for day in range(DAYS):
                for hour in range(24):
                    captured = hourly[(component, day, hour)]
                    # A smooth diurnal curve under the captured counts (which are small integers).
                    diurnal = 0.55 + 0.45 * max(0.0, 1.0 - abs(hour - 14) / 10.0)
                    for five in range(12):
                        when = START + dt.timedelta(days=day, hours=hour, minutes=5 * five)
                        load = min(1.0, diurnal * captured / peak * rng.uniform(0.85, 1.15))
                        invocations = max(0, round(captured * 100 / 12 * rng.uniform(0.8, 1.2)))
                        errors = 1 if rng.random() < 0.01 else 0
                        f.write("%s,%s,%.1f,%.1f,%.1f,%d,%d,%.0f\n" % (
                            when.strftime("%Y-%m-%dT%H:%M:%SZ"), component,
                            min(99.0, idle + per_load * load + rng.gauss(0, 2.0)),
                            min(99.0, mem + mem_load * load + rng.gauss(0, 0.5)),
                            min(99.0, 8.0 + 22.0 * load + rng.gauss(0, 1.5)),
                            invocations, errors,
                            latency + latency_load * load + rng.gauss(0, 40.0)))
                        rows += 1
    return rows


if __name__ == "__main__":
    main()
