# shellcheck shell=bash
# Helpers shared by the infra/ scripts. Sourcing this also loads the settings.
# shellcheck source=infra/defaults.sh
source "$(dirname "${BASH_SOURCE[0]}")/defaults.sh"

log() { printf '[%s] %s\n' "${LOG_TAG:-infra}" "$*"; }
die() { printf '[%s] error: %s\n' "${LOG_TAG:-infra}" "$*" >&2; exit 1; }

# Installs a Debian package when its command is missing. Only the first install of
# a run pays for `apt-get update`.
ensure_command() { # command package
  command -v "$1" >/dev/null && return 0
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || die "'$1' is missing; install package '$2'"
    sudo=(sudo)
  fi
  log "'$1' not found: installing Debian package $2"
  if [[ -z ${_APT_UPDATED:-} ]]; then
    "${sudo[@]}" apt-get update -q >/dev/null && _APT_UPDATED=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
  command -v "$1" >/dev/null || die "installing $2 did not provide '$1'"
}

# True when something accepts TCP connections on host:port.
port_open() { # host port
  # shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# Prints the pid recorded in a pid file when that process is alive, is ours and
# has `pattern` among its arguments, word for word (`kafka.Kafka /x/server.properties`
# matches two whole arguments): a recycled pid, or a tool that merely names our
# files, is not mistaken for our server. A pid file that fails the test is stale
# and is removed.
live_pid() { # pid_file pattern
  local pid cmdline
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  if [[ $pid =~ ^[0-9]+$ && -O /proc/$pid ]] && kill -0 "$pid" 2>/dev/null &&
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) &&
    [[ " $cmdline " == *" $2 "* ]]; then
    echo "$pid"
    return 0
  fi
  log "removing stale pid file $1" >&2
  rm -f "$1"
  return 1
}

# Sends SIGTERM (a clean shutdown for all our servers) and waits; SIGKILL after
# `seconds` so `make down` always finishes.
stop_pid() { # pid name seconds
  local pid=$1 name=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < $3 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { log "$name stopped"; return 0; }
    sleep 0.1
  done
  log "$name did not stop within $3 s: killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

# Seconds since a value of $EPOCHREALTIME, with one decimal.
since() { # start
  local now=$EPOCHREALTIME # the locale may write a decimal comma
  LC_ALL=C awk -v a="${1/,/.}" -v b="${now/,/.}" 'BEGIN { printf "%.1f", b - a }'
}

# Quotes a value as an SQL string literal (default sql_mode: backslash escapes).
sql_string() {
  local s=${1//\\/\\\\}
  printf "'%s'" "${s//\'/\'\'}"
}

# Writes the settings the stack is being started with (see defaults.sh), readable
# by this user only: they include the local accounts' passwords.
record_settings() {
  local name
  mkdir -p "$(dirname "$LINK_RECORD")"
  (
    umask 077
    for name in "${LINK_RECORDED[@]}"; do printf '%s=%s\n' "$name" "${!name}"; done \
      >"$LINK_RECORD"
  )
}

# Says on stderr which settings of the environment contradict the running stack's.
report_differences() {
  local what
  for what in "${LINK_DIFFERENT[@]}"; do
    log "note: $what: the environment differs from the stack started in" \
      "$LINK_STATE_DIR" >&2
  done
}
