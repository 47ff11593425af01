#!/usr/bin/env bash
# Proves the README's set-up path on a fresh machine, so it cannot regress
# behind servers that happen to be installed here.
#
# Builds a minimal Debian 12 root (`debootstrap --variant=minbase`: no
# PostgreSQL, no NATS, no compiler, no procps) and, inside it:
#   1. a NATS server without JetStream on a free port is refused with a
#      clear message (the case of Debian's systemd-started nats-server);
#   2. the set-up functions of deploy/lib.sh take PostgreSQL and NATS from
#      "not installed" to installed, initialised and answering (with
#      JetStream) on free ports;
#   3. the README's test command, deploy/test.sh, runs the whole suite there.
# The build is not repeated: the checkout, the Rust toolchain and the cargo
# target directory are bind-mounted at the same paths, so cargo finds its
# artefacts fresh. Everything it starts, it stops; the root is removed.
#
# Needs root (chroot, mounts). Extra arguments go to deploy/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh
cargo_target_dir
[ "$(id -u)" = 0 ] || die "fresh-check needs root (debootstrap, chroot, mounts)"
command -v debootstrap >/dev/null || apt_install debootstrap

checkout=$(pwd)
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
mirror="${CRM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
root=$(mktemp -d /tmp/crm-fresh.XXXXXX)
chmod 755 "$root"   # it becomes /, which the postgres user must traverse
mkdir -p "$CARGO_TARGET_DIR"

pg_port=$(free_port); nats_port=$(free_port); plain_nats_port=$(free_port)

inside() {
  chroot "$root" /usr/bin/env -i HOME="$HOME" PATH="$cargo_home/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    CARGO_HOME="$cargo_home" RUSTUP_HOME="$rustup_home" CARGO_TARGET_DIR="$CARGO_TARGET_DIR" \
    CRM_PG_ADMIN_URL="postgres://postgres@127.0.0.1:$pg_port/postgres" NATS_URL="nats://127.0.0.1:$nats_port" \
    CRM_STATE_DIR=/var/lib/crm LANG=C.UTF-8 TERM=dumb \
    bash -c "cd '$checkout' && $1"
}

cleanup() {
  set +e
  log "fresh-check: stopping what ran inside the root"
  if [ -x "$root/usr/bin/runuser" ] && [ -s "$root/var/lib/crm/postgres/postmaster.pid" ]; then
    chroot "$root" bash -c 'runuser -u postgres -- "$(ls -d /usr/lib/postgresql/*/bin | tail -n1)/pg_ctl" -D /var/lib/crm/postgres -m immediate stop' >/dev/null 2>&1
  fi
  for pidfile in "$root/var/lib/crm/nats/nats.pid" "$root/tmp/plain-nats.pid"; do
    [ -s "$pidfile" ] && kill -KILL "$(cat "$pidfile")" 2>/dev/null
  done
  # Anything else still running from inside the root (a test's own servers).
  for proc in /proc/[0-9]*; do
    [ "$(readlink "$proc/root" 2>/dev/null)" = "$root" ] && kill -KILL "${proc#/proc/}" 2>/dev/null
  done
  sleep 0.5
  umount -R "$root$CARGO_TARGET_DIR" "$root$rustup_home" "$root$cargo_home" "$root$checkout" \
    "$root/dev" "$root/proc" 2>/dev/null
  if mountpoint -q "$root/proc" || grep -q " $root/" /proc/mounts; then
    log "fresh-check: something is still mounted under $root; leaving it"
  else
    rm -rf "$root"
  fi
}
trap cleanup EXIT

log "fresh-check: debootstrap a minimal Debian 12 into $root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 \
  || { tail -20 "$root.debootstrap.log"; die "debootstrap failed"; }
rm -f "$root.debootstrap.log"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The network's own certificate authorities (a TLS-inspecting proxy, a
# company CA) are part of any machine on it, not of the project's set-up:
# Debian's ca-certificates package adds them when the scripts install it.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
for dir in "$checkout" "$cargo_home" "$rustup_home" "$CARGO_TARGET_DIR"; do
  mkdir -p "$root$dir"; mount --bind "$dir" "$root$dir"
done
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"; mount --make-rslave "$root/dev"

inside 'for tool in psql initdb nats-server cc pkill; do command -v $tool && exit 1; done; ls /usr/lib/postgresql 2>/dev/null && exit 1; true' >/dev/null \
  || die "the fresh root already has a server or tool the check expects to be missing"

log "fresh-check: a NATS server without JetStream is refused"
inside "source deploy/lib.sh; ensure_nats_binary; nohup \"\$NATS_SERVER_BIN\" -a 127.0.0.1 -p $plain_nats_port -P /tmp/plain-nats.pid >/dev/null 2>&1 &
  for _ in \$(seq 1 100); do tcp_open 127.0.0.1 $plain_nats_port && break; sleep 0.1; done
  NATS_URL=nats://127.0.0.1:$plain_nats_port; if (ensure_nats) 2>/tmp/refusal; then echo 'accepted a NATS without JetStream' >&2; exit 1; fi
  grep -q 'JetStream off' /tmp/refusal || { cat /tmp/refusal >&2; exit 1; }" \
  || die "a NATS server without JetStream was not refused with a clear message"
kill -KILL "$(cat "$root/tmp/plain-nats.pid")" 2>/dev/null || true

log "fresh-check: PostgreSQL on :$pg_port and NATS on :$nats_port, from nothing"
inside 'source deploy/lib.sh; ensure_postgres; ensure_nats; psql "$CRM_PG_ADMIN_URL" -Atqc "select version()"; nats_has_jetstream 127.0.0.1 '"$nats_port"' && echo "NATS answers with JetStream"
  case "$(nats_info 127.0.0.1 '"$nats_port"')" in *"\"version\":\"$NATS_SERVER_VERSION\""*) echo "nats-server $NATS_SERVER_VERSION (pinned)";; *) echo "not the pinned nats-server" >&2; exit 1;; esac'

log "fresh-check: the README's test command inside the fresh root"
inside "deploy/test.sh $*"
log "fresh-check: passed"
