#!/usr/bin/env bash
# The whole local stack at once: Kafka and the two MariaDB servers.
#   infra/stack.sh up|down|status|clean
set -euo pipefail
# shellcheck source=infra/defaults.sh
source "$(dirname "$0")/defaults.sh"
cd "$LINK_ROOT/infra"

down() {
  # Services first: they would only log errors once their servers are gone.
  ./services.sh stop
  ./mariadb.sh stop all
  ./kafka.sh stop
}

case ${1:-} in
up)
  ./kafka.sh start
  ./mariadb.sh start all
  ;;
down) down ;;
status)
  # Report everything; the exit code says whether all servers are up.
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
  / | "$LINK_ROOT" | "$HOME" | "")
    echo "refusing to delete '$LINK_STATE_DIR'" >&2
    exit 1
    ;;
  esac
  echo "[stack] deleting $LINK_STATE_DIR (the jar cache in $LINK_CACHE_DIR stays)"
  rm -rf "$LINK_STATE_DIR"
  ;;
*)
  echo "usage: $0 up|down|status|clean" >&2
  exit 1
  ;;
esac
