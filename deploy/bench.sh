#!/usr/bin/env bash
# Runs a benchmark against real PostgreSQL and NATS (started if missing).
#   deploy/bench.sh baseline   raw PostgreSQL alone: pgbench -S, pgbench INSERT+commit, COPY of the contacts CSV
#   deploy/bench.sh outbox     outbox relay throughput, commit->consume latency
#   deploy/bench.sh customers  import rows/s (vs raw COPY of the same file), Create/Get contact and search at 32 clients
#   deploy/bench.sh gateway    REST through the gateway at 32 connections (vs pgbench in the same run)
#   deploy/bench.sh sales      opportunity create / get / stage move at 32 clients, forecast over 1M deals
#   deploy/bench.sh marketing  a send of 100,000 e-mails to a segment through SMTP (messages/s, memory), loyalty redemptions, journey timers
#   deploy/bench.sh servicedesk  ticket create / reply / get / list 50 / routing at 32 clients; SLA scanner beside 1M open tickets
#   deploy/bench.sh reporting  replay of sales events (events/s), freshness at 1,000 events/s, sales and service dashboards over 1M deals and tickets
#   deploy/bench.sh platform   run.sh's processes (release): start-to-ready of each, RSS of all under gateway load
#   deploy/bench.sh all        all of the above in turn, then the Markdown table of every figure
#                              (BENCH_OUT, default bench-results.md; the README's table comes from it)
# Sizes: BENCH_CONTACTS, BENCH_OPPORTUNITIES, BENCH_MESSAGES, BENCH_EVENTS, BENCH_DEALS, BENCH_TICKETS, BENCH_CLIENTS, BENCH_SECONDS (see each bench's header).
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh
ensure_postgres
ensure_nats
cargo_target_dir
export CRM_TEST_DATABASE_URL="${CRM_TEST_DATABASE_URL:-$CRM_PG_ADMIN_URL}"
run_bench() {
  case "$1" in
    baseline) cargo bench --locked -p testkit --bench baseline ;;
    outbox) cargo bench --locked -p kit --bench outbox ;;
    customers) cargo bench --locked -p customers --bench customers ;;
    gateway) cargo bench --locked -p gateway --bench gateway ;;
    sales) cargo bench --locked -p sales --bench sales ;;
    marketing) cargo bench --locked -p marketing --bench marketing ;;
    servicedesk) cargo bench --locked -p servicedesk --bench servicedesk ;;
    reporting) cargo bench --locked -p reporting --bench reporting ;;
    platform) cargo bench --locked -p e2e --bench platform ;;
    *) die "unknown benchmark $1 (known: baseline, outbox, customers, gateway, sales, marketing, servicedesk, reporting, platform, all)" ;;
  esac
}

if [ "${1:-outbox}" != all ]; then
  run_bench "${1:-outbox}"
  exit 0
fi

# Every benchmark in turn; each prints its figures as Markdown rows ("| ").
out="${BENCH_OUT:-bench-results.md}"
transcript="$(mktemp)"
trap 'rm -f "$transcript"' EXIT
failed=()
for bench in baseline outbox customers gateway sales marketing servicedesk reporting platform; do
  log "benchmark $bench"
  run_bench "$bench" 2>&1 | tee -a "$transcript" || failed+=("$bench")
done
{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB," \
    "$(psql "$CRM_PG_ADMIN_URL" -Atqc 'show server_version' 2>/dev/null | sed 's/^/PostgreSQL /')," \
    "service, PostgreSQL, NATS and load generator on the same machine."
  echo
  echo "| figure | measured | raw PostgreSQL in the same run | share |"
  echo "|---|---|---|---|"
  grep "^| " "$transcript"
} > "$out"
log "benchmark table written to $out"
cat "$out"
[ ${#failed[@]} -eq 0 ] || die "benchmarks that failed: ${failed[*]}"
