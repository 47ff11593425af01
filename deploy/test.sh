#!/usr/bin/env bash
# Runs the whole test suite against real PostgreSQL and NATS, installing and
# starting them first when they are not there. Extra arguments go to
# `cargo test` (e.g. `deploy/test.sh -p kit`).
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

ensure_postgres
ensure_nats
ensure_nats_binary          # fault tests start and kill their own nats-server
ensure_build_tools
ensure_chromium             # the dashboard page's test looks at it in Chromium
cargo_target_dir
export CRM_TEST_DATABASE_URL="${CRM_TEST_DATABASE_URL:-$CRM_PG_ADMIN_URL}"

# Databases left by an interrupted earlier run (a finished test drops its own).
psql "$CRM_TEST_DATABASE_URL" -Atqc "SELECT 'DROP DATABASE IF EXISTS ' || quote_ident(datname) || ' WITH (FORCE);' FROM pg_database WHERE datname LIKE 'crm\_test\_%' AND (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = pg_database.datname) = 0" \
  | psql "$CRM_TEST_DATABASE_URL" -Atq >/dev/null 2>&1 || true
# Roles of end-to-end platform instances whose databases went above.
psql "$CRM_TEST_DATABASE_URL" -Atqc "SELECT 'DROP ROLE IF EXISTS ' || quote_ident(rolname) || ';' FROM pg_roles WHERE rolname LIKE 'crm\_test\_e2e\_%'" \
  | psql "$CRM_TEST_DATABASE_URL" -Atq >/dev/null 2>&1 || true

# The end-to-end flows (tests/e2e) start the platform with deploy/run.sh,
# which runs these binaries: build them first so that is a no-op.
log "building the binaries"
cargo build --workspace --locked --bins
log "running the test suite"
cargo test --workspace --locked "$@"
