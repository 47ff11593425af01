#!/usr/bin/env bash
# Property-based API check: starts a separate instance of the platform
# (own databases, NATS prefix and ports, debug build), then lets
# schemathesis (PyPI) call every operation of /openapi.json with generated
# input. Fails on any 5xx, an undocumented status code, or a response,
# header or content type that does not match the document.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

# Ports below Linux's ephemeral range (32768-60999): a listener there can
# find its port taken by some outgoing connection of the moment.
export CRM_INSTANCE=crm_apicheck CRM_NATS_PREFIX=apicheck CRM_PORT_OFFSET="${CRM_PORT_OFFSET:--30000}" CRM_HTTP_PORT="${CRM_HTTP_PORT:-18080}"
export CRM_STATE_DIR="${CRM_APICHECK_STATE_DIR:-$HOME/.cache/crm-apicheck}" CRM_PROFILE=dev
mkdir -p "$CRM_STATE_DIR"
ensure_postgres
BASE="http://127.0.0.1:$CRM_HTTP_PORT"

venv="$HOME/.cache/crm-venv"
if [ ! -x "$venv/bin/st" ]; then
  log "installing schemathesis into $venv"
  command -v python3 >/dev/null && python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3 python3-venv
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis>=4.3,<5'
fi

# Each check starts from empty databases.
psql "$CRM_PG_ADMIN_URL" -Atqc "SELECT 'DROP DATABASE IF EXISTS ' || quote_ident(datname) || ' WITH (FORCE);' FROM pg_database WHERE datname LIKE 'crm\_apicheck\_%'" \
  | psql "$CRM_PG_ADMIN_URL" -Atq >/dev/null
rm -f "$CRM_STATE_DIR/demo-token"

deploy/run.sh >"$CRM_STATE_DIR/run.log" 2>&1 &
platform=$!
trap 'kill -TERM $platform 2>/dev/null || true; wait $platform 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  [ -s "$CRM_STATE_DIR/demo-token" ] && break
  kill -0 $platform 2>/dev/null || { cat "$CRM_STATE_DIR/run.log"; die "the platform did not start"; }
  sleep 1
done
[ -s "$CRM_STATE_DIR/demo-token" ] || die "the platform did not start within 10 minutes"

log "schemathesis against $BASE/openapi.json"
# positive_data_acceptance is left out: the document states types and
# bounds, not every business rule (an e-mail that must contain '@'), so
# the API rightly refuses some values the schema allows.
schemathesis() {
  "$venv/bin/st" run "$BASE/openapi.json" \
    --header "Authorization: Bearer $(cat "$CRM_STATE_DIR/demo-token")" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "${CRM_APICHECK_EXAMPLES:-60}" --workers 2 --seed "${CRM_APICHECK_SEED:-1}" \
    --phases examples,fuzzing,stateful \
    --exclude-path /v1/admin/keys/rotate --exclude-path /v1/auth/logout \
    --request-timeout 30 --no-color
}
# The coverage phase is left out: on the recursive filter schemas
# (`Filter` holds groups of `Filter`s) schemathesis 4.32's coverage
# generator raises its own "Inconsistent results" errors (seen on
# POST /v1/accounts and /v1/accounts/search), which are not findings.
# With a fixed seed a finding of ours repeats; that internal error does
# not, so it alone gets a second run.
st_log="$CRM_STATE_DIR/schemathesis.log"
if ! schemathesis 2>&1 | tee "$st_log"; then
  grep -q "Inconsistent results" "$st_log" || die "schemathesis found problems (above)"
  log "schemathesis hit a flaky internal error; running it once more"
  schemathesis || die "schemathesis found problems (above)"
fi

# The API reference page renders the document: headless Chromium (Debian's
# package) loads /docs, runs Redoc, and the DOM must show operations with
# the descriptions that come from the proto comments.
log "the API reference at $BASE/docs renders (headless Chromium)"
ensure_chromium
profile=$(mktemp -d)
dom=$(timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$profile" \
  --virtual-time-budget=20000 --dump-dom "$BASE/docs" 2>/dev/null || true)
rm -rf "$profile"
for expected in 'operation/ContactService_MergeContacts' 'publishes contact.merged' 'operation/LeadService_ConvertLead'; do
  grep -qF "$expected" <<<"$dom" || die "/docs did not render '$expected' (Redoc from /openapi.json)"
done
log "/docs renders every operation with its description"
