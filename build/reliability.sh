#!/usr/bin/env bash
# The heavy reliability and security scenarios (issue #8) against the real service, started as a separate process
# from its Release build, on a PostgreSQL cluster of their own. Writes reliability-results/report.md and report.json.
#   ./build/reliability.sh                                   every scenario (about 5-10 minutes on 2 cores)
#   ./build/reliability.sh --scenario crash --scenario races  only these, in the order the program runs them
#   ./build/reliability.sh --seed 42                          replay the random choices of an earlier run
# Exit code 1 if any scenario missed its goal (the report says which and why).
# The scale-out scenario also gets a second cluster, 15/reliability2 on port 5435 (ENROLMENT_RELIABILITY_PG_PORT2), with a
# database enrolment_reliability2 re-created at each run for it to register as a second shard; stopped at exit too.
# The cluster is 15/reliability (or the newest installed version) on port 5434 (ENROLMENT_RELIABILITY_PG_PORT): the
# outage scenario stops and starts it, so nothing else may live there. Its database enrolment_reliability is dropped
# and re-created at each run; the cluster is stopped again at exit (its data stays for inspection).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

args=()
second_shard=yes # for scale-out: every scenario runs by default, or it is among those named
named=no
while [ "$#" -gt 0 ]; do
  case "$1" in
    --scenario) if [ "$named" = no ]; then named=yes; second_shard=no; fi
                if [ "$2" = scale-out ]; then second_shard=yes; fi
                args+=(--scenario "$2"); shift 2 ;;
    --seed) args+=(--seed "$2"); shift 2 ;;
    *) echo "unknown option $1 (see the top of $0)" >&2; exit 2 ;;
  esac
done

log() { echo "[reliability] $(date -u +%H:%M:%S) $*" >&2; }
as_postgres() { if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

port="${ENROLMENT_RELIABILITY_PG_PORT:-5434}"
db=enrolment_reliability
cluster=reliability
out="$root/reliability-results"
mkdir -p "$out"

# PostgreSQL itself: db/start.sh installs it on a fresh machine. Where it is installed already the shared cluster is
# left alone (other work may be stopping and starting it on purpose).
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  "$root/db/start.sh"
fi
pg_version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^${pg_version} ${cluster}$"; then
  log "creating PostgreSQL cluster ${pg_version}/${cluster} on port $port"
  pg_createcluster -p "$port" "$pg_version" "$cluster" >&2
  mkdir -p "/etc/postgresql/${pg_version}/${cluster}/conf.d"
  # Durability settings stay at PostgreSQL's defaults (fsync, synchronous_commit on): the crash scenario relies on them.
  cat > "/etc/postgresql/${pg_version}/${cluster}/conf.d/reliability.conf" <<CONF
max_connections = 200
CONF
fi

port2="${ENROLMENT_RELIABILITY_PG_PORT2:-5435}"
db2=enrolment_reliability2
cluster2=reliability2

cleanup() {
  # The service nodes are the program's children and normally gone by now; pid files remain only if it was killed.
  for pidfile in "$out"/logs/*.pid; do
    [ -f "$pidfile" ] && { kill -9 "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; }
  done
  pg_ctlcluster "$pg_version" "$cluster" stop >/dev/null 2>&1 || true
  [ "$second_shard" = no ] || pg_ctlcluster "$pg_version" "$cluster2" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

[ "$(pg_lsclusters -h | awk -v v="$pg_version" -v c="$cluster" '$1==v && $2==c {print $4}')" = "online" ] ||
  pg_ctlcluster "$pg_version" "$cluster" start >&2
for i in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  [ "$i" = 30 ] && { log "PostgreSQL ${pg_version}/${cluster} did not accept connections within 30 s"; exit 1; }
  sleep 1
done
[ "$(as_postgres psql -p "$port" -qtA -c "SELECT 1 FROM pg_roles WHERE rolname='enrolment'")" = "1" ] ||
  as_postgres psql -p "$port" -q -v ON_ERROR_STOP=1 -c "CREATE ROLE enrolment LOGIN PASSWORD 'enrolment' CREATEDB" >&2
as_postgres psql -p "$port" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >&2
as_postgres psql -p "$port" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\" OWNER enrolment" >&2
log "database $db ready on port $port"

# The scale-out scenario's second PostgreSQL server: a cluster of its own, another shard of the pool.
second_args=()
if [ "$second_shard" = yes ]; then
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^${pg_version} ${cluster2}$"; then
    log "creating PostgreSQL cluster ${pg_version}/${cluster2} on port $port2"
    pg_createcluster -p "$port2" "$pg_version" "$cluster2" >&2
    mkdir -p "/etc/postgresql/${pg_version}/${cluster2}/conf.d"
    printf 'max_connections = 200\n' > "/etc/postgresql/${pg_version}/${cluster2}/conf.d/reliability.conf"
  fi
  [ "$(pg_lsclusters -h | awk -v v="$pg_version" -v c="$cluster2" '$1==v && $2==c {print $4}')" = "online" ] ||
    pg_ctlcluster "$pg_version" "$cluster2" start >&2
  for i in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p "$port2" && break
    [ "$i" = 30 ] && { log "PostgreSQL ${pg_version}/${cluster2} did not accept connections within 30 s"; exit 1; }
    sleep 1
  done
  [ "$(as_postgres psql -p "$port2" -qtA -c "SELECT 1 FROM pg_roles WHERE rolname='enrolment'")" = "1" ] ||
    as_postgres psql -p "$port2" -q -v ON_ERROR_STOP=1 -c "CREATE ROLE enrolment LOGIN PASSWORD 'enrolment' CREATEDB" >&2
  as_postgres psql -p "$port2" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$db2\" WITH (FORCE)" >&2
  as_postgres psql -p "$port2" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db2\" OWNER enrolment" >&2
  log "database $db2 ready on port $port2 (the scale-out scenario's second shard)"
  second_args=(--second-connection "Host=127.0.0.1;Port=$port2;Database=$db2;Username=enrolment;Password=enrolment;Timeout=5;Command Timeout=30")
fi

log "building Release"
mkdir -p "$out/logs"
for project in src/Enrolment.Api/Enrolment.Api.csproj tests/Enrolment.Reliability/Enrolment.Reliability.csproj; do
  dotnet build "$root/$project" -c Release -nologo -v quiet > "$out/logs/build.log" 2>&1 ||
    { tail -30 "$out/logs/build.log" >&2; log "build of $project failed"; exit 1; }
done

cs="Host=127.0.0.1;Port=$port;Database=$db;Username=enrolment;Password=enrolment;Timeout=5;Command Timeout=30"
status=0
dotnet "$root/tests/Enrolment.Reliability/bin/Release/net10.0/Enrolment.Reliability.dll" run \
  --service-dll "$root/src/Enrolment.Api/bin/Release/net10.0/Enrolment.Api.dll" \
  --connection "$cs" --pg-cluster "$pg_version/$cluster" --out "$out" "${second_args[@]}" "${args[@]}" || status=$?
log "report: $out/report.md (and report.json; service logs in $out/logs)"
exit "$status"
