#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets: the CSV import reader and row
# mapping, the REST filter tree down to its SQL, event decoding into webhook
# bodies) for a bounded time each: `deploy/fuzz.sh [seconds]` (default 20,
# as CI runs it; give it hours by hand). Needs the nightly toolchain;
# installs cargo-fuzz from crates.io when missing. Crashes are kept in
# fuzz/artifacts/<target>/ and reproduce with `cargo +nightly fuzz run
# <target> <file>`; the corpus grows in $HOME/.cache/crm-fuzz-corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh
seconds="${1:-20}"
rustup run nightly rustc --version >/dev/null 2>&1 || die "the nightly toolchain is needed (rustup toolchain install nightly)"
command -v cargo-fuzz >/dev/null || { log "installing cargo-fuzz (once)"; cargo install --locked --quiet cargo-fuzz; }
export CARGO_TARGET_DIR="${CRM_FUZZ_TARGET_DIR:-$HOME/.cache/crm-fuzz-target}"
# Safe Rust throughout: the sanitizer adds build time and little signal; a
# long run by hand can set CRM_FUZZ_SANITIZER=address.
sanitizer="${CRM_FUZZ_SANITIZER:-none}"
corpus_root="$HOME/.cache/crm-fuzz-corpus"
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$corpus_root/$target"
  log "fuzzing $target for ${seconds}s"
  out="$corpus_root/$target.log"
  if ! cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" "$corpus_root/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 >"$out" 2>&1; then
    tail -n 40 "$out" >&2
    die "fuzz target $target failed (the input is in fuzz/artifacts/$target)"
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$out" | tr '\n' ' '; echo
done
log "fuzzing: every target ran ${seconds}s without a failure"
