#!/usr/bin/env bash
# Stops the local PostgreSQL cluster started by db/start.sh. Data is kept.
set -euo pipefail
PG_VERSION="$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)"
[ -n "$PG_VERSION" ] || { echo "[db] PostgreSQL is not installed; nothing to stop" >&2; exit 0; }
pg_ctlcluster "$PG_VERSION" main stop -m fast 2>/dev/null || echo "[db] PostgreSQL ${PG_VERSION}/main was not running" >&2
