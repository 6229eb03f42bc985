# shellcheck shell=bash
# The one place for the local stack's settings. Every infra/ script sources this
# file; each value can be overridden from the environment (e.g. LINK_KAFKA_PORT=19092
# make up). Credentials use the same names that infra/env.sh exports, so a shell
# that has run `eval "$(make -s env)"` keeps talking to the same servers.
#
# infra/sql/*.sql and compose.yaml repeat the user names and passwords as their own
# fallbacks (containers cannot source this file); keep them in step.

LINK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Folders: .local holds server data, logs and pid files; .cache holds downloads
# (Kafka jars) and survives `make clean-state`. Relative paths are taken from the
# repository root so scripts work from any working directory.
: "${LINK_STATE_DIR:=.local}"
: "${LINK_CACHE_DIR:=.cache}"
[[ $LINK_STATE_DIR == /* ]] || LINK_STATE_DIR=$LINK_ROOT/$LINK_STATE_DIR
[[ $LINK_CACHE_DIR == /* ]] || LINK_CACHE_DIR=$LINK_ROOT/$LINK_CACHE_DIR

# The settings that `make up` started the running stack with (written by
# infra/stack.sh, removed by `make down`). They stand in for the variables the
# environment leaves unset, so that `make status`, `make env` and `make test` in
# another shell speak of the servers that run, not of the defaults below. A value
# the environment sets and the record contradicts is kept, and described in
# LINK_DIFFERENT for the scripts to point out. The record is plain NAME=value
# lines, read without eval.
LINK_RECORD=$LINK_STATE_DIR/run/settings
LINK_RECORDED=(LINK_BIND_HOST LINK_KAFKA_PORT LINK_KAFKA_CONTROLLER_PORT
  LINK_SOURCE_PORT LINK_DESTINATION_PORT LINK_SOURCE_ADMIN_USER
  LINK_SOURCE_ADMIN_PASS LINK_LOCAL_LINK_USER LINK_LOCAL_LINK_PASS
  LINK_LOCAL_DJ_USER LINK_LOCAL_DJ_PASS)
LINK_DIFFERENT=()
if [[ -r $LINK_RECORD ]]; then
  while IFS= read -r _line; do
    _name=${_line%%=*} _value=${_line#*=}
    [[ " ${LINK_RECORDED[*]} " == *" $_name "* ]] || continue
    if [[ -z ${!_name:-} ]]; then
      printf -v "$_name" '%s' "$_value"
    elif [[ ${!_name} != "$_value" ]]; then
      # Passwords are named, not shown.
      [[ $_name == *_PASS ]] || _name+="=${!_name} (started with $_value)"
      LINK_DIFFERENT+=("$_name")
    fi
  done <"$LINK_RECORD"
  unset _line _name _value
fi

# Everything listens on loopback only: these servers have well-known passwords.
: "${LINK_BIND_HOST:=127.0.0.1}"

# Kafka (one KRaft node acting as broker and controller). The version must be one
# that infra/kafka/pom.xml can resolve; it is passed to Maven and names the cache.
: "${LINK_KAFKA_VERSION:=4.1.1}"
: "${LINK_KAFKA_PORT:=9092}"
: "${LINK_KAFKA_CONTROLLER_PORT:=9093}"
: "${LINK_KAFKA_HEAP:=-Xmx512m -Xms256m}"

# MariaDB: two independent servers standing for the two labs.
: "${LINK_SOURCE_PORT:=3316}"
: "${LINK_DESTINATION_PORT:=3317}"
: "${LINK_MARIADB_BUFFER_POOL:=256M}"

# Accounts of the local servers. They have names of their own, not the
# library's LINK_USER/LINK_PASS and DJ_USER/DJ_PASS: credentials exported for
# another lab's servers must not change these accounts. infra/env.sh hands them
# to the library under its names.
# Source server: the source lab's operator, and the link's restricted account.
: "${LINK_SOURCE_ADMIN_USER:=source_admin}"
: "${LINK_SOURCE_ADMIN_PASS:=source_admin_pw}"
: "${LINK_LOCAL_LINK_USER:=djlink}"
: "${LINK_LOCAL_LINK_PASS:=djlink_pw}"
# Destination server: the destination lab's own account (DataJoint's names).
: "${LINK_LOCAL_DJ_USER:=djuser}"
: "${LINK_LOCAL_DJ_PASS:=djuser_pw}"

# Seconds a `start` waits for a server before giving up.
: "${LINK_START_TIMEOUT:=90}"
