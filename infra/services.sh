#!/usr/bin/env bash
# Runs the link's three services in the background against the local servers, for
# manual work (tests start their own). Logs: $LINK_STATE_DIR/logs, pids: .../run.
#   infra/services.sh start|stop|status
set -euo pipefail
LOG_TAG=services
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"

SERVICES=(link-pull-requests link-transfer link-deletion-reconciler)
BIN=$LINK_ROOT/.venv/bin
LOGS=$LINK_STATE_DIR/logs
RUN=$LINK_STATE_DIR/run

start() {
  local name pid started=()
  # Where each log ends before this start: a failure shows this start's lines only.
  local -A log_start=()
  for name in "${SERVICES[@]}"; do
    [[ -x $BIN/$name ]] || die "$BIN/$name not found: run 'make venv' first"
  done
  eval "$("$LINK_ROOT/infra/env.sh")"
  mkdir -p "$LOGS" "$RUN"
  write_registry
  for name in "${SERVICES[@]}"; do
    if pid=$(live_pid "$RUN/$name.pid" "$BIN/$name"); then
      log "$name: already running (pid $pid)"
      continue
    fi
    log_start[$name]=$(stat -c %s "$LOGS/$name.log" 2>/dev/null || echo 0)
    # setsid: survive the terminal; the log is appended so restarts keep history.
    setsid "$BIN/$name" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
    started+=("$name")
  done
  ((${#started[@]})) || return 0
  # A service with a bad configuration dies at once: say so instead of "started".
  sleep 2
  for name in "${started[@]}"; do
    if pid=$(live_pid "$RUN/$name.pid" "$BIN/$name" 2>/dev/null); then
      log "$name: started (pid $pid), log $LOGS/$name.log"
    else
      tail -c +"$((log_start[$name] + 1))" "$LOGS/$name.log" | tail -n 20 >&2 || true
      die "$name exited at start-up (log above: $LOGS/$name.log)"
    fi
  done
}

# The links the local services accept: any src_* table on the local source server,
# with helper_* and dst_* schemas, the same families the link user's grants allow;
# and, by the name the README's examples use, the tour's link. Written once:
# entries added to the file by hand are kept.
write_registry() {
  [[ -f $LINK_REGISTRY ]] && return 0
  cat >"$LINK_REGISTRY" <<EOF
# Written by infra/services.sh for the local stack; see link/registry.py.
[[link]]
name = "local"
source_host = "$LINK_BIND_HOST:$LINK_SOURCE_PORT"
source_schema = "src_*"
helper_schema = "helper_*"
destination_schema = "dst_*"

[[link]]
name = "sessions-to-lab-b"
source_host = "$LINK_BIND_HOST:$LINK_SOURCE_PORT"
source_schema = "src_tour"
source_table = "session"
helper_schema = "helper_tour"
helper_table = "session_outbound"
destination_schema = "dst_tour"
destination_table = "session"
EOF
}

stop() {
  local name pid
  for name in "${SERVICES[@]}"; do
    if pid=$(live_pid "$RUN/$name.pid" "$BIN/$name"); then
      stop_pid "$pid" "$name" 30
      rm -f "$RUN/$name.pid"
    fi
  done
}

status() {
  local name pid rc=0
  for name in "${SERVICES[@]}"; do
    if pid=$(live_pid "$RUN/$name.pid" "$BIN/$name"); then
      log "$name: running, pid $pid"
    else
      log "$name: stopped"
      rc=3
    fi
  done
  return "$rc"
}

case ${1:-} in
start | stop | status) "$1" ;;
*) die "usage: $0 start|stop|status" ;;
esac
