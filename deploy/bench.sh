#!/usr/bin/env bash
# Runs a benchmark against real PostgreSQL and NATS (started if missing).
#   deploy/bench.sh outbox     outbox relay throughput, commit->consume latency
#   deploy/bench.sh customers  import rows/s, Create/Get contact and search at 32 clients
#   deploy/bench.sh gateway    REST through the gateway at 32 connections
#   deploy/bench.sh sales      opportunity create / stage move at 32 clients, forecast over 1M deals
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh
ensure_postgres
ensure_nats
cargo_target_dir
export CRM_TEST_DATABASE_URL="${CRM_TEST_DATABASE_URL:-$CRM_PG_ADMIN_URL}"
case "${1:-outbox}" in
  outbox) cargo bench --locked -p kit --bench outbox ;;
  customers) cargo bench --locked -p customers --bench customers ;;
  gateway) cargo bench --locked -p gateway --bench gateway ;;
  sales) cargo bench --locked -p sales --bench sales ;;
  *) die "unknown benchmark $1 (known: outbox, customers, gateway, sales)" ;;
esac
