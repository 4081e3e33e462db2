#!/usr/bin/env bash
# Drops and recreates the service's database: every tenant, enrolment and event is lost.
# For local development only. The service recreates its schema at its next start.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
DB_NAME="${ENROLMENT_DB_NAME:-enrolment}"
"$here/start.sh"
as_postgres() { if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
echo "[db] dropping database ${DB_NAME}" >&2
as_postgres psql -v ON_ERROR_STOP=1 -q -c "DROP DATABASE IF EXISTS \"${DB_NAME}\" WITH (FORCE)"
"$here/start.sh"
