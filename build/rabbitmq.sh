#!/usr/bin/env bash
# Installs (Debian's rabbitmq-server, about 20 s) and starts a local RabbitMQ for the bus tests and for running
# the service with Bus__Transport=rabbitmq. Idempotent. Enables the management plugin (rabbitmqadmin, :15672).
#   ./build/rabbitmq.sh          install if needed and start
#   ./build/rabbitmq.sh stop     stop it
set -euo pipefail
log() { echo "[rabbitmq] $*" >&2; }

if [ "${1:-}" = "stop" ]; then
  command -v rabbitmqctl >/dev/null 2>&1 && rabbitmqctl stop >/dev/null 2>&1 || true
  exit 0
fi

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  log "RabbitMQ is not installed; installing Debian's rabbitmq-server with apt-get..."
  export DEBIAN_FRONTEND=noninteractive
  # Do not let the package start a broker through init scripts: we start it ourselves below.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq >&2 || true
  apt-get install -y -qq rabbitmq-server >/tmp/rabbitmq-install.log 2>&1 || { log "apt-get install failed; see /tmp/rabbitmq-install.log"; exit 1; }
  rm -f /usr/sbin/policy-rc.d
fi

if rabbitmqctl -q status >/dev/null 2>&1; then
  log "RabbitMQ already running"
else
  log "starting RabbitMQ"
  rabbitmq-server -detached >&2 2>/dev/null || rabbitmq-server -detached >&2
  for i in $(seq 1 60); do
    rabbitmqctl -q await_startup >/dev/null 2>&1 && break
    [ "$i" = 60 ] && { log "RabbitMQ did not start within 60 s; see /var/log/rabbitmq/"; exit 1; }
    sleep 1
  done
fi
rabbitmq-plugins -q enable rabbitmq_management >/dev/null 2>&1 || true
log "RabbitMQ ready on amqp://guest:guest@127.0.0.1:5672 (management on http://127.0.0.1:15672)"
