#!/usr/bin/env bash
# Checks the served OpenAPI document as integrators use it:
#   1. Redocly's recommended ruleset on /openapi/v1.json: no error;
#   2. the README's walk-through, run as written through Stoplight Prism's validating proxy (`prism proxy --errors`)
#      in front of the real service: no request or answer Prism finds outside the document;
#   3. contract tests that Portman (@apideck/portman) generates from the document, run by Newman against the service
#      over the walk-through's data: every read of that data and every write the walk-through makes (build/openapi/portman
#      says which) answers 2xx with the documented content type, JSON body, schema and headers.
# Needs the Release build (./build/test.sh and ./build/run.sh make it) and PostgreSQL (db/start.sh). Installs Node.js,
# npm and jq with apt-get where missing, and the pinned npm tools with `npm ci`. Exit 0 when both checks pass.
#   ENROLMENT_DB_NAME       database to use (default enrolment_openapi_check; the walk-through creates a tenant in it)
#   OPENAPI_CHECK_PORT      port of the service (default: the first free pair from 5391); Prism listens on the next one
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/build/openapi"
log() { echo "[openapi] $*" >&2; }

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v jq >/dev/null 2>&1 || missing+=(jq)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2 || { log "apt-get install ${missing[*]} failed"; exit 1; }
fi
if [ ! -x "$here/node_modules/.bin/prism" ] || [ ! -x "$here/node_modules/.bin/portman" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  log "npm ci (Redocly CLI, Prism, Portman, Newman) in build/openapi"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2) || { log "npm ci failed"; exit 1; }
fi

db="${ENROLMENT_DB_NAME:-enrolment_openapi_check}"
ENROLMENT_DB_NAME="$db" "$root/db/start.sh" >/dev/null || { log "PostgreSQL could not be started"; exit 1; }
# Two free ports next to each other (other services on a shared machine may hold the default ones): a port taken by
# someone else would have this check read their document and drive their service.
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port="${OPENAPI_CHECK_PORT:-5391}"
if [ -z "${OPENAPI_CHECK_PORT:-}" ]; then
  while in_use "$port" || in_use $((port + 1)); do port=$((port + 2)); [ "$port" -lt 5491 ] || { log "no two free ports in 5391-5490"; exit 1; }; done
fi
prism_port=$((port + 1))
bin="$root/src/Enrolment.Api/bin/Release/net10.0"
[ -f "$bin/Enrolment.Api.dll" ] || dotnet build "$root/src/Enrolment.Api/Enrolment.Api.csproj" -c Release -nologo -v quiet >&2
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null; done; wait 2>/dev/null; [ -n "${OPENAPI_CHECK_KEEP:-}" ] && cp -r "$work" "$OPENAPI_CHECK_KEEP"; rm -rf "$work"; }
trap cleanup EXIT

export ASPNETCORE_ENVIRONMENT=Development DOTNET_ENVIRONMENT=Development
export ConnectionStrings__Enrolment="Host=127.0.0.1;Port=5432;Database=$db;Username=enrolment;Password=enrolment"
# From its folder, the content root (appsettings.json).
(cd "$bin" && ASPNETCORE_URLS="http://127.0.0.1:$port" exec setsid dotnet Enrolment.Api.dll > "$work/service.log" 2>&1) &
pids+=($!)
for _ in $(seq 60); do curl -sf -o /dev/null "http://127.0.0.1:$port/health/ready" && break; sleep 1; done
# Still running, so what answers on the port is this service (one that failed to bind has exited).
kill -0 "${pids[0]}" 2>/dev/null &&
  curl -sf "http://127.0.0.1:$port/openapi/v1.json" -o "$work/openapi.json" || { log "the service did not start; its log:"; tail -20 "$work/service.log" >&2; exit 1; }

failed=0
log "redocly lint (recommended rules)"
if ! (cd "$here" && npx --no-install redocly lint "$work/openapi.json" --format stylish >"$work/lint.txt" 2>&1); then
  grep -vE "^\s*(║|╔|╚)" "$work/lint.txt" >&2; log "FAILED: redocly lint reports errors"; failed=1
else
  grep -E "validated|warning" "$work/lint.txt" | sed 's/^/[openapi] /' >&2
fi

(cd "$here" && exec setsid npx --no-install prism proxy "$work/openapi.json" "http://127.0.0.1:$port" --errors --host 127.0.0.1 --port "$prism_port" > "$work/prism.log" 2>&1) &
pids+=($!)
for _ in $(seq 60); do grep -q "Prism is listening" "$work/prism.log" 2>/dev/null && break; sleep 1; done
grep -q "Prism is listening" "$work/prism.log" || { log "Prism did not start:"; tail -20 "$work/prism.log" >&2; exit 1; }

tenant="eu-west-2_Prism$(date +%s)"
SECRET="$(cd "$bin" && dotnet Enrolment.Api.dll tenants add "$tenant" 2>/dev/null | tail -1)"
[ -n "$SECRET" ] || { log "could not create a tenant"; exit 1; }

# The walk-through block of the README, exactly as written (it waits for each fan-out by polling its operation), with
# the service's address replaced by Prism's. The service and the tenant are already there.
awk '/^## Walk-through/{f=1} f&&/^```bash/{b=1;next} b&&/^```/{exit} b' "$root/README.md" \
  | grep -v '^\./build/run.sh &' | grep -v '^SECRET=' \
  | sed -e "s#eu-west-2_AbcdEfghI#$tenant#g" -e "s#B=http://127.0.0.1:5080#B=http://127.0.0.1:$prism_port#" \
  > "$work/walkthrough.sh"
cat > "$work/harness.sh" <<EOF
SECRET='$SECRET'
headers='$work/headers.txt'
# Every answer's status line and headers, to look for Prism's violations afterwards.
curl() { command curl -D - "\$@" | awk -v h="\$headers" 'BEGIN{hdr=1} hdr{sub(/\r\$/,""); print >> h; if (\$0=="") hdr=0; next} {print}'; }
EOF
log "README walk-through through prism proxy --errors"
# Afterwards, the ids the walk-through made, for the contract tests below.
(cd "$work" && A= B= bash -c "source ./harness.sh; source ./walkthrough.sh; declare -p AID EID BOB T0 OP > ./ids.sh" > "$work/walkthrough.out" 2>&1)
requests=$(grep -c '^HTTP/' "$work/headers.txt" 2>/dev/null || echo 0)
violations=$(grep -ci '^sl-violations:' "$work/headers.txt" 2>/dev/null || true)
# The walk-through sends nothing that should fail: any 4xx or 5xx (Prism answers 422/500 for what it refuses) is a failure.
refused=$(grep -E '^HTTP/[0-9.]+ [45][0-9][0-9]' "$work/headers.txt" 2>/dev/null | wc -l)
# What the README's comments promise: bob and carol archived, carol open again after rejoining, alice open as of T0, and
# every fan-out completed in time.
out="$work/walkthrough.out"
promises=""
[ "$(grep -c '^"archived"$' "$out")" -ge 2 ] || promises="$promises; bob and carol are not both \"archived\""
grep -q '"status": "open"' "$out" || promises="$promises; no enrolment answered open"
[ "$(grep -v '^$' "$out" | tail -1)" = '"open"' ] || promises="$promises; ?asOf=\$T0 did not answer \"open\""
if grep -q 'still running' "$out"; then promises="$promises; a fan-out did not complete within 10 s"; fi
if [ "$requests" -lt 15 ] || [ "${violations:-0}" -gt 0 ] || [ "$refused" -gt 0 ] || [ -n "$promises" ]; then
  log "FAILED: $requests answers, ${violations:-0} with Prism violations, $refused refused (4xx/5xx)$promises"
  grep -i -B12 '^sl-violations:' "$work/headers.txt" | grep -iE '^(HTTP/|sl-violations)' | head -20 >&2
  tail -30 "$work/walkthrough.out" >&2
  failed=1
else
  log "README walk-through: $requests answers through Prism, no violation"
fi
# docs/identity.md's curl walk-through (SCIM with a static bearer secret, an access token from POST /oauth2/token), as
# written, through Prism as well: the same tenant, a scim secret made by its first line.
awk '/^## Testing a connection with curl/{f=1} f&&/^```bash/{b=1;next} b&&/^```/{exit} b' "$root/docs/identity.md" \
  | sed -e "s#eu-west-2_AbcdEfghI#$tenant#g" -e "s#B=http://127.0.0.1:5080#B=http://127.0.0.1:$prism_port#" -e "s#\./build/run\.sh tenants#enrolment_cli tenants#" \
  > "$work/identity.sh"
cat > "$work/identity-harness.sh" <<EOF
SECRET='$SECRET'
headers='$work/identity-headers.txt'
curl() { command curl -D - "\$@" | awk -v h="\$headers" 'BEGIN{hdr=1} hdr{sub(/\r\$/,""); print >> h; if (\$0=="") hdr=0; next} {print}'; }
enrolment_cli() { (cd '$bin' && dotnet Enrolment.Api.dll "\$@" 2>/dev/null); }
EOF
log "docs/identity.md walk-through through prism proxy --errors"
(cd "$work" && bash -c "source ./identity-harness.sh; source ./identity.sh" > "$work/identity.out" 2>&1)
out="$work/identity.out"; h="$work/identity-headers.txt"
requests=$(grep -c '^HTTP/' "$h" 2>/dev/null || echo 0)
violations=$(grep -ci '^sl-violations:' "$h" 2>/dev/null || true)
# One refusal is on purpose: the deleted user's 404 at the end.
refused=$(grep -E '^HTTP/[0-9.]+ [45][0-9][0-9]' "$h" 2>/dev/null | grep -vc ' 404' || true)
promises=""
[ "$(grep -c '^open$' "$out")" -ge 2 ] || promises="$promises; dana was not open twice (joined, reactivated)"
[ "$(grep -c '^archived$' "$out")" -ge 2 ] || promises="$promises; dana was not archived twice (deactivated, group deleted)"
grep -q '"enrolment.reinstated"' "$out" || promises="$promises; no reinstatement in the eventLog"
[ "$(grep -v '^$' "$out" | tail -1)" = '"404"' ] || promises="$promises; the deleted user did not answer 404"
if [ "$requests" -lt 15 ] || [ "${violations:-0}" -gt 0 ] || [ "$refused" -gt 0 ] || [ -n "$promises" ]; then
  log "FAILED: $requests answers, ${violations:-0} with Prism violations, $refused refused (4xx/5xx other than the 404)$promises"
  grep -i -B12 '^sl-violations:' "$h" | grep -iE '^(HTTP/|sl-violations)' | head -20 >&2
  tail -30 "$out" >&2
  failed=1
else
  log "docs/identity.md walk-through: $requests answers through Prism, no violation"
fi

# Portman turns the document into a Postman collection of contract tests (config: build/openapi/portman), with the
# walk-through's ids and the tenant's credentials as collection variables (PORTMAN_X_Y becomes {{xY}}); Newman runs it
# against the service itself (Prism has had its turn) and exits 1 on any failed assertion.
newman_counts() {
  awk -F'│' '/│ *(requests|assertions) /{for (i = 2; i <= 4; i++) gsub(/ /, "", $i); printf "%s%s %s (%s failed)", sep, $3, $2, $4; sep = ", "}' "$work/newman.txt"
}
started=$SECONDS
if [ ! -s "$work/ids.sh" ]; then
  log "FAILED: the walk-through left no ids for the contract tests"; failed=1
else
  # shellcheck disable=SC1091
  source "$work/ids.sh"
  # From the work folder: Portman writes its intermediate files (the credentials among them) under ./tmp.
  if ! (cd "$work" && PORTMAN_BASIC_AUTH_USERNAME="$tenant" PORTMAN_BASIC_AUTH_PASSWORD="$SECRET" PORTMAN_ASSIGNMENT_ID="$AID" \
        PORTMAN_ENROLMENT_ID="$EID" PORTMAN_ARCHIVED_ENROLMENT_ID="$BOB" PORTMAN_COMPLETED_AT="$T0" PORTMAN_OPERATION_ID="${OP##*/}" \
        "$here/node_modules/.bin/portman" -l "$work/openapi.json" -b "http://127.0.0.1:$port" -c "$here/portman/config.json" \
          -s "$here/portman/postman.json" --filterFile "$here/portman/filter.json" --collectionName enrolment -o "$work/collection.json" \
          > "$work/portman.txt" 2>&1); then
    tail -20 "$work/portman.txt" >&2; log "FAILED: Portman could not turn the document into contract tests"; failed=1
  elif ! (cd "$work" && "$here/node_modules/.bin/newman" run "$work/collection.json" --reporters cli --color off > "$work/newman.txt" 2>&1); then
    grep -E -A1 '^ +[0-9]+\. +[A-Za-z]*Error' "$work/newman.txt" | sed -E 's/ +/ /g' | head -40 >&2
    log "FAILED: Portman's contract tests: $(newman_counts)"; failed=1
  else
    log "Portman contract tests: $(newman_counts), in $((SECONDS - started)) s"
  fi
fi
exit $failed
