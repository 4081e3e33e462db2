#!/usr/bin/env bash
# The heavy reliability and security scenarios (issue #8) against the real service, started as a separate process
# from its Release build, on a PostgreSQL cluster of their own. Writes reliability-results/report.md and report.json.
#   ./build/reliability.sh                                   every scenario (about 5-10 minutes on 2 cores)
#   ./build/reliability.sh --scenario crash --scenario races  only these, in the order the program runs them
#   ./build/reliability.sh --seed 42                          replay the random choices of an earlier run
# Exit code 1 if any scenario missed its goal (the report says which and why).
# The cluster is 15/reliability (or the newest installed version) on port 5434 (ENROLMENT_RELIABILITY_PG_PORT): the
# outage scenario stops and starts it, so nothing else may live there. Its database enrolment_reliability is dropped
# and re-created at each run; the cluster is stopped again at exit (its data stays for inspection).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

args=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --scenario) args+=(--scenario "$2"); shift 2 ;;
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

cleanup() {
  # The service is the program's child and normally gone by now; a pid file remains only if the program was killed.
  if [ -f "$out/logs/service.pid" ]; then kill -9 "$(cat "$out/logs/service.pid")" 2>/dev/null || true; fi
  pg_ctlcluster "$pg_version" "$cluster" stop >/dev/null 2>&1 || true
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
  --connection "$cs" --pg-cluster "$pg_version/$cluster" --out "$out" "${args[@]}" || status=$?
log "report: $out/report.md (and report.json; service logs in $out/logs)"
exit "$status"
