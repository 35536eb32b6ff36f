#!/usr/bin/env bash
# Start the Docker engine in the background when it is not running (machines without systemd).
#
# The engine we start has no default bridge and does not touch the host's firewall
# (--bridge=none --iptables=false): testbed containers use network_mode=none and are wired from
# the run's fabric namespace, so nothing of the engine needs a path out of this machine.
# An engine that is already running (systemd, Docker Desktop, ...) is used as it is.
set -euo pipefail
LOG=${TESTBED_DOCKERD_LOG:-/var/log/testbed-dockerd.log}
WAIT_SECONDS=${TESTBED_DOCKERD_WAIT:-60}

if docker info >/dev/null 2>&1; then exit 0; fi
command -v dockerd >/dev/null || { echo "[dockerd] no dockerd: apt-get install docker.io" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "[dockerd] starting dockerd needs root" >&2; exit 1; }
if [ -S /var/run/docker.sock ] && ! pgrep -x dockerd >/dev/null; then
    rm -f /var/run/docker.sock /var/run/docker.pid  # left by an engine that was killed
fi
if ! pgrep -x dockerd >/dev/null; then
    echo "[dockerd] starting dockerd (log: $LOG)"
    setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false \
        >"$LOG" 2>&1 </dev/null &
fi
for _ in $(seq 1 $((WAIT_SECONDS * 4))); do
    docker info >/dev/null 2>&1 && { echo "[dockerd] engine ready"; exit 0; }
    sleep 0.25
done
echo "[dockerd] engine did not answer within ${WAIT_SECONDS}s; last log lines:" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
