#!/usr/bin/env bash
# Regenerates the code Wolverine runs for every handler and HTTP endpoint into src/Enrolment.Api/Internal/Generated.
# That folder is committed and compiled into the service, which loads it with TypeLoadMode.Static (it never compiles
# code at run time). Run this after changing a handler, an endpoint or a Wolverine policy, then commit the folder;
# ./build/test.sh fails when the committed code is stale.
#   ./build/codegen.sh            build, regenerate, and list what changed
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
project_dir="$root/src/Enrolment.Api"
generated="$project_dir/Internal/Generated"

# The old generated code goes first: after a handler's signature changed it no longer compiles, and the service
# builds without it (Dynamic mode below generates at start).
rm -rf "$generated"
dotnet build "$project_dir/Enrolment.Api.csproj" -c Release -nologo -v quiet >&2
# From the project folder: the content root, where `codegen write` puts Internal/Generated. Dynamic, so that the
# host can start whatever state the committed code is in; no database is needed.
(cd "$project_dir" && Codegen__TypeLoadMode=Dynamic Logging__LogLevel__Default=Warning \
  dotnet "bin/Release/net10.0/Enrolment.Api.dll" codegen write) > /dev/null
echo "[codegen] wrote $(find "$generated" -name '*.cs' | wc -l) files to ${generated#$root/}" >&2
# Built again with the code just written: the Release binary above has none, and in Static mode (the default) it
# would refuse to start ("No pre-generated Wolverine HTTP types").
dotnet build "$project_dir/Enrolment.Api.csproj" -c Release -nologo -v quiet >&2
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "$root" status --short -- "$generated" >&2
fi
