#!/usr/bin/env bash
# Runs the whole platform locally: PostgreSQL and NATS (installed and
# started when missing), one database and role pair per service, every
# service and the gateway built in release mode, then prints the URLs.
# Ctrl-C stops everything it started (PostgreSQL and NATS keep running).
#
# Optional: CRM_PROFILE=dev runs debug builds (faster to build, used by the
# API check); CRM_PORT_OFFSET shifts every service port (50051 -> 50051+offset)
# and the gateway's 8080 unless CRM_HTTP_PORT names it, so a
# second instance can run beside the first.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

# name:grpc-port — admin port is grpc-port + 1000.
ALL_SERVICES=(customers:50051 sales:50052 marketing:50053 servicedesk:50054 reporting:50055)

ensure_postgres
ensure_nats
ensure_build_tools
cargo_target_dir
OFFSET="${CRM_PORT_OFFSET:-0}"
HTTP_PORT="${CRM_HTTP_PORT:-$((8080 + OFFSET))}"
export CRM_GATEWAY_URL="http://127.0.0.1:$HTTP_PORT" CRM_CUSTOMERS_URL="http://127.0.0.1:$((50051 + OFFSET))"
export SALES_CUSTOMERS_URL="${SALES_CUSTOMERS_URL:-$CRM_CUSTOMERS_URL}" CRM_SALES_URL="http://127.0.0.1:$((50052 + OFFSET))"
# Without a relay of your own, e-mail is written as .eml files to look at;
# links in it point at this gateway and are signed with a key kept here.
export MARKETING_SMTP_URL="${MARKETING_SMTP_URL:-file://$CRM_STATE_DIR/mail}"
export MARKETING_PUBLIC_URL="${MARKETING_PUBLIC_URL:-$CRM_GATEWAY_URL}"
mkdir -p "$CRM_STATE_DIR"
[ -s "$CRM_STATE_DIR/link-key" ] || { head -c 32 /dev/urandom | base64 >"$CRM_STATE_DIR/link-key"; chmod 600 "$CRM_STATE_DIR/link-key"; }
MARKETING_LINK_KEY="${MARKETING_LINK_KEY:-$(cat "$CRM_STATE_DIR/link-key")}"; export MARKETING_LINK_KEY
[ -s "$CRM_STATE_DIR/webhook-key" ] || { head -c 32 /dev/urandom | base64 >"$CRM_STATE_DIR/webhook-key"; chmod 600 "$CRM_STATE_DIR/webhook-key"; }
MARKETING_WEBHOOK_KEY="${MARKETING_WEBHOOK_KEY:-$(cat "$CRM_STATE_DIR/webhook-key")}"; export MARKETING_WEBHOOK_KEY
export MARKETING_SMS_URL="${MARKETING_SMS_URL:-file://$CRM_STATE_DIR/sms}"
# Client secrets at the gateway of the services that act by themselves
# (marketing's automation rules, the service desk's inbound mail), through
# the gateway's client-credentials grant (ADR 0024).
for acting in marketing servicedesk; do
  upper=$(echo "$acting" | tr '[:lower:]' '[:upper:]')
  [ -s "$CRM_STATE_DIR/$acting-secret" ] || { head -c 48 /dev/urandom | base64 | tr -d '\n' >"$CRM_STATE_DIR/$acting-secret"; chmod 600 "$CRM_STATE_DIR/$acting-secret"; }
  secret_var="${upper}_CRM_SERVICE_SECRET" url_var="${upper}_CRM_SERVICE_TOKEN_URL" gateway_var="GATEWAY_${upper}_SECRET"
  export "$secret_var=${!secret_var:-$(cat "$CRM_STATE_DIR/$acting-secret")}"
  export "$gateway_var=${!gateway_var:-${!secret_var}}"
  export "$url_var=${!url_var:-$CRM_GATEWAY_URL/v1/auth/service-token}"
done
# Support mail: the desk takes SMTP here (point the support addresses'
# mail at it) and, without a relay of its own, writes replies as .eml files.
# 2525 by default; an instance on shifted ports takes 50560 + offset, a
# slot none of the shifted service ports (5005x, 5105x) can take.
if [ "$OFFSET" = 0 ]; then smtp_port=2525; else smtp_port=$((50560 + OFFSET)); fi
export SERVICEDESK_SMTP_LISTEN="${SERVICEDESK_SMTP_LISTEN:-127.0.0.1:$smtp_port}"
export SERVICEDESK_SMTP_URL="${SERVICEDESK_SMTP_URL:-file://$CRM_STATE_DIR/support-mail}"
export REPORTING_SMTP_URL="${REPORTING_SMTP_URL:-file://$CRM_STATE_DIR/report-mail}"
# Satisfaction survey links point at the gateway and are signed with a key kept here.
export SERVICEDESK_PUBLIC_URL="${SERVICEDESK_PUBLIC_URL:-$CRM_GATEWAY_URL}"
[ -s "$CRM_STATE_DIR/survey-key" ] || { head -c 32 /dev/urandom | base64 >"$CRM_STATE_DIR/survey-key"; chmod 600 "$CRM_STATE_DIR/survey-key"; }
SERVICEDESK_LINK_KEY="${SERVICEDESK_LINK_KEY:-$(cat "$CRM_STATE_DIR/survey-key")}"; export SERVICEDESK_LINK_KEY
export MARKETING_SALES_URL="${MARKETING_SALES_URL:-$CRM_SALES_URL}"
export MARKETING_SERVICEDESK_URL="${MARKETING_SERVICEDESK_URL:-http://127.0.0.1:$((50054 + OFFSET))}"
export REPORTING_SALES_URL="${REPORTING_SALES_URL:-$CRM_SALES_URL}"
export REPORTING_SERVICEDESK_URL="${REPORTING_SERVICEDESK_URL:-$MARKETING_SERVICEDESK_URL}"
export MARKETING_CUSTOMERS_URL="${MARKETING_CUSTOMERS_URL:-$CRM_CUSTOMERS_URL}" CRM_MARKETING_URL="http://127.0.0.1:$((50053 + OFFSET))"
export SERVICEDESK_CUSTOMERS_URL="${SERVICEDESK_CUSTOMERS_URL:-$CRM_CUSTOMERS_URL}"

services=()
for entry in "${ALL_SERVICES[@]}"; do
  [ -d "crates/${entry%%:*}" ] && services+=("$entry")
done
has_gateway=0; [ -d crates/gateway ] && has_gateway=1

for entry in "${services[@]}"; do ensure_service_database "${entry%%:*}"; done
[ "$has_gateway" = 1 ] && ensure_service_database gateway

if [ "${#services[@]}" = 0 ] && [ "$has_gateway" = 0 ]; then
  log "PostgreSQL and NATS are ready; no service crates exist yet, nothing else to start"
  exit 0
fi

if [ "${CRM_PROFILE:-release}" = dev ]; then
  log "building debug binaries"
  cargo build --locked --bins
  BIN="$CARGO_TARGET_DIR/debug"
else
  log "building release binaries (the first build takes several minutes)"
  cargo build --release --locked --bins
  BIN="$CARGO_TARGET_DIR/release"
fi
if [ "$has_gateway" = 1 ]; then
  # Services trust the gateway's JWKS; the gateway owns the signing keys.
  export CRM_JWKS_URL="${CRM_JWKS_URL:-http://127.0.0.1:$HTTP_PORT/.well-known/jwks.json}"
  [ -s "$CRM_STATE_DIR/bootstrap-token" ] || { cat /proc/sys/kernel/random/uuid; cat /proc/sys/kernel/random/uuid; } | tr -d '\n-' >"$CRM_STATE_DIR/bootstrap-token"
  [ -s "$CRM_STATE_DIR/demo-password" ] || cat /proc/sys/kernel/random/uuid >"$CRM_STATE_DIR/demo-password"
  # Seals the token signing keys in the gateway's database.
  [ -s "$CRM_STATE_DIR/key-encryption-key" ] || head -c 32 /dev/urandom | base64 >"$CRM_STATE_DIR/key-encryption-key"
  chmod 600 "$CRM_STATE_DIR/bootstrap-token" "$CRM_STATE_DIR/demo-password" "$CRM_STATE_DIR/key-encryption-key"
  GATEWAY_BOOTSTRAP_TOKEN=$(cat "$CRM_STATE_DIR/bootstrap-token"); export GATEWAY_BOOTSTRAP_TOKEN
  GATEWAY_KEY_ENCRYPTION_KEY="${GATEWAY_KEY_ENCRYPTION_KEY:-$(cat "$CRM_STATE_DIR/key-encryption-key")}"; export GATEWAY_KEY_ENCRYPTION_KEY
  export GATEWAY_HTTP_ADDR="${GATEWAY_HTTP_ADDR:-127.0.0.1:$HTTP_PORT}"
  export GATEWAY_ADMIN_ADDR="${GATEWAY_ADMIN_ADDR:-127.0.0.1:$((HTTP_PORT + 1000))}"
  for entry in "${services[@]}"; do
    upper=$(echo "${entry%%:*}" | tr '[:lower:]' '[:upper:]')
    var="GATEWAY_${upper}_URL"
    export "$var=${!var:-http://127.0.0.1:$((${entry##*:} + OFFSET))}"
  done
  # Development sessions last a working day; production keeps the 15-minute default.
  export GATEWAY_ACCESS_TOKEN_TTL_MS="${GATEWAY_ACCESS_TOKEN_TTL_MS:-28800000}"
else
  # No gateway yet: a local key pair signs development tokens (`crm token`).
  keys="$CRM_STATE_DIR/keys"
  [ -f "$keys/signing-key.pem" ] || "$BIN/crm" keys --out-dir "$keys"
  CRM_JWT_PUBLIC_KEY="$(cat "$keys/public-key.pem")"; export CRM_JWT_PUBLIC_KEY
  [ -s "$CRM_STATE_DIR/demo-tenant" ] || cat /proc/sys/kernel/random/uuid >"$CRM_STATE_DIR/demo-tenant"
fi
export RUST_LOG="${RUST_LOG:-info,sqlx=warn,async_nats=warn}"
logs="$CRM_STATE_DIR/logs"; mkdir -p "$logs"
pids=()
stop_all() { trap - INT TERM EXIT; log "stopping"; for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait; }
trap stop_all INT TERM EXIT

start() {
  local name=$1; shift
  "$BIN/$name" "$@" >>"$logs/$name.log" 2>&1 &
  pids+=($!)
}

if [ "$has_gateway" = 1 ]; then
  start crm-gateway
  wait_tcp 127.0.0.1 "$HTTP_PORT" gateway
fi
for entry in "${services[@]}"; do
  name=${entry%%:*}; port=$((${entry##*:} + OFFSET))
  upper=$(echo "$name" | tr '[:lower:]' '[:upper:]')
  export "${upper}_GRPC_ADDR=127.0.0.1:$port" "${upper}_ADMIN_ADDR=127.0.0.1:$((port + 1000))"
  start "crm-$name"
done
for entry in "${services[@]}"; do
  name=${entry%%:*}; port=$((${entry##*:} + OFFSET))
  wait_tcp 127.0.0.1 "$port" "crm-$name"
done
if [ "$has_gateway" = 1 ]; then
  TOKEN=$("$BIN/crm" demo-tenant --password "$(cat "$CRM_STATE_DIR/demo-password")")
else
  TOKEN=$("$BIN/crm" token --key "$keys/signing-key.pem" --tenant "$(cat "$CRM_STATE_DIR/demo-tenant")" --ttl-seconds 86400)
fi
echo "$TOKEN" >"$CRM_STATE_DIR/demo-token"
if [ -d crates/customers ]; then
  CRM_TOKEN="$TOKEN" "$BIN/crm" seed-demo || log "seeding the demo tenant failed (see $logs)"
fi
echo
log "the CRM is running (logs in $logs)"
[ "$has_gateway" = 1 ] && echo "  gateway REST     http://127.0.0.1:$HTTP_PORT/v1   API reference http://127.0.0.1:$HTTP_PORT/docs   metrics http://127.0.0.1:$((HTTP_PORT + 1000))/metrics"
for entry in "${services[@]}"; do
  name=${entry%%:*}; port=$((${entry##*:} + OFFSET))
  printf '  %-16s grpc 127.0.0.1:%s   metrics http://127.0.0.1:%s/metrics\n' "$name" "$port" "$((port + 1000))"
done
echo "  NATS             $NATS_URL"
[[ "$MARKETING_SMTP_URL" == file://* ]] && echo "  outgoing e-mail  ${MARKETING_SMTP_URL#file://}/*.eml (set MARKETING_SMTP_URL=smtp://host:port for a real relay)"
[ -d crates/servicedesk ] && echo "  support mail in  smtp://$SERVICEDESK_SMTP_LISTEN (addresses: POST /v1/mailboxes)"
[[ "$SERVICEDESK_SMTP_URL" == file://* ]] && echo "  support replies  ${SERVICEDESK_SMTP_URL#file://}/*.eml (set SERVICEDESK_SMTP_URL=smtp://host:port for a real relay)"
[[ "$REPORTING_SMTP_URL" == file://* ]] && echo "  report mail      ${REPORTING_SMTP_URL#file://}/*.eml (set REPORTING_SMTP_URL=smtp://host:port for a real relay)"
[ "$has_gateway" = 1 ] && echo "  dashboards       http://127.0.0.1:$HTTP_PORT/app/login (people sign in there)"
[[ "$MARKETING_SMS_URL" == file://* ]] && echo "  outgoing SMS     ${MARKETING_SMS_URL#file://}/*.json (set MARKETING_SMS_URL=https://provider/endpoint for a real provider)"
[ "$has_gateway" = 1 ] && echo "  demo login       admin@demo.example / $(cat "$CRM_STATE_DIR/demo-password")"
echo "  admin token      export TOKEN=\$(cat $CRM_STATE_DIR/demo-token)"
echo "  PostgreSQL       $CRM_PG_ADMIN_URL"
echo "Press Ctrl-C to stop."
wait
