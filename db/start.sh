#!/usr/bin/env bash
# Starts the local PostgreSQL the service uses, installing it first on a new machine.
# Idempotent: safe to run while PostgreSQL already runs. Creates the role and database.
# Settings (environment): ENROLMENT_DB_NAME (enrolment), ENROLMENT_DB_USER (enrolment),
# ENROLMENT_DB_PASSWORD (enrolment), ENROLMENT_DB_PORT (5432).
set -euo pipefail

DB_NAME="${ENROLMENT_DB_NAME:-enrolment}"
DB_USER="${ENROLMENT_DB_USER:-enrolment}"
DB_PASSWORD="${ENROLMENT_DB_PASSWORD:-enrolment}"
DB_PORT="${ENROLMENT_DB_PORT:-5432}"

log() { echo "[db] $*" >&2; }

as_postgres() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  log "PostgreSQL is not installed; installing it with apt-get (a minute or two)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >/tmp/postgresql-install.log 2>&1 || { log "apt-get install failed; see /tmp/postgresql-install.log"; exit 1; }
fi

PG_VERSION="$(ls /usr/lib/postgresql | sort -n | tail -1)"
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^${PG_VERSION} main$"; then
  log "creating PostgreSQL ${PG_VERSION} cluster 'main' on port ${DB_PORT}"
  pg_createcluster -p "${DB_PORT}" "${PG_VERSION}" main >&2
fi

# The server runs as 'postgres'; it must be able to reach its data and socket folders.
DATA_DIR="$(pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main" {print $6}')"
CLUSTER_PORT="$(pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main" {print $3}')"
chown -R postgres:postgres "$DATA_DIR" /var/run/postgresql 2>/dev/null || true
mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql

if ! pg_isready -q -h 127.0.0.1 -p "$CLUSTER_PORT"; then
  status="$(pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main" {print $4}')"
  if [ "$status" != "online" ]; then
    log "starting PostgreSQL ${PG_VERSION}/main (data: ${DATA_DIR}, port ${CLUSTER_PORT})"
    pg_ctlcluster "$PG_VERSION" main start >&2 || {
      log "PostgreSQL failed to start; the last lines of its log:"
      tail -n 20 "/var/log/postgresql/postgresql-${PG_VERSION}-main.log" >&2 || true
      exit 1
    }
  fi
fi

for i in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p "$CLUSTER_PORT" && break
  [ "$i" = 60 ] && { log "PostgreSQL did not accept connections within 60 s"; exit 1; }
  sleep 1
done

# Role and database, created once.
as_postgres psql -p "$CLUSTER_PORT" -v ON_ERROR_STOP=1 -qtA -c "SELECT 1" >/dev/null
if [ "$(as_postgres psql -p "$CLUSTER_PORT" -qtA -c "SELECT 1 FROM pg_roles WHERE rolname='${DB_USER}'")" != "1" ]; then
  log "creating role ${DB_USER}"
  as_postgres psql -p "$CLUSTER_PORT" -v ON_ERROR_STOP=1 -q -c "CREATE ROLE \"${DB_USER}\" LOGIN PASSWORD '${DB_PASSWORD}' CREATEDB" >&2
fi
# A database made before the sharded layout (issue #31: LIST-partitioned document tables, the pool registry in schema
# enrolment_pool) cannot be migrated in place: Marten cannot turn a table into a partitioned one. This script serves
# development and tests, so such a database is renamed aside, data kept, and a new one is made (docs/scale-out.md).
if [ "$(as_postgres psql -p "$CLUSTER_PORT" -d "${DB_NAME}" -qtA -c "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'enrolment' AND c.relname = 'mt_doc_enrolment' AND c.relkind = 'r'" 2>/dev/null)" = "1" ]; then
  aside="${DB_NAME}_pre_shards_$(date -u +%Y%m%d%H%M%S)"
  log "database ${DB_NAME} has the layout from before shards (unpartitioned tables), which the service cannot migrate in place; renaming it to ${aside} (its data is kept there) and creating a new ${DB_NAME}"
  as_postgres psql -p "$CLUSTER_PORT" -v ON_ERROR_STOP=1 -q -c "ALTER DATABASE \"${DB_NAME}\" RENAME TO \"${aside}\"" >&2 ||
    { log "could not rename ${DB_NAME} (is a service still connected to it? stop it and run this again)"; exit 1; }
fi
if [ "$(as_postgres psql -p "$CLUSTER_PORT" -qtA -c "SELECT 1 FROM pg_database WHERE datname='${DB_NAME}'")" != "1" ]; then
  log "creating database ${DB_NAME}"
  as_postgres psql -p "$CLUSTER_PORT" -v ON_ERROR_STOP=1 -q -c "CREATE DATABASE \"${DB_NAME}\" OWNER \"${DB_USER}\"" >&2
fi
log "PostgreSQL ready on 127.0.0.1:${CLUSTER_PORT}, database ${DB_NAME}, role ${DB_USER}"
