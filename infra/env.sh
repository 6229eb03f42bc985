#!/usr/bin/env bash
# Prints the exports that point a shell (or the tests, demo and services) at the
# local servers:  eval "$(make -s env)"
set -euo pipefail
LOG_TAG=env
# shellcheck source=infra/lib.sh
source "$(dirname "$0")/lib.sh"
# The settings come from the environment, else from the running stack's record,
# else from defaults.sh; a contradiction is pointed out on stderr.
report_differences

# %q keeps the output safe to eval whatever a value contains.
out() { printf 'export %s=%q\n' "$1" "$2"; }

source_host=$LINK_BIND_HOST:$LINK_SOURCE_PORT
out LINK_BROKER "$LINK_BIND_HOST:$LINK_KAFKA_PORT"
out LINK_USER "$LINK_LOCAL_LINK_USER"
out LINK_PASS "$LINK_LOCAL_LINK_PASS"
out LINK_SOURCE_HOST "$source_host" # the source server, for the demo and tests
out LINK_SOURCE_ADMIN_USER "$LINK_SOURCE_ADMIN_USER" # source lab's own account
out LINK_SOURCE_ADMIN_PASS "$LINK_SOURCE_ADMIN_PASS"
out DJ_HOST "$LINK_BIND_HOST"
out DJ_PORT "$LINK_DESTINATION_PORT"
out DJ_USER "$LINK_LOCAL_DJ_USER"
out DJ_PASS "$LINK_LOCAL_DJ_PASS"
out LINK_REGISTRY "$LINK_STATE_DIR/links.toml" # links the services accept
