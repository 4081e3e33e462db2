#!/usr/bin/env bash
# Builds the pages the service serves under /app/ (src/Enrolment.Pages -> src/Enrolment.Api/wwwroot/app), with the npm
# packages pinned by src/Enrolment.Pages/package-lock.json. Installs Node.js and npm from Debian's packages first where
# they are missing. Quiet when nothing needs doing.
#   ./build/pages.sh              build the pages (./build/run.sh and ./build/test.sh do)
#   ./build/pages.sh --browser    also install Debian's chromium, which the browser tests drive
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pages="$root/src/Enrolment.Pages"
sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
updated=0
apt_install() {
  # A new machine has never fetched Debian's package lists: update once before the first install.
  [ "$updated" = 1 ] || { $sudo_cmd apt-get update -qq >&2; updated=1; }
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "$@" >&2
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "[pages] installing nodejs and npm (apt-get)" >&2
  apt_install nodejs npm
fi
if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "[pages] installing chromium for the browser tests (apt-get, about two minutes)" >&2
  apt_install chromium
fi
# Reinstall only when the lock file is newer than what is installed.
if [ ! -f "$pages/node_modules/.package-lock.json" ] || [ "$pages/package-lock.json" -nt "$pages/node_modules/.package-lock.json" ]; then
  echo "[pages] npm ci in src/Enrolment.Pages" >&2
  (cd "$pages" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
(cd "$pages" && npm run --silent build >&2)
