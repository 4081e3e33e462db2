#!/usr/bin/env bash
# Runs every test of the solution against a real PostgreSQL (installed and started if needed) and prints
# a last line "N passed, N failed[, N skipped]". Exits non-zero on any failure.
#   ./build/test.sh                      everything
#   ./build/test.sh --filter <expr>      passes extra arguments to dotnet test
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

export ENROLMENT_DB_NAME="${ENROLMENT_TEST_DB_NAME:-enrolment_test}"
"$root/db/start.sh" || { echo "0 passed, 1 failed (PostgreSQL could not be started; see above)"; exit 1; }
# The bus tests need a RabbitMQ broker (installed from Debian's packages on first use).
if [ "${ENROLMENT_SKIP_RABBITMQ:-0}" != "1" ]; then
  "$root/build/rabbitmq.sh" || { echo "0 passed, 1 failed (RabbitMQ could not be started; see above)"; exit 1; }
fi
# The AsyncAPI document is validated with the AsyncAPI project's parser (npm, pinned by build/asyncapi/package-lock.json).
"$root/build/asyncapi/install.sh" || { echo "0 passed, 1 failed (the AsyncAPI parser could not be installed; see above)"; exit 1; }
# The pages under /app/ and Debian's chromium, which PagesBrowserTests drives (npm, pinned by src/Enrolment.Pages/package-lock.json).
"$root/build/pages.sh" --browser || { echo "0 passed, 1 failed (the pages could not be built; see above)"; exit 1; }
export ENROLMENT_TEST_CONNECTION="${ENROLMENT_TEST_CONNECTION:-Host=127.0.0.1;Port=5432;Database=${ENROLMENT_DB_NAME};Username=enrolment;Password=enrolment;Timeout=5;Command Timeout=60}"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# The service runs the handler code committed in src/Enrolment.Api/Internal/Generated (TypeLoadMode.Static). Regenerate
# it from the handlers as they are now: if that changes anything, the committed code was stale (counted as a failure;
# the tests below then run on the regenerated code).
stale=0
generated="src/Enrolment.Api/Internal/Generated"
if "$root/build/codegen.sh" 2> "$log"; then
  # Stale = the regenerated files differ from the index (committed or staged), or new files appeared.
  if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
     { ! git -C "$root" diff --quiet -- "$generated" || [ -n "$(git -C "$root" ls-files --others --exclude-standard -- "$generated")" ]; }; then
    stale=1
    echo "FAILED: $generated did not match the handlers; ./build/codegen.sh has regenerated it. Review and commit it:"
    git -C "$root" status --short -- "$generated" | head -20
  fi
else
  cat "$log"; stale=1; echo "FAILED: ./build/codegen.sh could not regenerate the handler code (see above)."
fi

dotnet test "$root/Enrolment.EventSourced.sln" -c Release --nologo "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# The OpenAPI document as integrators use it: Redocly's recommended rules, the README walk-through through Prism's
# validating proxy in front of the real service, and Portman's contract tests over its data (build/openapi/check.sh).
# Counted as one test.
openapi_failed=0
if [ "${ENROLMENT_SKIP_OPENAPI_CHECK:-0}" != "1" ]; then
  ENROLMENT_DB_NAME="${ENROLMENT_DB_NAME}_openapi" "$root/build/openapi/check.sh" || { openapi_failed=1; echo "FAILED: build/openapi/check.sh (see above)"; }
fi

# The reviewed DDL in db/ must be what the service creates today: a fresh export against an empty database, compared
# line by line (as sets: Wolverine writes its queue tables in no fixed order). Counted as one test.
schema_failed=0
if [ "${ENROLMENT_SKIP_SCHEMA_CHECK:-0}" != "1" ]; then
  export_dir="$(mktemp -d)"
  if "$root/db/export-schema.sh" "$export_dir" > "$export_dir/export.log" 2>&1; then
    for f in schema.marten.sql schema.wolverine.sql; do
      if ! diff <(sort "$root/db/$f") <(sort "$export_dir/$f") > "$export_dir/$f.diff"; then
        schema_failed=1
        echo "FAILED: db/$f differs from what the service creates now (lines < only in db/, > only in a fresh export):"
        head -20 "$export_dir/$f.diff"
        echo "Run ./db/export-schema.sh, review the change and commit it."
      fi
    done
  else
    schema_failed=1; tail -20 "$export_dir/export.log"; echo "FAILED: db/export-schema.sh could not export the schema (see above)."
  fi
  rm -rf "$export_dir"
fi

# dotnet test prints one summary per test project: "Passed!  - Failed: 0, Passed: 12, Skipped: 0, Total: 12, ..."
read -r passed failed skipped < <(grep -E "(Passed|Failed)! +- Failed: +[0-9]+, Passed: +[0-9]+, Skipped: +[0-9]+" "$log" |
  sed -E 's/.*Failed: +([0-9]+), Passed: +([0-9]+), Skipped: +([0-9]+).*/\2 \1 \3/' |
  awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}')
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; echo "The build or a test host failed before tests could report; see above."; fi
failed=$((failed + stale + openapi_failed + schema_failed))
[ "${ENROLMENT_SKIP_OPENAPI_CHECK:-0}" != "1" ] && [ "$openapi_failed" -eq 0 ] && passed=$((passed + 1))
[ "${ENROLMENT_SKIP_SCHEMA_CHECK:-0}" != "1" ] && [ "$schema_failed" -eq 0 ] && passed=$((passed + 1))
summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
