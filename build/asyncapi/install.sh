#!/usr/bin/env bash
# Installs the AsyncAPI parser the API tests validate /asyncapi/v1.json with (versions pinned by package-lock.json).
# Installs Node.js and npm from Debian's packages first where they are missing. Quiet when nothing needs doing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "[asyncapi] installing nodejs and npm (apt-get)" >&2
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq nodejs npm >/dev/null
fi
# Reinstall only when the lock file is newer than what is installed.
if [ ! -f "$here/node_modules/.package-lock.json" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  echo "[asyncapi] npm ci in build/asyncapi" >&2
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
