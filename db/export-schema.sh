#!/usr/bin/env bash
# Writes db/schema.marten.sql and db/schema.wolverine.sql: the full DDL the service needs (Marten documents, event store, projections, Wolverine
# envelope and queue tables), generated with `db-patch` against an empty scratch database, for a DBA to review.
#   ./db/export-schema.sh          writes them into db/
#   ./db/export-schema.sh DIR      writes them into DIR instead (build/test.sh compares such an export with db/)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/db}"
mkdir -p "$out"
# Named after the database of the run (build/test.sh exports its own), so two checkouts testing at once never share it.
scratch="${ENROLMENT_DB_NAME:-enrolment}_schema_export"
as_postgres() { if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
ENROLMENT_DB_NAME="$scratch" "$root/db/start.sh"
as_postgres psql -q -c "DROP DATABASE IF EXISTS \"$scratch\" WITH (FORCE)" && ENROLMENT_DB_NAME="$scratch" "$root/db/start.sh"
export ConnectionStrings__Enrolment="Host=127.0.0.1;Port=5432;Database=$scratch;Username=enrolment;Password=enrolment"
export Database__AutoMigrate=false
"$root/build/run.sh" db-patch "$out/schema.marten.sql" -d marten://store/ >&2
"$root/build/run.sh" db-patch "$out/schema.wolverine.sql" -d wolverine://messages/main >&2
rm -f "$out"/*.drop.sql
as_postgres psql -q -c "DROP DATABASE IF EXISTS \"$scratch\" WITH (FORCE)"
echo "[db] wrote $out/schema.marten.sql and $out/schema.wolverine.sql" >&2
