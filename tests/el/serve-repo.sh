#!/usr/bin/env bash
# Serve .cache/el/repo over HTTP on the tfs-el network's gateway (172.25.0.1:8765) for molecule/el.
#   serve-repo.sh start   (re)start the server, wait until it answers
#   serve-repo.sh stop    stop the server this script started (its pid is in .cache/el/http.pid)
set -euo pipefail
cd "$(dirname "$0")/../.."
addr=${EL_REPO_ADDR:-172.25.0.1}
port=${EL_REPO_PORT:-8765}
pidfile=.cache/el/http.pid
stop() {
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}
case "${1:-}" in
  start)
    stop
    setsid python3 -m http.server --bind "$addr" "$port" --directory .cache/el/repo \
      >.cache/el/http.log 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 50); do
      curl -fsS -o /dev/null "http://$addr:$port/os/RPM-GPG-KEY-el" && { echo "el-repo: serving http://$addr:$port/"; exit 0; }
      sleep 0.2
    done
    echo "el-repo: the server did not answer on http://$addr:$port/ (is the tfs-el network up?); log:" >&2
    cat .cache/el/http.log >&2
    exit 1 ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
