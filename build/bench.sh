#!/usr/bin/env bash
# Measures the service against raw PostgreSQL baselines on this machine and writes bench-results/report.md and
# report.json (per figure: service, baseline, ratio, goal; plus the machine and the dataset size).
#   ./build/bench.sh                 1,000,000 enrolments (3,000,000 events): seeding takes minutes
#   ./build/bench.sh --size 10000    a smoke run of a few minutes
# Options: --size N, --tenants N (4), --duration 20s, --warmup 5s, --write-warmup 30s, --connections 32, --threads 1, --mode bulk|session,
#          --fanout N (100000 at full size: comparison 5), --due N (100000: comparison 7), --read-load-connections 4 (7),
#          --summary-timeout 1800 (seconds to wait for the summaries' daemon to catch up with the seeded events),
#          --shards (comparison 10 after the others), --only shards (comparison 10 alone), --shards-due N (100000: 10).
# Comparison 7 also times the burst's integration events on the bus: on the embedded PostgreSQL transport, then (the
# service restarted with Bus__Transport=rabbitmq, a second due set) on RabbitMQ, installed and started by
# build/rabbitmq.sh if missing; without a broker that row is "not measured" and the rest of the run stands.
# Both servers get the same connection pool cap (ENROLMENT_BENCH_POOL, 24): PostgreSQL here allows 100 connections in all.
# Comparison 10 (issue #31, opt-in): the same completion load and due burst against a pool of one shard, then of two
# shards on two PostgreSQL clusters (the bench cluster, and a second one, 15/bench2 on port 5436, created if missing).
# Not part of ./build/test.sh. Uses its own database (ENROLMENT_BENCH_DB_NAME, default enrolment_bench), dropped
# and re-created at each run. The service runs as a separate process from its Release build, as in production;
# the baseline is tests/Enrolment.Benchmarks (bare ASP.NET + Npgsql); wrk (apt) generates the load.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

summary_timeout=1800 size=1000000 tenants=4 duration=20s warmup=5s write_warmup=30s connections=32 write_connections=16 threads=1 mode=bulk
small=10000 fanout="" due="" read_load_connections=4 only="" with_shards="" shards_due=100000
while [ "$#" -gt 0 ]; do
  case "$1" in
    --size) size="$2"; shift 2 ;;
    --tenants) tenants="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --write-warmup) write_warmup="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --mode) mode="$2"; shift 2 ;;
    --fanout) fanout="$2"; shift 2 ;;
    --due) due="$2"; shift 2 ;;
    --read-load-connections) read_load_connections="$2"; shift 2 ;;
    --summary-timeout) summary_timeout="$2"; shift 2 ;;
    --shards) with_shards=1; shift ;;
    --shards-due) shards_due="$2"; shift 2 ;;
    --only) only="$2"; shift 2; [ "$only" = shards ] || { echo "--only takes: shards" >&2; exit 2; } ;;
    *) echo "unknown option $1 (see the top of $0)" >&2; exit 2 ;;
  esac
done
[ "$size" -lt "$small" ] && small="$size"
# Comparisons 5 and 7 use a tenth of the dataset at most (100,000 at the full size).
[ -z "$fanout" ] && fanout=$(( size / 10 < 100000 ? size / 10 : 100000 ))
[ -z "$due" ] && due=$(( size / 10 < 100000 ? size / 10 : 100000 ))

log() { echo "[bench] $(date -u +%H:%M:%S) $*" >&2; }
as_postgres() { if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

out="$root/bench-results"
raw="$out/raw"
logs="$out/logs"
rm -rf "$raw" "$logs"
mkdir -p "$raw" "$logs"

db="${ENROLMENT_BENCH_DB_NAME:-enrolment_bench}"
port="${ENROLMENT_BENCH_PG_PORT:-5433}"
# PostgreSQL: installed by db/start.sh if missing. The benchmark then runs its own cluster ("bench", port 5433) so
# that other work on the shared cluster (its 100 connections, its cache) neither starves nor skews the figures,
# with pg_stat_statements loaded for the bottleneck notes. ENROLMENT_BENCH_PG_PORT=5432 uses the shared cluster instead.
"$root/db/start.sh"
if [ "$port" != "5432" ]; then
  pg_version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^${pg_version} bench$"; then
    log "creating PostgreSQL cluster ${pg_version}/bench on port $port"
    pg_createcluster -p "$port" "$pg_version" bench >&2
  fi
  # The settings of a database server sized for this machine, the same for the service and the baseline:
  # - shared_buffers a third of RAM (the 1,000,000 dataset is ~7.5 GB; with the default 128 MB, or even 2 GB, every
  #   comparison read its pages back from a slow virtual disk while the host reclaimed the page cache);
  # - checkpoints at most every 15 minutes or 8 GB of WAL, and full-page images compressed (lz4): with the defaults
  #   (5 min, 1 GB) a checkpoint came every ~20 s under the write comparisons, and every first write of a page after
  #   one logs the whole 8 KB page, which dominated the WAL of a random write at this size.
  # Rewritten on every run; a change restarts the cluster.
  conf="/etc/postgresql/${pg_version}/bench/conf.d"
  mkdir -p "$conf"
  shared_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 / 3}' /proc/meminfo)
  cat > "$conf/bench.conf.new" <<CONF
max_connections = 200
shared_buffers = '${shared_mb}MB'
shared_preload_libraries = 'pg_stat_statements'
synchronous_commit = on
wal_compression = lz4
max_wal_size = '8GB'
checkpoint_timeout = '15min'
CONF
  if ! cmp -s "$conf/bench.conf.new" "$conf/bench.conf"; then
    mv "$conf/bench.conf.new" "$conf/bench.conf"
    [ "$(pg_lsclusters -h | awk -v v="$pg_version" '$1==v && $2=="bench" {print $4}')" = "online" ] && { log "bench cluster settings changed: restarting it"; pg_ctlcluster "$pg_version" bench restart >&2; }
  else rm -f "$conf/bench.conf.new"; fi
  if [ "$(pg_lsclusters -h | awk -v v="$pg_version" '$1==v && $2=="bench" {print $4}')" != "online" ]; then
    pg_ctlcluster "$pg_version" bench start >&2
    started_cluster=1
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 1; done
fi
export ENROLMENT_DB_NAME="$db" ENROLMENT_DB_PORT="$port"
as_postgres psql -p "$port" -qtA -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
log "creating database $db on port $port"
if [ "$port" = "5432" ]; then "$root/db/start.sh"; else
  [ "$(as_postgres psql -p "$port" -qtA -c "SELECT 1 FROM pg_roles WHERE rolname='enrolment'")" = "1" ] ||
    as_postgres psql -p "$port" -q -c "CREATE ROLE enrolment LOGIN PASSWORD 'enrolment' CREATEDB" >&2
  as_postgres psql -p "$port" -q -c "CREATE DATABASE \"$db\" OWNER enrolment" >&2
fi
as_postgres psql -p "$port" -d "$db" -q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >&2 2>/dev/null || true
psql_db() { as_postgres psql -p "$port" -d "$db" -v ON_ERROR_STOP=1 "$@"; }

# A fresh machine never fetched Debian's package lists: without the update, "Unable to locate package wrk".
command -v wrk >/dev/null || {
  log "installing wrk"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/tmp/wrk-install.log 2>&1 ||
    { log "installing wrk failed; see /tmp/wrk-install.log"; exit 1; }
}

log "building Release"
for project in src/Enrolment.Api/Enrolment.Api.csproj tests/Enrolment.Benchmarks/Enrolment.Benchmarks.csproj; do
  dotnet build "$root/$project" -c Release -nologo -v quiet > "$logs/build.log" 2>&1 || { tail -30 "$logs/build.log" >&2; log "build of $project failed"; exit 1; }
done
api_dir="$root/src/Enrolment.Api/bin/Release/net10.0"
api_dll="$api_dir/Enrolment.Api.dll"
bench_dll="$root/tests/Enrolment.Benchmarks/bin/Release/net10.0/Enrolment.Benchmarks.dll"

cs="Host=127.0.0.1;Port=$port;Database=$db;Username=enrolment;Password=enrolment;Timeout=15;Command Timeout=3600;Maximum Pool Size=${ENROLMENT_BENCH_POOL:-24}"
export ConnectionStrings__Enrolment="$cs" ASPNETCORE_ENVIRONMENT=Development DOTNET_ENVIRONMENT=Development
secret="es_bench$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
service_url="http://127.0.0.1:${ENROLMENT_BENCH_SERVICE_PORT:-5390}"
baseline_url="http://127.0.0.1:${ENROLMENT_BENCH_BASELINE_PORT:-5391}"

cat > "$raw/machine.json" <<EOF
{"nproc": $(nproc), "memGiB": $(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo), "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')",
 "kernel": "$(uname -r)", "postgres": "$(psql_db -qtA -c 'show server_version' | cut -d' ' -f1)", "dotnet": "$(dotnet --version)", "wrk": "$(wrk -v 2>&1 | head -1 | cut -d' ' -f2)"}
EOF
cat > "$raw/meta.json" <<EOF
{"size": $size, "small": $small, "tenants": $tenants, "threads": $threads, "connections": $connections, "writeConnections": $write_connections,
 "duration": "$duration", "warmup": "$warmup", "writeWarmup": "$write_warmup", "mode": "$mode", "fanout": $fanout, "due": $due, "readLoadConnections": $read_load_connections,
 "only": "$only", "shards": $([ -n "$only$with_shards" ] && echo true || echo false), "shardsSize": $(( size < 40000 ? 40000 : size )), "shardsDue": $shards_due,
 "startedAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
EOF

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # The benchmark's own cluster is stopped again if this run started it (its data stays for inspection:
  # pg_ctlcluster <version> bench start).
  [ -n "${started_cluster:-}" ] && pg_ctlcluster "$pg_version" bench stop >/dev/null 2>&1 || true
  # Likewise comparison 10's second cluster.
  [ -n "${started_cluster2:-}" ] && pg_ctlcluster "$pg_version" bench2 stop >/dev/null 2>&1 || true
  # Likewise the broker, if this run started it for the RabbitMQ burst.
  [ -n "${started_rabbitmq:-}" ] && "$root/build/rabbitmq.sh" stop || true
}
trap cleanup EXIT

seed() { # label count name
  log "seeding $2 enrolments over $tenants tenants ($mode mode, label $1)"
  # From its own folder, so it finds its appsettings.json (the content root is the working directory).
  (cd "$api_dir" && Logging__LogLevel__Default=Warning dotnet "$api_dll" seed --tenants "$tenants" --enrolments "$2" --label "$1" --secret "$secret" --mode "$mode") \
    2> >(tee "$logs/seed-$3.log" | grep --line-buffered '^\[seed\]' >&2) | grep '^{' | tail -1 > "$raw/seed-$3.json"
  log "vacuum analyze"
  psql_db -q -c "VACUUM ANALYZE" >&2
}

wait_for() { # url what
  for _ in $(seq 1 120); do curl -sf -o /dev/null "$1/health/live" && return 0; sleep 1; done
  log "$2 did not answer on $1 within 120 s"; exit 1
}

# The first string value of a key in a JSON summary file (the seed command's, the fan-out's): first_field KEY FILE.
first_field() { grep -o "\"$1\":\"[^\"]*\"" "$2" | head -1 | cut -d'"' -f4; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_wrk() { # name targets-file url connections [warm-up file] [warm-up duration]
  local name="$1" file="$2" url="$3" conns="$4" warm="${5:-$2}" warm_for="${6:-$warmup}"
  local pid="$service_pid"; [ "$url" = "$baseline_url" ] && pid="$baseline_pid"
  BENCH_TARGETS="$warm" BENCH_THREADS="$threads" wrk -t"$threads" -c"$conns" -d"$warm_for" -s "$root/build/bench/rotate.lua" "$url" > "$logs/wrk-$name-warmup.txt"
  "${wrk_hook:-:}" before # comparison 10 counts per shard around the measured run only
  local before db_before io_before kb_before; before="$(cpu_ticks "$pid")"; db_before="$(db_ticks)"; io_before="$(db_buffers_written)"; kb_before="$(disk_kb_written)"
  BENCH_TARGETS="$file" BENCH_THREADS="$threads" wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$root/build/bench/rotate.lua" "$url" > "$logs/wrk-$name.txt"
  local after db_after io_after kb_after; after="$(cpu_ticks "$pid")"; db_after="$(db_ticks)"; io_after="$(db_buffers_written)"; kb_after="$(disk_kb_written)"
  "${wrk_hook:-:}" after
  # The server process's own CPU time per answered request: what it costs, whatever else shares the machine. And the
  # benchmark cluster's (every PostgreSQL process of it, the service's background work included) when it has its own.
  # What the machine wrote meanwhile, to tell a read tail from a checkpoint's writes: the cluster's buffers written by
  # its checkpointer, background writer and backends (MiB), and every disk write of the machine (/proc/vmstat, MiB).
  local io="" ; [ -n "$io_before" ] && io="$(( (io_after - io_before) * 8 / 1024 ))"
  grep '^{' "$logs/wrk-$name.txt" | tail -1 |
    awk -v t="$((after - before))" -v d="${db_before:+$((db_after - db_before))}" -v hz="$(getconf CLK_TCK)" -v io="$io" -v kb="$((kb_after - kb_before))" '{ match($0, /"requests":[0-9]+/); n = substr($0, RSTART + 11, RLENGTH - 11);
      db = d == "" ? "" : sprintf(",\"dbCpuMsPerRequest\":%.3f", n > 0 ? d * 1000 / hz / n : 0);
      db = db (io == "" ? "" : sprintf(",\"dbBuffersWrittenMiB\":%d", io)) sprintf(",\"diskWrittenMiB\":%d", kb / 1024);
      sub(/}$/, sprintf(",\"cpuMsPerRequest\":%.3f%s}", n > 0 ? t * 1000 / hz / n : 0, db)); print }' > "$raw/wrk-$name.json"
  log "$name: $(cat "$raw/wrk-$name.json")"
}
# The benchmark cluster's CPU ticks (empty on the shared cluster, whose other users would count too).
db_ticks() { [ "$port" != "5432" ] && cluster_ticks bench || true; }
# Buffers the benchmark cluster has written (checkpointer, background writer, backends; 8 KiB each), empty on the shared one.
db_buffers_written() { [ "$port" != "5432" ] && psql_db -qtA -c "select buffers_checkpoint + buffers_clean + buffers_backend from pg_stat_bgwriter" 2>/dev/null || true; }
# KiB the machine has written to disk since boot.
disk_kb_written() { awk '$1 == "pgpgout" {print $2}' /proc/vmstat; }

targets() { # out-dir seed files...
  local dir="$1"; shift
  local args=()
  for s in "$@"; do args+=(--seed "$s"); done
  dotnet "$bench_dll" targets --connection "$cs" --out "$dir" --small-label S "${args[@]}"
}

# The summaries' async projection (Marten's daemon, in the service) replays everything the seeding wrote, bypassing
# the service: the full-size figures are taken once it has caught up, as a running system is, and the time it took is
# reported (raw/summary-catchup.json). Not caught up within --summary-timeout: the figures say so and it goes on.
wait_summaries() { # [name of the raw JSON, default summary-catchup]
  local out="$raw/${1:-summary-catchup}.json"
  local start; start=$(date +%s)
  local first=""
  while :; do
    # awk reads the whole answer (an early exit would break curl's pipe, and pipefail would end the run). One value
    # per shard (label shard=…): the largest is the lag left.
    local lag; lag="$(curl -sf "$service_url/metrics" | awk '/^enrolment_summary_lag/ {v = $NF + 0; if (!seen || v > m) m = v; seen = 1} END {if (seen) print m}' || true)"
    [ -z "$first" ] && [ -n "$lag" ] && first="$lag"
    local now; now=$(date +%s)
    if [ "$lag" = "0" ] || [ $((now - start)) -ge "$summary_timeout" ]; then
      local seconds=$((now - start))
      printf '{"events":%s,"seconds":%s,"caughtUp":%s,"lagLeft":%s}\n' "${first:-0}" "$seconds" "$([ "$lag" = "0" ] && echo true || echo false)" "${lag:-null}" > "$out"
      log "summaries: lag ${lag:-unknown} after ${seconds} s (started at ${first:-unknown} events)"
      return 0
    fi
    sleep 5
  done
}
# 10. Shards (issue #31): the completion load of comparison 4 and a due burst as in comparison 7, against a pool of one
# shard, then of two shards on two PostgreSQL clusters: the bench cluster holds the master and shard `default`, a second
# cluster (15/bench2, port ENROLMENT_BENCH_PG2_PORT, 5436) the shard `s2`, registered with `shards add`; half the
# tenants are placed there with `tenants add --shard`. Each phase starts from new databases (master ${db}_shards,
# shard ${db}_shard2), seeds the same enrolments (--size, at least 40,000: half are open, and the completion run must
# not run out of open ones, as comparison 4 does at 10,000), then runs one service node: idle for 10 s, the completion
# run, then --shards-due enrolments due at one instant. Both clusters share this machine's cores, so the two-shard
# figures show what a shard costs, not capacity added.
shard_port="${ENROLMENT_BENCH_PG2_PORT:-5436}"
shards_db="${db}_shards" shard2_db="${db}_shard2"
shard_cs() { # port database
  echo "Host=127.0.0.1;Port=$1;Database=$2;Username=enrolment;Password=enrolment;Timeout=15;Command Timeout=3600;Maximum Pool Size=${ENROLMENT_BENCH_POOL:-24}"
}
second_cluster() { # the shard `s2` server: created if missing, with the bench cluster's settings, started if down
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^${pg_version} bench2$"; then
    log "creating PostgreSQL cluster ${pg_version}/bench2 on port $shard_port"
    pg_createcluster -p "$shard_port" "$pg_version" bench2 >&2
  fi
  mkdir -p "/etc/postgresql/${pg_version}/bench2/conf.d"
  if ! cmp -s "$conf/bench.conf" "/etc/postgresql/${pg_version}/bench2/conf.d/bench.conf"; then
    cp "$conf/bench.conf" "/etc/postgresql/${pg_version}/bench2/conf.d/bench.conf"
    [ "$(pg_lsclusters -h | awk -v v="$pg_version" '$1==v && $2=="bench2" {print $4}')" = "online" ] && { log "bench2 cluster settings changed: restarting it"; pg_ctlcluster "$pg_version" bench2 restart >&2; }
  fi
  if [ "$(pg_lsclusters -h | awk -v v="$pg_version" '$1==v && $2=="bench2" {print $4}')" != "online" ]; then
    pg_ctlcluster "$pg_version" bench2 start >&2
    started_cluster2=1
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "$shard_port" && break; sleep 1; done
  [ "$(as_postgres psql -p "$shard_port" -qtA -c "SELECT 1 FROM pg_roles WHERE rolname='enrolment'")" = "1" ] ||
    as_postgres psql -p "$shard_port" -q -c "CREATE ROLE enrolment LOGIN PASSWORD 'enrolment' CREATEDB" >&2
}
fresh_db() { # port database
  as_postgres psql -p "$1" -qtA -c "DROP DATABASE IF EXISTS \"$2\" WITH (FORCE)" >/dev/null
  as_postgres psql -p "$1" -q -c "CREATE DATABASE \"$2\" OWNER enrolment" >&2
}
# A cluster's CPU time in clock ticks: the postmaster's own and its reaped children's, plus every live child's
# (backends, WAL writer, checkpointer): what the shard's server spent, whatever else shares the machine.
cluster_ticks() { # cluster name
  local data pm; data="$(pg_lsclusters -h | awk -v v="$pg_version" -v c="$1" '$1==v && $2==c {print $6}')"
  pm="$(head -1 "$data/postmaster.pid")"
  { awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat"
    for c in $(ps -o pid= --ppid "$pm"); do awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || true; done; } | awk '{s += $1} END {print s}'
}
shards_phase() { # 1 or 2
  local n="$1" dir="$raw/shards-$1" hz size=$(( size < 40000 ? 40000 : size )) due="$shards_due"; hz="$(getconf CLK_TCK)"
  local master_cs; master_cs="$(shard_cs "$port" "$shards_db")"
  mkdir -p "$dir"
  # shard name, cluster, port, database of each shard in this phase
  local shards=("default bench $port $shards_db")
  [ "$n" = 2 ] && shards+=("s2 bench2 $shard_port $shard2_db")
  fresh_db "$port" "$shards_db"
  as_postgres psql -p "$port" -d "$shards_db" -q -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >&2 2>/dev/null || true
  api() { (cd "$api_dir" && ConnectionStrings__Enrolment="$master_cs" Logging__LogLevel__Default=Warning dotnet "$api_dll" "$@"); }
  local t placed=()
  for t in $(seq 0 $((tenants - 1))); do placed+=(default); done
  if [ "$n" = 2 ]; then
    fresh_db "$shard_port" "$shard2_db"
    api shards add s2 "$(shard_cs "$shard_port" "$shard2_db")" > "$logs/shards-2-add.log" 2>&1 || { tail -5 "$logs/shards-2-add.log" >&2; log "shards add failed"; return 1; }
    # The second half of the tenants in s2 (the seed command keeps a placed tenant where it is and adds its secret).
    for t in $(seq 0 $((tenants - 1))); do
      [ "$t" -ge $(((tenants + 1) / 2)) ] && placed[t]=s2
      api tenants add "eu-west-1_S$t" --shard "${placed[t]}" >> "$logs/shards-2-tenants.log" 2>&1 || { tail -5 "$logs/shards-2-tenants.log" >&2; log "tenants add failed"; return 1; }
    done
  fi
  log "shards, $n shard(s): seeding $size enrolments over $tenants tenants"
  api seed --tenants "$tenants" --enrolments "$size" --label S --secret "$secret" --mode "$mode" 2> "$logs/shards-$n-seed.log" | grep '^{' | tail -1 > "$dir/seed.json"
  local s; for s in "${shards[@]}"; do set -- $s; as_postgres psql -p "$3" -d "$4" -q -c "VACUUM ANALYZE" >&2; done
  (cd "$api_dir" && ConnectionStrings__Enrolment="$master_cs" ASPNETCORE_URLS="$service_url" Limits__RequestsPerSecondPerTenant=100000000 Audit__CheckpointInterval=1.00:00:00 exec dotnet "$api_dll") > "$logs/service-shards-$n.log" 2>&1 &
  service_pid=$!; pids+=("$service_pid")
  wait_for "$service_url" "service ($n shard(s))"
  wait_summaries "shards-$n/summary-catchup"

  # Idle: what the node and each shard's server spend with nothing to do (agents' polls, Wolverine's durability and
  # node health, the pool refresh), per second; a cost per shard and node that no request pays for.
  local idle_s=10 svc0 svc1; svc0="$(cpu_ticks "$service_pid")"
  for s in "${shards[@]}"; do set -- $s; cluster_ticks "$2" > "$dir/idle-$1.before"; done
  sleep "$idle_s"
  svc1="$(cpu_ticks "$service_pid")"
  for s in "${shards[@]}"; do set -- $s
    printf '{"shard":"%s","cluster":"%s","seconds":%s,"dbCpuMs":%s,"serviceCpuMs":%s}\n' "$1" "$2" "$idle_s" \
      "$(awk -v t="$(( $(cluster_ticks "$2") - $(cat "$dir/idle-$1.before") ))" -v hz="$hz" 'BEGIN {printf "%.0f", t * 1000 / hz}')" \
      "$(awk -v t="$((svc1 - svc0))" -v hz="$hz" 'BEGIN {printf "%.0f", t * 1000 / hz}')" > "$dir/idle-$1.json"
    log "shards, $n: idle, shard $1: $(cat "$dir/idle-$1.json")"
  done

  # Completions: comparison 4's load (its connections, warm-up and duration) over every shard's open enrolments.
  local connections_args=()
  for s in "${shards[@]}"; do set -- $s; connections_args+=(--connection "$(shard_cs "$3" "$4")"); done
  dotnet "$bench_dll" shard-targets "${connections_args[@]}" --seed "$dir/seed.json" --out "$dir/completions.tsv"
  head -n 1000 "$dir/completions.tsv" > "$dir/completions-warmup.tsv"
  tail -n +1001 "$dir/completions.tsv" > "$dir/completions-measured.tsv"
  completed_in() { as_postgres psql -p "$1" -d "$2" -qtA -c "select count(*) from enrolment.mt_events where type = 'enrolment_completed'"; }
  shards_hook() { # before | after: per shard, completion events stored and its cluster's CPU; the master's statements
    local s; for s in "${shards[@]}"; do set -- $s
      echo "$(cluster_ticks "$2") $(completed_in "$3" "$4")" > "$dir/completions-$1.$phase_step"
    done
    [ "$phase_step" = before ] && { as_postgres psql -p "$port" -d "$shards_db" -qtA -c "select pg_stat_statements_reset()" >/dev/null 2>&1 || true; }
    return 0
  }
  phase_wrk_hook() { phase_step="$1"; shards_hook; }
  wrk_hook=phase_wrk_hook run_wrk "shards-$n-completions" "$dir/completions-measured.tsv" "$service_url" "$write_connections" "$dir/completions-warmup.tsv"
  local seconds; seconds="$(grep -o '"seconds":[0-9.]*' "$raw/wrk-shards-$n-completions.json" | cut -d: -f2)"
  # Still-running requests at the end of the measured run: counted once they have committed.
  sleep 2
  for s in "${shards[@]}"; do set -- $s
    read -r c0 e0 < "$dir/completions-$1.before"; read -r c1 _ < "$dir/completions-$1.after"; e1="$(completed_in "$3" "$4")"
    printf '{"shard":"%s","cluster":"%s","port":%s,"seconds":%s,"completed":%s,"dbCpuMs":%s}\n' "$1" "$2" "$3" "$seconds" "$((e1 - e0))" \
      "$(awk -v t="$((c1 - c0))" -v hz="$hz" 'BEGIN {printf "%.0f", t * 1000 / hz}')" > "$dir/completions-$1.json"
    log "shards, $n: completions in shard $1: $(cat "$dir/completions-$1.json")"
  done
  # What the master answered during the measured run: statements on the pool registry and on Wolverine's node tables.
  as_postgres psql -p "$port" -d "$shards_db" -qtA -F$'\t' -c "select calls, round(total_exec_time::numeric, 1), left(regexp_replace(query, '\s+', ' ', 'g'), 200)
      from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database()) order by calls desc" > "$dir/master-statements.tsv" 2>/dev/null || true
  awk -F'\t' -v s="$seconds" '$3 ~ /enrolment_pool\./ {r += $1} $3 ~ /wolverine_node|wolverine_control|wolverine_agent/ {w += $1}
    END {printf "{\"seconds\":%s,\"registryCalls\":%d,\"wolverineNodeCalls\":%d}\n", s, r, w}' "$dir/master-statements.tsv" > "$dir/master.json"
  log "shards, $n: master during the completions: $(cat "$dir/master.json")"

  # The due burst: comparison 7's seeding (the same tenants, a second assignment all due at one instant) and its
  # measure (transition-lag), per shard: each counts its own shard's overdue events.
  # Due once seeding (at this phase's own seeding rate) and the summaries' catch-up are surely over.
  local due_in due_at now
  due_in=$(awk -v d="$due" -v r="$(grep -o '"enrolmentsPerSecond":[0-9.]*' "$dir/seed.json" | cut -d: -f2)" 'BEGIN {printf "%d", 45 + 2.5 * d / (r > 0 ? r : 500)}')
  due_at=$(( $(date +%s) + due_in ))
  log "shards, $n: seeding $due enrolments due in ${due_in}s"
  api seed --tenants "$tenants" --enrolments "$due" --label S --secret "$secret" --mode "$mode" --due-in "$due_in" 2> "$logs/shards-$n-seed-due.log" | grep '^{' | tail -1 > "$dir/seed-due.json"
  for s in "${shards[@]}"; do set -- $s; as_postgres psql -p "$3" -d "$4" -q -c "ANALYZE" >&2; done
  wait_summaries "shards-$n/summary-catchup-due"
  now=$(date +%s)
  [ "$now" -lt "$((due_at - 5))" ] || log "warning: seeding and the summaries' catch-up ended less than 5 s before the due instant"
  [ "$now" -lt "$((due_at - 5))" ] && sleep "$((due_at - 5 - now))"
  # Started before the due instant: transition-lag counts the overdue events above the sequence it reads first.
  local lag_pids=() expected
  svc0="$(cpu_ticks "$service_pid")"
  for s in "${shards[@]}"; do set -- $s
    expected=0
    for t in $(seq 0 $((tenants - 1))); do [ "${placed[t]}" = "$1" ] && expected=$((expected + due / tenants + (t < due % tenants ? 1 : 0))); done
    echo "$(cluster_ticks "$2")" > "$dir/burst-$1.before"
    dotnet "$bench_dll" transition-lag --connection "$(shard_cs "$3" "$4")" --label S --expected "$expected" --timeout 1200 > "$dir/transitions-$1.json" &
    lag_pids+=("$!")
  done
  for p in "${lag_pids[@]}"; do wait "$p" || log "shards, $n: not every due enrolment of a shard became overdue within the timeout"; done
  svc1="$(cpu_ticks "$service_pid")"
  for s in "${shards[@]}"; do set -- $s
    printf '{"shard":"%s","cluster":"%s","dbCpuMs":%s,"serviceCpuMs":%s}\n' "$1" "$2" \
      "$(awk -v t="$(( $(cluster_ticks "$2") - $(cat "$dir/burst-$1.before") ))" -v hz="$hz" 'BEGIN {printf "%.0f", t * 1000 / hz}')" \
      "$(awk -v t="$((svc1 - svc0))" -v hz="$hz" 'BEGIN {printf "%.0f", t * 1000 / hz}')" > "$dir/burst-$1.json"
    log "shards, $n: burst in shard $1: $(cat "$dir/transitions-$1.json") $(cat "$dir/burst-$1.json")"
  done
  kill "$service_pid" 2>/dev/null || true; wait "$service_pid" 2>/dev/null || true
}
shards_comparison() {
  if [ "$port" = "5432" ]; then log "comparison 10 needs the bench's own cluster (not ENROLMENT_BENCH_PG_PORT=5432): not measured"; return 0; fi
  second_cluster
  shards_phase 1
  shards_phase 2
}

if [ "$only" = shards ]; then
  shards_comparison
  dotnet "$bench_dll" report --dir "$out"
  log "wrote $out/report.md and $out/report.json"
  exit 0
fi

# An audit checkpoint round (the service's CLI, `audit checkpoint`), timed by the round itself: raw/NAME.json holds the
# tenants anchored, the new chain rows read and the milliseconds. The first covers the whole seeded history; the one
# after the completion run covers that run's events only, so its cost must not grow with the history (issue #32).
checkpoint_timed() { # name
  local line; line="$(cd "$api_dir" && Logging__LogLevel__Default=Warning dotnet "$api_dll" audit checkpoint 2> "$logs/$1.log" | tail -1)"
  printf '%s\n' "$line" | sed -nE 's/^Took ([0-9]+) checkpoint\(s\) over ([0-9]+) new chain row\(s\) in ([0-9]+) ms\.$/{"taken":\1,"events":\2,"ms":\3}/p' > "$raw/$1.json"
  log "$1: ${line:-no answer, see $logs/$1.log}"
}
# 1. The first 10,000, then the service and the baseline, then reads at 10,000.
seed S "$small" small
log "starting the service on $service_url and the baseline on $baseline_url"
# Its own audit checkpoint rounds are off (a day apart): the benchmark takes them itself at known points and times them
# (checkpoint_timed), so that each covers a known piece of work.
(cd "$api_dir" && ASPNETCORE_URLS="$service_url" Limits__RequestsPerSecondPerTenant=100000000 Audit__CheckpointInterval=1.00:00:00 exec dotnet "$api_dll") > "$logs/service.log" 2>&1 &
service_pid=$!; pids+=("$service_pid")
# The service's resident set once a second (raw/rss-timeline.tsv: unix time, KiB), to tell which comparison its peak
# (figure 8) belongs to; the log lines above carry the times of each step.
(while kill -0 "$service_pid" 2>/dev/null; do
   printf '%s\t%s\n' "$(date +%s)" "$(awk '/VmRSS/ {print $2}' "/proc/$service_pid/status" 2>/dev/null)"; sleep 1
 done) > "$raw/rss-timeline.tsv" &
pids+=("$!")
dotnet "$bench_dll" baseline --port "${baseline_url##*:}" --connection "$cs" > "$logs/baseline.log" 2>&1 &
baseline_pid=$!; pids+=("$baseline_pid")
wait_for "$service_url" service
wait_for "$baseline_url" baseline

targets "$raw/targets-small" "$raw/seed-small.json"
run_wrk service-read-small "$raw/targets-small/reads-small.tsv" "$service_url" "$connections"
run_wrk baseline-read-small "$raw/targets-small/reads-small.tsv" "$baseline_url" "$connections"
# The same reads with 4 connections, which do not saturate 2 cores: at 32 the p99 is the run queue of the connections'
# PostgreSQL backends, the service and wrk (figure 2's growth, taken at both sizes, then measures scheduling more
# than the data); at 4 it measures what the size of the data adds.
run_wrk service-read-small-4 "$raw/targets-small/reads-small.tsv" "$service_url" 4
run_wrk baseline-read-small-4 "$raw/targets-small/reads-small.tsv" "$baseline_url" 4

# Issue #32's work-proportional figures (11, 12, 13), at 10,000 here and again at the full size below: the same work
# (a burst of 200 conflicting completion pairs, the audit checkpoint after it, the pages' first load of the seeded
# tenant's assignment) must cost the same whatever the history. After the summaries caught up with the seeding.
seed_tenant="$(first_field tenantId "$raw/seed-small.json")"
seed_assignment="$(first_field assignmentId "$raw/seed-small.json")"
wait_summaries summary-catchup-small
checkpoint_timed checkpoint-history-small
dotnet "$bench_dll" conflicts --url "$service_url" --tenant "$seed_tenant" --secret "$secret" --connection "$cs" > "$raw/conflicts-small.json" || log "the summaries did not catch up after the conflicts (10,000)"
log "conflicts at 10,000: $(cat "$raw/conflicts-small.json")"
checkpoint_timed checkpoint-after-conflicts-small
dotnet "$bench_dll" first-load --url "$service_url" --tenant "$seed_tenant" --secret "$secret" --assignment "$seed_assignment" > "$raw/first-load-small.json" || log "the pages' first load failed (10,000)"
log "first load at 10,000: $(cat "$raw/first-load-small.json")"

# 2. The rest of the dataset, then reads, lists and writes at the full size.
if [ "$size" -gt "$small" ]; then
  seed L "$((size - small))" full
  targets "$raw/targets" "$raw/seed-small.json" "$raw/seed-full.json"
else
  cp -r "$raw/targets-small" "$raw/targets"
fi
wait_summaries

checkpoint_timed checkpoint-history

psql_db -qtA -c "select pg_stat_statements_reset()" >/dev/null 2>&1 || true
run_wrk service-read-full "$raw/targets/reads-full.tsv" "$service_url" "$connections"
run_wrk baseline-read-full "$raw/targets/reads-full.tsv" "$baseline_url" "$connections"
run_wrk service-list-full "$raw/targets/list-full.tsv" "$service_url" "$connections"
run_wrk baseline-list-full "$raw/targets/list-full.tsv" "$baseline_url" "$connections"
run_wrk service-read-full-4 "$raw/targets/reads-full.tsv" "$service_url" 4
run_wrk baseline-read-full-4 "$raw/targets/reads-full.tsv" "$baseline_url" 4
run_wrk service-list-full-4 "$raw/targets/list-full.tsv" "$service_url" 4
run_wrk baseline-list-full-4 "$raw/targets/list-full.tsv" "$baseline_url" 4

psql_db -c "select calls, round(mean_exec_time::numeric, 3) as mean_ms, round(total_exec_time::numeric) as total_ms, left(regexp_replace(query, '\s+', ' ', 'g'), 220) as query from pg_stat_statements order by total_exec_time desc limit 12" > "$raw/pg-top-reads.txt" 2>&1 || true

# Completions: the warm-up requests and the measured ones are different enrolments, so every measured request completes one.
# The warm-up is longer than the reads' (--write-warmup, 30 s) and completes real enrolments (up to 10,000, a quarter of
# the targets at most): the write path is first run here, and with 5 s its JIT compilation (tier 0, then the optimised
# tier) fell inside the measured 20 s: ~17% of the service's CPU there, and 2.5-3.7 ms of it per completion against 1.7
# ms once compiled (a profile of this comparison at 1,000,000 with perf; docs/benchmarks.md).
write_warm_n="$(( $(wc -l < "$raw/targets/completions.tsv") / 4 ))"; [ "$write_warm_n" -gt 10000 ] && write_warm_n=10000
head -n "$write_warm_n" "$raw/targets/completions.tsv" > "$raw/targets/completions-warmup.tsv"
tail -n +"$((write_warm_n + 1))" "$raw/targets/completions.tsv" > "$raw/targets/completions-measured.tsv"
dotnet "$bench_dll" count-completions --connection "$cs" > "$raw/completions-before.json"
run_wrk service-completions "$raw/targets/completions-measured.tsv" "$service_url" "$write_connections" "$raw/targets/completions-warmup.tsv" "$write_warmup"
sleep 2
dotnet "$bench_dll" count-completions --connection "$cs" > "$raw/completions-after.json"
run_wrk baseline-completions "$raw/targets/completions-measured.tsv" "$baseline_url" "$write_connections" "$raw/targets/completions-warmup.tsv" "$write_warmup"
dotnet "$bench_dll" count-completions --connection "$cs" > "$raw/completions-after-baseline.json"
checkpoint_timed checkpoint-after-completions

# The summaries' lag after a burst of conflicts: each of 200 completions sent twice at once (one of each pair rolls
# back, leaving a hole in the event sequence), then the time until the summaries have processed everything.
# At the full size the burst and the first load below use a tenant of the rest of the dataset (its assignment has
# 247,500 people at 1,000,000; the 10,000 figures used a small tenant's 2,500): neither may grow with the assignment.
if [ "$size" -gt "$small" ]; then
  large_tenant="$(first_field tenantId "$raw/seed-full.json")"
  large_assignment="$(first_field assignmentId "$raw/seed-full.json")"
else
  large_tenant="$seed_tenant" large_assignment="$seed_assignment"
fi
dotnet "$bench_dll" conflicts --url "$service_url" --tenant "$large_tenant" --secret "$secret" --connection "$cs" > "$raw/conflicts.json" || log "the summaries did not catch up after the conflicts"
log "conflicts: $(cat "$raw/conflicts.json")"
checkpoint_timed checkpoint-after-conflicts
dotnet "$bench_dll" first-load --url "$service_url" --tenant "$large_tenant" --secret "$secret" --assignment "$large_assignment" > "$raw/first-load.json" || log "the pages' first load failed"
log "first load: $(cat "$raw/first-load.json")"

# 5. Fan-out: an audience of $fanout users assigned through the service (until all readable) vs a raw COPY of as
# many event and document rows.
log "fan-out of $fanout users through the service (tenant $seed_tenant)"
dotnet "$bench_dll" fanout --url "$service_url" --tenant "$seed_tenant" --secret "$secret" --connection "$cs" --count "$fanout" > "$raw/fanout-service.json"
log "fan-out: $(cat "$raw/fanout-service.json")"
dotnet "$bench_dll" fanout-baseline --connection "$cs" --count "$fanout" > "$raw/fanout-baseline.json"
log "fan-out baseline: $(cat "$raw/fanout-baseline.json")"

# 10. CSV export of the fan-out's assignment ($fanout rows, all of them, Accept: text/csv) vs PostgreSQL's own COPY of
# the same rows to CSV; the service's resident set is sampled every 0.1 s during the export (it must not grow with the rows).
fanout_assignment="$(first_field assignmentId "$raw/fanout-service.json")"
# After the summaries' daemon has taken in the fan-out's events (in run 1 of 2026-12-07 the export overlapped that
# catch-up and took 26 s; 2.3 s on the same database once quiet).
wait_summaries summary-catchup-fanout
if [ -n "$fanout_assignment" ]; then
  rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$service_pid/status")
  (while :; do awk '/VmRSS/ {print $2}' "/proc/$service_pid/status"; sleep 0.1; done) > "$raw/csv-rss.txt" &
  sampler=$!
  t0=$(date +%s.%N)
  curl -sf -u "$seed_tenant:$secret" -H 'Accept: text/csv' "$service_url/assignments/$fanout_assignment/enrolments" -o "$raw/export.csv" || log "the CSV export failed"
  t1=$(date +%s.%N)
  kill "$sampler" 2>/dev/null || true
  rows=$(( $(wc -l < "$raw/export.csv") - 1 ))
  peak=$(sort -n "$raw/csv-rss.txt" | tail -1)
  t2=$(date +%s.%N)
  psql_db -qtA -c "copy (select id, user_id, assignment_id, data->>'audienceId', data->>'primaryContentId', status, data->>'availableDate', data->>'dueDate', data->>'lastCompletedAt', data->>'waived', data->>'updatedAt' from enrolment.mt_doc_enrolment where tenant_id = '$seed_tenant' and assignment_id = '$fanout_assignment' order by id) to stdout with (format csv, header)" > "$raw/export-baseline.csv"
  t3=$(date +%s.%N)
  baseline_rows=$(( $(wc -l < "$raw/export-baseline.csv") - 1 ))
  awk -v r="$rows" -v t0="$t0" -v t1="$t1" -v br="$baseline_rows" -v t2="$t2" -v t3="$t3" -v before="$rss_before" -v peak="${peak:-0}" \
    'BEGIN {s = t1 - t0; bs = t3 - t2; printf "{\"rows\":%d,\"seconds\":%.3f,\"rowsPerSecond\":%.1f,\"baselineRows\":%d,\"baselineSeconds\":%.3f,\"baselineRowsPerSecond\":%.1f,\"rssBeforeKiB\":%d,\"rssPeakKiB\":%d}\n", r, s, r / s, br, bs, br / bs, before, peak}' > "$raw/csv-export.json"
  log "CSV export: $(cat "$raw/csv-export.json")"
fi

# 7. $due enrolments due at one instant, with a steady read load (fewer connections than the saturating runs, so
# the read latency measures interference rather than queueing): idle p99 first, then p99 while they transition.
# "Idle" is after the summaries' daemon has caught up with the seeded set (its 3 events an enrolment, written past
# the service): measured right after seeding, it was the daemon's catch-up (p99 8-322 ms from one run to the next).
# The due instant leaves room for seeding, that catch-up (~2,000 events/s at 1,000,000) and the idle read.
due_in=$(( 90 + 3 * due / 1000 ))
due_at=$(( $(date +%s) + due_in ))
log "seeding $due enrolments due in ${due_in}s (label D)"
(cd "$api_dir" && Logging__LogLevel__Default=Warning dotnet "$api_dll" seed --tenants "$tenants" --enrolments "$due" --label D --secret "$secret" --mode "$mode" --due-in "$due_in") \
  2> "$logs/seed-due.log" | grep '^{' | tail -1 > "$raw/seed-due.json"
seeded_at=$(date +%s)
wait_summaries summary-catchup-due
[ "$(date +%s)" -lt "$((due_at - 30))" ] || log "warning: seeding and the summaries' catch-up ended less than 30 s before the due instant; the idle read figure overlaps the transitions"
run_wrk service-read-idle "$raw/targets/reads-full.tsv" "$service_url" "$read_load_connections"
now=$(date +%s); [ "$now" -lt "$due_at" ] && { log "waiting $((due_at - now)) s for the due instant"; sleep "$((due_at - now))"; }
dotnet "$bench_dll" transition-lag --connection "$cs" --label D --expected "$due" --timeout 1200 > "$raw/transitions.json" &
lag_pid=$!
# The bus figure: until the burst's $due integration events are rows of the embedded transport's queue table (what a
# ListenToPostgresqlQueue consumer reads) and the outbox holds none of them.
dotnet "$bench_dll" bus-lag --transport postgresql --connection "$cs" --label D --expected "$due" --since "$seeded_at" --timeout 1200 \
  > "$raw/bus-postgresql.json" 2> "$logs/bus-postgresql.log" &
bus_pid=$!
chunk=0
while kill -0 "$lag_pid" 2>/dev/null; do
  chunk=$((chunk + 1))
  BENCH_TARGETS="$raw/targets/reads-full.tsv" BENCH_THREADS="$threads" wrk -t"$threads" -c"$read_load_connections" -d15s --latency -s "$root/build/bench/rotate.lua" "$service_url" > "$logs/wrk-read-under-transitions-$chunk.txt"
  grep '^{' "$logs/wrk-read-under-transitions-$chunk.txt" | tail -1 > "$raw/wrk-read-under-transitions-$chunk.json"
done
wait "$lag_pid" || log "not every due enrolment became overdue within the timeout"
log "transitions: $(cat "$raw/transitions.json")"
wait "$bus_pid" || log "not every integration event of the burst reached the PostgreSQL queue within the timeout: see $logs/bus-postgresql.log"
log "bus (postgresql): $(cat "$raw/bus-postgresql.json")"

# 8. Peak resident memory of the service process over the whole run.
awk '/VmHWM|VmRSS/ {gsub(":", "", $1); v[$1]=$2} END {printf "{\"vmHwmKiB\": %d, \"vmRssKiB\": %d}\n", v["VmHWM"], v["VmRSS"]}' "/proc/$service_pid/status" > "$raw/rss.json"
peak_at="$(sort -t$'\t' -k2,2n "$raw/rss-timeline.tsv" | tail -1 | cut -f1)"
log "service memory: $(cat "$raw/rss.json")${peak_at:+; highest sampled RSS at $(date -u -d "@$peak_at" +%H:%M:%S)}"

# Query plans behind the read and the list routes, for the report's bottleneck notes.
sample_row="$(psql_db -qtA -F' ' -c "select tenant_id, assignment_id, id from enrolment.mt_doc_enrolment order by random() limit 1")"
read -r t a i <<< "$sample_row"
psql_db -c "EXPLAIN (ANALYZE, BUFFERS) select d.data from enrolment.mt_doc_enrolment as d where d.id = '$i' and d.tenant_id = '$t'" > "$raw/explain-read.txt"
psql_db -c "EXPLAIN (ANALYZE, BUFFERS) select d.data from enrolment.mt_doc_enrolment as d where d.tenant_id = '$t' and d.assignment_id = '$a' and d.status = 'Open' and d.id > '$i' order by d.id limit 101" > "$raw/explain-list.txt"

# 6. Rebuild the enrolment documents from every event (`enrolments rebuild`, through the service's own CLI, in place
# while nothing else runs) vs reading and deserialising the same events raw. Last but for the RabbitMQ burst, because
# it rewrites the documents the other comparisons read.
log "rebuilding the enrolment documents from all events"
rebuild_start=$(date +%s.%N)
(cd "$api_dir" && Logging__LogLevel__Default=Warning dotnet "$api_dll" enrolments rebuild --restart) > "$logs/rebuild.log" 2>&1 || log "the rebuild failed: see $logs/rebuild.log"
# Its last line per shard: "Shard <name>: rebuilt N enrolment documents from M events in …".
rebuild_ms="$(grep -q '^Shard .*: rebuilt ' "$logs/rebuild.log" && awk -v s="$rebuild_start" -v e="$(date +%s.%N)" 'BEGIN {printf "%d", (e - s) * 1000}' || true)"
events_total="$(psql_db -qtA -c "select count(*) from enrolment.mt_events where type not like 'assignment%'")"
echo "{\"events\": $events_total, \"seconds\": $(awk -v ms="${rebuild_ms:-0}" 'BEGIN {printf "%.3f", ms / 1000}')}" > "$raw/rebuild-service.json"
log "rebuild: $(cat "$raw/rebuild-service.json")"
dotnet "$bench_dll" rebuild-baseline --connection "$cs" > "$raw/rebuild-baseline.json"
log "rebuild baseline: $(cat "$raw/rebuild-baseline.json")"

# 7, on RabbitMQ: the service restarted with Bus__Transport=rabbitmq, a second set of $due enrolments (label E) due at
# one instant, and a queue of our own bound to the service's exchange before it, as a consumer's would be. Last, so no
# other comparison sees the extra events. The bench's own exchange and queues, so a bus test sharing the broker
# neither adds messages to the count nor takes the service's. Not measured (with the reason) if the broker won't start.
rabbit_exchange=enrolment.bench.events
rabbit_queues=(enrolment.bench.events.all enrolment.bench.completions enrolment.bench.completions.dead-letter)
rabbitmq_burst() { # sets why when it could not measure (not in a subshell: it replaces the service process)
  rabbitmqctl -q status >/dev/null 2>&1 || local was_down=1
  "$root/build/rabbitmq.sh" > "$logs/rabbitmq.log" 2>&1 || { why="RabbitMQ could not be started: $(tail -1 "$logs/rabbitmq.log")"; return 1; }
  [ -n "${was_down:-}" ] && started_rabbitmq=1
  log "restarting the service on RabbitMQ (exchange $rabbit_exchange)"
  kill "$service_pid"; wait "$service_pid" 2>/dev/null || true
  (cd "$api_dir" && ASPNETCORE_URLS="$service_url" Limits__RequestsPerSecondPerTenant=100000000 Bus__Transport=rabbitmq \
     Bus__RabbitMq__Exchange="$rabbit_exchange" Bus__RabbitMq__AllEventsQueue="${rabbit_queues[0]}" \
     Bus__RabbitMq__CompletionsQueue="${rabbit_queues[1]}" Bus__RabbitMq__CompletionsDeadLetterQueue="${rabbit_queues[2]}" \
     exec dotnet "$api_dll") > "$logs/service-rabbitmq.log" 2>&1 &
  service_pid=$!; pids+=("$service_pid")
  local up=""
  for _ in $(seq 1 120); do curl -sf -o /dev/null "$service_url/health/live" && { up=1; break; }; sleep 1; done
  [ -n "$up" ] || { why="the service on RabbitMQ did not answer within 120 s (logs/service-rabbitmq.log)"; return 1; }
  # Due as soon as seeding is surely over (the first due set's seeding time, with a margin): no idle read here.
  local due_in due_at now bus_pid
  due_in=$(awk -v s="$(grep -o '"seconds":[0-9.]*' "$raw/seed-due.json" | cut -d: -f2)" 'BEGIN {printf "%d", 20 + 1.5 * (s == "" ? 60 : s)}')
  due_at=$(( $(date +%s) + due_in ))
  log "seeding $due enrolments due in ${due_in}s (label E)"
  (cd "$api_dir" && Logging__LogLevel__Default=Warning dotnet "$api_dll" seed --tenants "$tenants" --enrolments "$due" --label E --secret "$secret" --mode "$mode" --due-in "$due_in") \
    2> "$logs/seed-due-rabbitmq.log" | grep '^{' | tail -1 > "$raw/seed-due-rabbitmq.json"
  dotnet "$bench_dll" bus-lag --transport rabbitmq --connection "$cs" --label E --expected "$due" --timeout 1200 --exchange "$rabbit_exchange" \
    --queue enrolment.bench.burst > "$raw/bus-rabbitmq.json" 2> "$logs/bus-rabbitmq.log" &
  bus_pid=$!
  for _ in $(seq 1 30); do grep -q '^\[bus\]' "$logs/bus-rabbitmq.log" && break; kill -0 "$bus_pid" 2>/dev/null || break; sleep 1; done
  grep -q '^\[bus\]' "$logs/bus-rabbitmq.log" || { kill "$bus_pid" 2>/dev/null; why="could not bind a queue to $rabbit_exchange (logs/bus-rabbitmq.log)"; return 1; }
  now=$(date +%s)
  if [ "$now" -lt "$due_at" ]; then log "waiting $((due_at - now)) s for the due instant"; sleep "$((due_at - now))"
  else log "warning: the RabbitMQ burst's queue was bound $((now - due_at)) s after its due instant"; fi
  dotnet "$bench_dll" transition-lag --connection "$cs" --label E --expected "$due" --timeout 1200 > "$raw/transitions-rabbitmq.json" ||
    log "not every due enrolment of the RabbitMQ burst became overdue within the timeout"
  wait "$bus_pid" || log "not every integration event of the burst reached the RabbitMQ queue within the timeout: see $logs/bus-rabbitmq.log"
  log "bus (rabbitmq): $(cat "$raw/bus-rabbitmq.json")"
}
why=""
if ! rabbitmq_burst; then
  log "the RabbitMQ bus figure is not measured: $why"
  printf '{"notMeasured": "%s"}\n' "$(printf '%s' "$why" | sed 's/\\/\\\\/g; s/"/\\"/g')" > "$raw/bus-rabbitmq.json"
fi
kill "$service_pid" 2>/dev/null || true
for q in "${rabbit_queues[@]}"; do rabbitmqctl -q delete_queue "$q" >/dev/null 2>&1 || true; done

# 10. Shards, when asked (--shards): last, on databases of its own.
[ -n "$with_shards" ] && shards_comparison

dotnet "$bench_dll" report --dir "$out"
log "wrote $out/report.md and $out/report.json"
