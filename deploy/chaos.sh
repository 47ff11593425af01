#!/usr/bin/env bash
# The platform fault suite: starts a PostgreSQL and a NATS of its own on
# free loopback ports (the shared ones are never touched), then runs the
# chaos driver (tests/e2e/src/bin/chaos.rs): the whole platform as
# deploy/run.sh starts it plus a second gateway, a mixed workload through
# both, and meanwhile NATS SIGKILLed three times, PostgreSQL stopped with
# `-m immediate` and restarted, customers and sales SIGKILLed once each and
# a graceful rolling restart of the gateways. It prints what it checked and
# exits non-zero when a check fails. Bounded: 20 minutes at most,
# CRM_CHAOS_MAX_REQUESTS requests (30,000) at most; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

ensure_build_tools
ensure_nats_binary
cargo_target_dir
work=$(mktemp -d /tmp/crm-chaos.XXXXXX)
chmod 755 "$work"
export CRM_STATE_DIR="$work/state" CRM_PG_DATA="$work/postgres"
mkdir -p "$CRM_STATE_DIR"
pg_port=$(free_port)
nats_port=$(free_port)
export CRM_PG_ADMIN_URL="postgres://postgres@127.0.0.1:$pg_port/postgres" NATS_URL="nats://127.0.0.1:$nats_port"
export CRM_TEST_DATABASE_URL="$CRM_PG_ADMIN_URL"

run_as=()
[ "$(id -u)" = 0 ] && run_as=(runuser -u postgres --)
# The platform's own state directory lands under $work too: whatever still
# runs with it (a driver killed by the timeout) is found by its environment.
export TMPDIR="$work"
cleanup() {
  local bin p; bin=$(pg_server_bin_dir)
  [ -n "$bin" ] && "${run_as[@]}" "$bin/pg_ctl" -D "$CRM_PG_DATA" stop -m fast >/dev/null 2>&1 || true
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    grep -qz "^CRM_STATE_DIR=$work" "$p/environ" 2>/dev/null && kill -KILL "${p#/proc/}" 2>/dev/null || true
  done
  [ -s "$CRM_STATE_DIR/nats/nats.pid" ] && kill -KILL "$(cat "$CRM_STATE_DIR/nats/nats.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ensure_postgres
ensure_nats
bin=$(pg_server_bin_dir)
pg_options="-c listen_addresses=127.0.0.1 -p $pg_port -k /tmp -c max_connections=300"
export CRM_CHAOS_PG_STOP="${run_as[*]} $bin/pg_ctl -D $CRM_PG_DATA stop -m immediate"
export CRM_CHAOS_PG_START="${run_as[*]} $bin/pg_ctl -D $CRM_PG_DATA -l $CRM_PG_DATA/server.log -w -o '$pg_options' start"
export CRM_CHAOS_NATS_PID_FILE="$CRM_STATE_DIR/nats/nats.pid"

log "building the binaries"
cargo build --locked --bins
log "fault suite: PostgreSQL on :$pg_port, NATS on :$nats_port"
timeout --signal=INT 1200 "$CARGO_TARGET_DIR/debug/chaos"
