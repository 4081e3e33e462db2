#!/usr/bin/env bash
# Kill test for the outbox: the service (RabbitMQ transport) is killed with SIGKILL while 16 clients record
# completions; after a restart, every committed status change must reach RabbitMQ (at least once).
# Prints "committed N, delivered M distinct (D duplicates), missing X". Exit 1 if anything committed is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
USERS="${USERS:-400}"; PORT="${PORT:-5095}"; DB=enrolment_kill; TENANT=eu-west-2_KillTest1
export ENROLMENT_DB_NAME=$DB
as_postgres() { runuser -u postgres -- "$@"; }
"$root/db/start.sh"; "$root/build/rabbitmq.sh"
as_postgres psql -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"; "$root/db/start.sh"
curl -s -u guest:guest -X DELETE http://127.0.0.1:15672/api/queues/%2F/enrolment.events.all >/dev/null || true
dotnet build "$root/src/Enrolment.Api" -c Release -nologo -v quiet >&2
dll="$root/src/Enrolment.Api/bin/Release/net10.0/Enrolment.Api.dll"
export ConnectionStrings__Enrolment="Host=127.0.0.1;Port=5432;Database=$DB;Username=enrolment;Password=enrolment"
export ASPNETCORE_ENVIRONMENT=Development Bus__Transport=rabbitmq Transitions__Enabled=false ASPNETCORE_URLS="http://127.0.0.1:$PORT" Limits__RequestsPerSecondPerTenant=100000
start() { (cd "$root/src/Enrolment.Api" && exec dotnet "$dll" >>/tmp/kill-publish-service.log 2>&1) & pid=$!
  for i in $(seq 1 90); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && return; sleep 1; done; echo "service did not start" >&2; exit 1; }
start
SECRET=$(cd "$root/src/Enrolment.Api" && dotnet "$dll" tenants add $TENANT 2>/dev/null | tail -1)
A="$TENANT:$SECRET"; B="http://127.0.0.1:$PORT"; J='content-type: application/json'
users=$(python3 -c "import json;print(json.dumps({'userIds':['u%d'%i for i in range($USERS)]}))")
curl -sf -u "$A" -X PUT "$B/audiences/all/members" -H "$J" -d "$users" >/dev/null
op=$(curl -sf -u "$A" -X POST "$B/assignments" -H "$J" -d '{"audienceId":"all","primaryContentId":"c1","completionPeriod":"P30D"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["operation"]["href"])')
for i in $(seq 1 120); do [ "$(curl -sf -u "$A" "$B$op" | python3 -c 'import sys,json;print(json.load(sys.stdin)["status"])')" = completed ] && break; sleep 1; done
now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
seq 0 $((USERS-1)) | xargs -P 16 -I{} curl -s -o /dev/null -w '%{http_code}\n' -u "$A" -X POST "$B/completions" -H "$J" \
  -d "{\"completionId\":\"k-{}\",\"userId\":\"u{}\",\"contentId\":\"c1\",\"completedAt\":\"$now\"}" > /tmp/kill-publish-codes.txt 2>/dev/null &
load=$!
sleep "${KILL_AFTER:-1.5}"; kill -9 $pid; echo "[kill] SIGKILL sent to the service" >&2
wait $load || true
start
sleep "${SETTLE:-15}"
kill $pid; wait $pid 2>/dev/null || true
acked=$(grep -c '^2' /tmp/kill-publish-codes.txt || true)
committed=$(as_postgres psql -d $DB -tA -c "select count(*) from enrolment.mt_events where tenant_id='$TENANT' and mt_dotnet_type like 'Enrolment.Domain.Enrolment%' and mt_dotnet_type not like '%Reminder%'")
completions=$(as_postgres psql -d $DB -tA -c "select count(*) from enrolment.mt_events where tenant_id='$TENANT' and mt_dotnet_type like 'Enrolment.Domain.EnrolmentCompleted%'")
curl -s -u guest:guest -X POST -H "$J" http://127.0.0.1:15672/api/queues/%2F/enrolment.events.all/get \
  -d '{"count":100000,"ackmode":"ack_requeue_false","encoding":"auto"}' > /tmp/kill-publish-messages.json
python3 - "$committed" "$acked" "$completions" <<'PY'
import json, sys
committed, acked, completions = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
msgs = [json.loads(m["payload"]) for m in json.load(open("/tmp/kill-publish-messages.json"))]
ids = [m["messageId"] for m in msgs]
distinct = len(set(ids))
print(f"completions acknowledged 2xx {acked}, completion events stored {completions}; "
      f"status-change events committed {committed}, delivered {distinct} distinct ({len(ids) - distinct} duplicates), missing {committed - distinct}")
sys.exit(0 if distinct >= committed and completions >= acked else 1)
PY
