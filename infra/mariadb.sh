#!/usr/bin/env bash
# Local MariaDB: two independent servers (the source lab's and the destination
# lab's) run from Debian's mariadbd with our own data folders. The system service
# and /etc/mysql are never used (--no-defaults everywhere).
#   infra/mariadb.sh start|stop|status|wait [source|destination|all]
set -euo pipefail
LOG_TAG=mariadb
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"
PATH=$PATH:/usr/sbin # where Debian puts mariadbd, missing from most users' PATH

# Per-server settings, filled in by `use`.
use() { # name
  NAME=$1
  DIR=$LINK_STATE_DIR/mariadb/$NAME
  DATA=$DIR/data
  SOCKET=$DIR/mariadbd.sock
  PID_FILE=$DIR/mariadbd.pid
  ERROR_LOG=$DIR/error.log
  case $NAME in
  source) PORT=$LINK_SOURCE_PORT ;;
  destination) PORT=$LINK_DESTINATION_PORT ;;
  esac
}

initialise() {
  [[ -d $DATA/mysql ]] && return 0
  log "$NAME: creating data folder $DATA"
  rm -rf "$DATA.tmp"
  mkdir -p "$DIR" "$DIR/tmp"
  # Built aside and moved in place, so a failed run never leaves a half-made
  # folder that the next start would take for a finished one. Each server has
  # its own tmpdir: two bootstraps sharing /tmp were seen to collide on their
  # temporary tables ("Unknown table 'mysql.tmp_user_sys'").
  mariadb-install-db --no-defaults --datadir="$DATA.tmp" --tmpdir="$DIR/tmp" \
    --user="$(id -un)" \
    --auth-root-authentication-method=socket --skip-test-db >"$DIR/install.log" 2>&1 ||
    { tail -n 20 "$DIR/install.log" >&2; die "$NAME: mariadb-install-db failed"; }
  mv "$DATA.tmp" "$DATA"
}

# Applies infra/sql/<name>-init.sql with the configured names (idempotent). It
# logs in through the socket as the OS user (socket auth): no root password exists.
create_users() {
  local vars
  if [[ $NAME == source ]]; then
    vars="SET @source_admin_user = $(sql_string "$LINK_SOURCE_ADMIN_USER"),
      @source_admin_pass = $(sql_string "$LINK_SOURCE_ADMIN_PASS"),
      @link_user = $(sql_string "$LINK_LOCAL_LINK_USER"),
      @link_pass = $(sql_string "$LINK_LOCAL_LINK_PASS");"
  else
    vars="SET @dj_user = $(sql_string "$LINK_LOCAL_DJ_USER"),
      @dj_pass = $(sql_string "$LINK_LOCAL_DJ_PASS");"
  fi
  printf '%s\n' "$vars" | cat - "$LINK_ROOT/infra/sql/$NAME-init.sql" |
    mariadb --no-defaults -S "$SOCKET" -u "$(id -un)"
}

# Readiness over the socket as the OS user (the TCP accounts may not exist yet).
answers_socket() {
  mariadb-admin --no-defaults -S "$SOCKET" -u "$(id -un)" --connect-timeout=2 \
    ping >/dev/null 2>&1
}

# Readiness as the clients see it: a TCP login with the server's main account.
answers_tcp() {
  local user=$LINK_LOCAL_DJ_USER pass=$LINK_LOCAL_DJ_PASS
  [[ $NAME == source ]] && user=$LINK_LOCAL_LINK_USER pass=$LINK_LOCAL_LINK_PASS
  MYSQL_PWD=$pass mariadb-admin --no-defaults -h "$LINK_BIND_HOST" -P "$PORT" \
    -u "$user" --connect-timeout=2 ping >/dev/null 2>&1
}

wait_ready() { # pid
  local deadline=$((SECONDS + LINK_START_TIMEOUT))
  until answers_socket; do
    if ! kill -0 "$1" 2>/dev/null; then
      tail -n 20 "$ERROR_LOG" >&2 || true
      die "$NAME exited during start-up (log above: $ERROR_LOG)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$ERROR_LOG" >&2 || true
      die "$NAME not answering on $SOCKET after $LINK_START_TIMEOUT s"
    fi
    sleep 0.2
  done
}

# Users are (re)applied on every start, also when already running, so a start
# always leaves the accounts that defaults.sh describes.
start() {
  local t0=$EPOCHREALTIME pid state="already running"
  if ! pid=$(live_pid "$PID_FILE" "--datadir=$DATA"); then
    if port_open "$LINK_BIND_HOST" "$PORT"; then
      die "$NAME: port $PORT is taken by another process (see infra/defaults.sh)"
    fi
    ((${#SOCKET} < 100)) || die "$NAME: socket path too long for Unix: $SOCKET"
    initialise
    mkdir -p "$DIR/tmp"
    # setsid: keep the server alive when the calling terminal is interrupted.
    # Binary logs and TLS are not needed for local work; utf8mb4_bin gives
    # case-sensitive comparisons; the buffer pool is sized for two servers on a
    # small machine.
    setsid mariadbd --no-defaults --user="$(id -un)" \
      --datadir="$DATA" --tmpdir="$DIR/tmp" --bind-address="$LINK_BIND_HOST" \
      --port="$PORT" \
      --socket="$SOCKET" --pid-file="$PID_FILE" --log-error="$ERROR_LOG" \
      --skip-name-resolve --skip-log-bin --skip-ssl \
      --character-set-server=utf8mb4 --collation-server=utf8mb4_bin \
      --max-allowed-packet=64M --innodb-buffer-pool-size="$LINK_MARIADB_BUFFER_POOL" \
      >>"$DIR/stdout.log" 2>&1 </dev/null &
    pid=$!
    state="started"
  fi
  wait_ready "$pid"
  create_users
  answers_tcp || die "$NAME: TCP login on port $PORT fails (see $ERROR_LOG)"
  log "$NAME: $state, pid $pid, $LINK_BIND_HOST:$PORT ($(since "$t0") s)"
}

stop() {
  local pid
  if pid=$(live_pid "$PID_FILE" "--datadir=$DATA"); then
    stop_pid "$pid" "$NAME" 60 # SIGTERM is mariadbd's clean shutdown
  else
    log "$NAME: not running"
  fi
}

status() {
  local pid
  if pid=$(live_pid "$PID_FILE" "--datadir=$DATA"); then
    if ! port_open "$LINK_BIND_HOST" "$PORT"; then
      log "$NAME: running, pid $pid, but not on $LINK_BIND_HOST:$PORT" \
        "(started with other settings?)"
      return 3
    fi
    log "$NAME: running, pid $pid, $LINK_BIND_HOST:$PORT"
  else
    log "$NAME: stopped (port $PORT)"
    return 3
  fi
}

wait_cmd() {
  local pid
  pid=$(live_pid "$PID_FILE" "--datadir=$DATA") || die "$NAME: not running"
  wait_ready "$pid"
  answers_tcp || die "$NAME: TCP login on port $PORT fails (see $ERROR_LOG)"
  log "$NAME: ready on $LINK_BIND_HOST:$PORT"
}

action=${1:-}
case ${2:-all} in
source | destination) names=("$2") ;;
all) names=(source destination) ;;
*) die "unknown server '$2' (source, destination or all)" ;;
esac
case $action in
start | stop | wait) ;;
status)
  # Report every server, then fail if any is down.
  rc=0
  for name in "${names[@]}"; do
    use "$name"
    status || rc=$?
  done
  exit "$rc"
  ;;
*) die "usage: $0 start|stop|status|wait [source|destination|all]" ;;
esac
if [[ $action == start ]]; then
  ensure_command mariadbd mariadb-server
  ensure_command mariadb-install-db mariadb-server
fi
for name in "${names[@]}"; do
  use "$name"
  if [[ $action == wait ]]; then wait_cmd; else "$action"; fi
done
