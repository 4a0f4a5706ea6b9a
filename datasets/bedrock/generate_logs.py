#!/usr/bin/env python3
"""Write a small Amazon Bedrock model invocation log sample, as Bedrock delivers it to S3.

Source text: the committed hh-rlhf harmless pairs (`datasets/pairs/hh_rlhf_harmless.labels.jsonl`,
Anthropic, MIT: `datasets/sample/LICENSE-hh-rlhf`): each record's request is a pair's conversation
and its reply one of the pair's two replies. Nothing here was produced by the Bedrock models
named; the records only take the shapes those models' request and response bodies have.

Layout (what Bedrock writes under the logging configuration's S3 prefix):

    AWSLogs/<account>/BedrockModelInvocationLogs/<region>/yyyy/mm/dd/hh/<timestamp>_<id>.json.gz

one gzip file per hour, one JSON record per line (`schemaType` "ModelInvocationLog"). The five
body shapes evalwatch decodes, one model each:

    anthropic.claude-3-haiku-20240307-v1:0         operation Converse (messages of content blocks)
    us.anthropic.claude-3-5-sonnet-20240620-v1:0   InvokeModel, Anthropic Messages (an inference profile)
    amazon.titan-text-express-v1                   InvokeModel, Titan text (inputText -> results)
    meta.llama3-8b-instruct-v1:0                   InvokeModel, Llama (prompt -> generation)
    amazon.nova-lite-v1:0                          InvokeModel, Nova (messages -> output.message)

Besides them: one Converse record whose request body went to a separate object (over Bedrock's
inline limit: `inputBodyS3Path`, written under `large-data/` beside `AWSLogs/`, for a bucket named
`bedrock-logs`), one failed invocation (`errorCode`, no output) and one truncated line.

    python3 datasets/bedrock/generate_logs.py      # rewrites datasets/bedrock/{AWSLogs,large-data}

Deterministic: gzip headers carry no time, so the same input gives byte-identical files.
"""
import datetime as dt
import gzip
import io
import json
import os
import random
import shutil
import uuid

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "bedrock-logs"
START = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
DAYS = 3
HOURS = (9, 13, 17)
MODELS = [
    ("anthropic.claude-3-haiku-20240307-v1:0", "Converse"),
    ("us.anthropic.claude-3-5-sonnet-20240620-v1:0", "InvokeModel"),
    ("amazon.titan-text-express-v1", "InvokeModel"),
    ("meta.llama3-8b-instruct-v1:0", "InvokeModel"),
    ("amazon.nova-lite-v1:0", "InvokeModel"),
]
SYSTEM = "You are a helpful, honest and harmless assistant."


def turns(transcript):
    """'Human: a\n\nAssistant: b\n\nHuman: c' -> [("user", "a"), ("assistant", "b"), ("user", "c")]"""
    out = []
    for chunk in ("\n\n" + transcript).split("\n\nHuman: ")[1:]:
        human, *assistant = chunk.split("\n\nAssistant: ")
        out.append(("user", human.strip()))
        out.extend(("assistant", a.strip()) for a in assistant if a.strip())
    return [t for t in out if t[1]]


def tokens(text):
    return max(1, len(text) // 4)


def bodies(model, conversation, reply, rng):
    """The request and response bodies of `model`'s API."""
    prompt_tokens = sum(tokens(t) for _, t in conversation)
    completion_tokens = tokens(reply)
    if model.startswith("anthropic."):  # Converse
        request = {"messages": [{"role": r, "content": [{"text": t}]} for r, t in conversation],
                   "system": [{"text": SYSTEM}],
                   "inferenceConfig": {"maxTokens": 512, "temperature": 0.7}}
        response = {"output": {"message": {"role": "assistant", "content": [{"text": reply}]}},
                    "stopReason": "end_turn",
                    "metrics": {"latencyMs": 300 + 9 * completion_tokens + rng.randrange(200)},
                    "usage": {"inputTokens": prompt_tokens, "outputTokens": completion_tokens,
                              "totalTokens": prompt_tokens + completion_tokens}}
    elif model.startswith("us.anthropic."):  # Anthropic Messages through InvokeModel
        request = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 512, "system": SYSTEM,
                   "messages": [{"role": r, "content": t if i % 2 else [{"type": "text", "text": t}]}
                                for i, (r, t) in enumerate(conversation)]}
        response = {"id": "msg_bdrk_" + "%024x" % rng.getrandbits(96), "type": "message",
                    "role": "assistant", "model": "claude-3-5-sonnet-20240620",
                    "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn",
                    "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens}}
    elif model.startswith("amazon.titan"):
        text = "\n".join(("User: " if r == "user" else "Bot: ") + t for r, t in conversation) + "\nBot:"
        request = {"inputText": text, "textGenerationConfig": {"maxTokenCount": 512, "temperature": 0.7}}
        response = {"inputTextTokenCount": prompt_tokens,
                    "results": [{"tokenCount": completion_tokens, "outputText": " " + reply,
                                 "completionReason": "FINISH"}]}
    elif model.startswith("meta.llama3"):
        text = "<|begin_of_text|>" + "".join(
            f"<|start_header_id|>{r}<|end_header_id|>\n\n{t}<|eot_id|>" for r, t in conversation
        ) + "<|start_header_id|>assistant<|end_header_id|>\n\n"
        request = {"prompt": text, "max_gen_len": 512, "temperature": 0.7}
        response = {"generation": reply, "prompt_token_count": prompt_tokens,
                    "generation_token_count": completion_tokens, "stop_reason": "stop"}
    else:  # Nova through InvokeModel
        request = {"schemaVersion": "messages-v1", "system": [{"text": SYSTEM}],
                   "messages": [{"role": r, "content": [{"text": t}]} for r, t in conversation],
                   "inferenceConfig": {"maxTokens": 512}}
        response = {"output": {"message": {"role": "assistant", "content": [{"text": reply}]}},
                    "stopReason": "end_turn",
                    "usage": {"inputTokens": prompt_tokens, "outputTokens": completion_tokens,
                              "totalTokens": prompt_tokens + completion_tokens}}
    return request, response, prompt_tokens, completion_tokens


def record(model, operation, when, request_id, request, response, prompt_tokens, completion_tokens):
    return {
        "schemaType": "ModelInvocationLog", "schemaVersion": "1.0",
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "accountId": ACCOUNT,
        "identity": {"arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/chat-service/session"},
        "region": REGION, "requestId": request_id, "operation": operation, "modelId": model,
        "input": {"inputContentType": "application/json", "inputBodyJson": request,
                  "inputTokenCount": prompt_tokens},
        "output": {"outputContentType": "application/json", "outputBodyJson": response,
                   "outputTokenCount": completion_tokens},
    }


def gz(text):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as f:
        f.write(text.encode("utf-8"))
    return buf.getvalue()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "pairs", "hh_rlhf_harmless.labels.jsonl"), encoding="utf-8") as f:
        pairs = [json.loads(line) for line in f]
    rng = random.Random(20261001)
    for folder in ("AWSLogs", "large-data"):
        shutil.rmtree(os.path.join(here, folder), ignore_errors=True)
    n = 0
    for day in range(DAYS):
        for hour in HOURS:
            base = START + dt.timedelta(days=day, hours=hour)
            lines = []
            for m, (model, operation) in enumerate(MODELS):
                pair = pairs[n % len(pairs)]
                n += 1
                conversation = turns(pair["prompt"])
                reply = pair["response_a"] if rng.random() < 0.5 else pair["response_b"]
                when = base + dt.timedelta(seconds=rng.randrange(3600))
                request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                rec = record(model, operation, when, request_id,
                             *bodies(model, conversation, reply, rng))
                if (day, hour, m) == (1, 13, 0):
                    # Over the inline limit: the request body in its own object.
                    key = f"large-data/{request_id}-input.json.gz"
                    path = os.path.join(here, key)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "wb") as out:
                        out.write(gz(json.dumps(rec["input"].pop("inputBodyJson"))))
                    rec["input"]["inputBodyS3Path"] = f"s3://{BUCKET}/{key}"
                lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
            if (day, hour) == (2, 9):
                failed = record(MODELS[0][0], "Converse", base + dt.timedelta(minutes=7),
                                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                                {"messages": [{"role": "user", "content": [{"text": "hello"}]}]},
                                None, 1, 0)
                del failed["output"]
                failed["errorCode"] = "ThrottlingException"
                lines.append(json.dumps(failed, separators=(",", ":")))
            if (day, hour) == (2, 17):
                lines.insert(2, lines[2][: len(lines[2]) // 2])
            folder = os.path.join(here, "AWSLogs", ACCOUNT, "BedrockModelInvocationLogs", REGION,
                                  base.strftime("%Y/%m/%d/%H"))
            os.makedirs(folder, exist_ok=True)
            name = base.strftime("%Y%m%dT%H%M%SZ") + "_%016x.json.gz" % rng.getrandbits(64)
            with open(os.path.join(folder, name), "wb") as out:
                out.write(gz("\n".join(lines) + "\n"))
    print(json.dumps({"records": n + 1, "truncated": 1, "files": DAYS * len(HOURS)}))


if __name__ == "__main__":
    main()
