#!/bin/sh
# The MLflow tracking server of a Data Foundation platform: PostgreSQL backend store, artifacts proxied to object
# storage (docs/operations.md#mlflow-tracking-server). Every setting comes from the environment, which `mlflow server`
# reads itself, so no password ever appears on a command line (`ps`) or in this file:
#
#   MLFLOW_BACKEND_STORE_URI       postgresql+psycopg2://USER:PASSWORD@HOST:5432/mlflow   (required)
#   MLFLOW_ARTIFACTS_DESTINATION   s3://bucket/mlflow-artifacts | gs://... | abfss://...   (required)
#   MLFLOW_SERVER_ALLOWED_HOSTS    Host headers clients use, e.g. mlflow,mlflow:5000       (beyond localhost/private IPs)
#   MLFLOW_HOST (0.0.0.0)  MLFLOW_PORT (5000)  MLFLOW_WORKERS (4)
#   + the object store's own credentials (AWS_*, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*) or the cloud role.
#
# Clients (training, `foundation models`, the API) need only FOUNDATION_MLFLOW__TRACKING_URI=http://HOST:PORT: with
# --serve-artifacts they upload and download models through this server and hold no object-store credentials.
# tests/infra/test_mlflow_server.py runs this script against a real PostgreSQL.
set -eu
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI=postgresql+psycopg2://USER:PASSWORD@HOST:5432/mlflow}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION to the artifact bucket, e.g. s3://bucket/mlflow-artifacts}"
case "$MLFLOW_BACKEND_STORE_URI" in
  postgresql://*)
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the driver installed is psycopg2.
    echo "MLFLOW_BACKEND_STORE_URI: write postgresql+psycopg2://... (psycopg2 is the PostgreSQL driver installed)" >&2
    exit 2 ;;
esac
export MLFLOW_DISABLE_TELEMETRY=true
exec "${MLFLOW_BIN:-mlflow}" server \
  --host "${MLFLOW_HOST:-0.0.0.0}" \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-4}" \
  --serve-artifacts
