#!/usr/bin/env bash
# LocalStack, once its services are ready: the same resources as deploy/aws/template.yaml
# (export bucket, summaries table, the Lambda with its DLQ, the bucket notification that invokes
# it for each new logs/*.parquet object), so the Compose stack runs the real S3 → Lambda →
# DynamoDB path. LocalStack runs the function in a container of its own (it needs the Docker
# socket, mounted by docker-compose.yml), from AWS's python3.11 image.
#
# The function is configured as the template's (runtime python3.11, x86_64, 1024 MB, 300 s), but
# without its layer: LocalStack's free edition applies no Lambda layers, so the zip mounted here is
# `make lambda-zip-localstack`'s, which bundles pyarrow itself (lambda/README.md).
set -euo pipefail

: "${S3_BUCKET:?}" "${DYNAMODB_TABLE:?}"
ZIP=/opt/code/process-daily-logs.zip
HANDLER=${LAMBDA_HANDLER:-process_daily_logs.handler}
CODE_BUCKET=lambda-artifacts
if [[ ! -f "$ZIP" ]]; then
  echo "no Lambda zip at $ZIP: run 'make lambda-zip-localstack' before 'docker compose up' (LAMBDA_ZIP in .env)" >&2
  exit 1
fi
# the deployable zip (`make lambda-zip`) has no pyarrow: every invocation would fail on its import
if command -v python3 >/dev/null &&
  ! python3 -c 'import sys, zipfile; sys.exit("pyarrow/__init__.py" not in zipfile.ZipFile(sys.argv[1]).namelist())' "$ZIP"; then
  echo "the Lambda zip at $ZIP has no pyarrow, and LocalStack applies no layers: build it with" \
    "'make lambda-zip-localstack' (LAMBDA_ZIP in .env)" >&2
  exit 1
fi

awslocal s3api create-bucket --bucket "$S3_BUCKET" >/dev/null
awslocal s3api put-public-access-block --bucket "$S3_BUCKET" \
  --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true

awslocal dynamodb create-table --table-name "$DYNAMODB_TABLE" \
  --attribute-definitions AttributeName=date,AttributeType=S AttributeName=tenant_service,AttributeType=S \
  --key-schema AttributeName=date,KeyType=HASH AttributeName=tenant_service,KeyType=RANGE \
  --billing-mode PAY_PER_REQUEST >/dev/null

dlq_url=$(awslocal sqs create-queue --queue-name process-daily-logs-dlq --query QueueUrl --output text)
dlq_arn=$(awslocal sqs get-queue-attributes --queue-url "$dlq_url" --attribute-names QueueArn \
  --query Attributes.QueueArn --output text)

# the code goes through S3, as the template's does: the zip (~41 MB, pyarrow in it) is close to
# the 50 MB a request may carry directly
awslocal s3api create-bucket --bucket "$CODE_BUCKET" >/dev/null
awslocal s3 cp "$ZIP" "s3://$CODE_BUCKET/process-daily-logs.zip" --only-show-errors
awslocal lambda create-function --function-name process-daily-logs \
  --runtime python3.11 --architectures x86_64 --handler "$HANDLER" \
  --code "S3Bucket=$CODE_BUCKET,S3Key=process-daily-logs.zip" \
  --role arn:aws:iam::000000000000:role/process-daily-logs \
  --timeout 300 --memory-size 1024 \
  --dead-letter-config "TargetArn=$dlq_arn" \
  --environment "Variables={DYNAMODB_TABLE=$DYNAMODB_TABLE,LOG_LEVEL=INFO,AWS_ENDPOINT_URL=http://localstack:4566}" >/dev/null
awslocal lambda wait function-active-v2 --function-name process-daily-logs
awslocal lambda put-function-event-invoke-config --function-name process-daily-logs \
  --maximum-retry-attempts 2 >/dev/null
fn_arn=$(awslocal lambda get-function --function-name process-daily-logs \
  --query Configuration.FunctionArn --output text)

awslocal s3api put-bucket-notification-configuration --bucket "$S3_BUCKET" \
  --notification-configuration "{
    \"LambdaFunctionConfigurations\": [{
      \"LambdaFunctionArn\": \"$fn_arn\",
      \"Events\": [\"s3:ObjectCreated:*\"],
      \"Filter\": {\"Key\": {\"FilterRules\": [
        {\"Name\": \"prefix\", \"Value\": \"logs/\"},
        {\"Name\": \"suffix\", \"Value\": \".parquet\"}
      ]}}
    }]
  }"
echo "LocalStack: s3://$S3_BUCKET → process-daily-logs → $DYNAMODB_TABLE ready"
