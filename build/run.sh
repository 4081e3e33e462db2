#!/usr/bin/env bash
# Starts the enrolment service on http://127.0.0.1:5080 (override with ASPNETCORE_URLS), after making sure
# PostgreSQL is installed, running and has the service's role and database.
#   ./build/run.sh                       start the service
#   ./build/run.sh tenants add <id>      run a command of the service instead (JasperFx commands plus ours:
#                                        tenants, db-apply, db-patch, describe, projections, codegen ...)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

"$root/db/start.sh"

export ASPNETCORE_ENVIRONMENT="${ASPNETCORE_ENVIRONMENT:-Development}"
export DOTNET_ENVIRONMENT="$ASPNETCORE_ENVIRONMENT"
project="$root/src/Enrolment.Api/Enrolment.Api.csproj"

# The pages under /app/ (npm, pinned by src/Enrolment.Pages/package-lock.json).
"$root/build/pages.sh"
# Build once quietly; build output goes to stderr so stdout stays the service's (or the command's) own.
dotnet build "$project" -c Release -nologo -v quiet >&2

if [ "$#" -gt 0 ]; then
  exec dotnet run --project "$project" -c Release --no-build --no-launch-profile -- "$@"
fi

export ASPNETCORE_URLS="${ASPNETCORE_URLS:-http://127.0.0.1:5080}"
first_url="${ASPNETCORE_URLS%%;*}"
if curl -sf -o /dev/null --max-time 2 "${first_url/0.0.0.0/127.0.0.1}/health/live" 2>/dev/null; then
  echo "[run] the service already answers on $first_url; not starting a second one (stop it first, or set ASPNETCORE_URLS)" >&2
  exit 0
fi
echo "[run] starting the service on $ASPNETCORE_URLS (environment $ASPNETCORE_ENVIRONMENT); Ctrl-C stops it" >&2
exec dotnet run --project "$project" -c Release --no-build --no-launch-profile
