#!/usr/bin/env bash
# Supply chain: `cargo deny check` (advisories, licenses, bans, sources;
# settings and justified exceptions in deny.toml). Advisories come from a
# RustSec database snapshot, offline: CRM_ADVISORY_DB, or ../shared/advisory-db
# next to the checkout, which this script turns into the git repository
# cargo-deny expects. cargo-deny is installed from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

command -v cargo-deny >/dev/null || {
  log "installing cargo-deny (once)"
  cargo install --locked --quiet cargo-deny
}
snapshot="${CRM_ADVISORY_DB:-}"
for candidate in ../shared/advisory-db /work/shared/advisory-db; do
  [ -n "$snapshot" ] || { [ -d "$candidate" ] && snapshot="$candidate"; } || true
done
[ -n "$snapshot" ] && [ -d "$snapshot" ] || die "no advisory database snapshot: set CRM_ADVISORY_DB"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The directory name cargo-deny 0.20 derives from the default database URL.
db="$work/advisory-db-3157b0e258782691"
cp -r "$snapshot" "$db"
git -C "$db" init -q
git -C "$db" add -A
git -C "$db" -c user.name=ci -c user.email=ci@localhost commit -qm snapshot
sed "s|^\[advisories\]|[advisories]\ndb-path = \"$work\"|" deny.toml >"$work/deny.toml"
cargo fetch --locked --quiet
cargo deny --offline --config "$work/deny.toml" check
log "cargo deny: advisories, licenses, bans and sources ok (advisories as of $(head -c 80 "$snapshot/SNAPSHOT" 2>/dev/null || echo 'the snapshot'))"
