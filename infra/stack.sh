#!/usr/bin/env bash
# The whole local stack at once: Kafka and the two MariaDB servers.
#   infra/stack.sh up|down|status|clean
set -euo pipefail
LOG_TAG=stack
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$LINK_ROOT/infra"

down() {
  # Services first: they would only log errors once their servers are gone.
  ./services.sh stop
  ./mariadb.sh stop all
  ./kafka.sh stop
  rm -f "$LINK_RECORD" # nothing runs any more with the recorded settings
}

# True when any server of this state folder runs, whatever its port.
any_running() {
  { ./kafka.sh status || true; ./mariadb.sh status all || true; } 2>/dev/null |
    grep -q ' running, pid '
}

case ${1:-} in
up)
  if ((${#LINK_DIFFERENT[@]})) && any_running; then
    report_differences
    die "the stack runs with other settings: 'make down' first, or export theirs"
  fi
  record_settings
  ./kafka.sh start
  ./mariadb.sh start all
  ;;
down) down ;;
status)
  # Report everything; the exit code says whether all servers are up.
  report_differences
  rc=0
  ./kafka.sh status || rc=$?
  ./mariadb.sh status all || rc=$?
  ./services.sh status || true # optional: started by hand with `make services`
  exit "$rc"
  ;;
clean)
  down
  # Guard the rm -rf against an empty or surprising LINK_STATE_DIR.
  case $LINK_STATE_DIR in
  / | "$LINK_ROOT" | "$HOME" | "") die "refusing to delete '$LINK_STATE_DIR'" ;;
  esac
  log "deleting $LINK_STATE_DIR (the jar cache in $LINK_CACHE_DIR stays)"
  rm -rf "$LINK_STATE_DIR"
  ;;
*) die "usage: $0 up|down|status|clean" ;;
esac
