#!/bin/sh
# Submits one nightly evalwatch run to AWS Batch: the map step as an array job (one child per
# shard; each reads AWS_BATCH_JOB_ARRAY_INDEX and AWS_BATCH_JOB_ARRAY_SIZE), then the reduce
# step as a job that depends on the whole array (AWS Batch starts it once every child succeeded,
# and fails it if one did not). Run it from your scheduler (EventBridge Scheduler, cron, CI).
#
# Once: aws batch register-job-definition --cli-input-json file://job-definition.json
# The array size in map-job.json and `--shards` in reduce-job.json must agree.
set -eu
cd "$(dirname "$0")"
map=$(aws batch submit-job --cli-input-json file://map-job.json --query jobId --output text)
echo "map: $map"
reduce=$(aws batch submit-job --cli-input-json file://reduce-job.json \
    --depends-on "jobId=$map" --query jobId --output text)
echo "reduce: $reduce (after $map)"
