#!/usr/bin/env bash
# Runs buf (from the npm package @bufbuild/buf, cached under ~/.cache) on
# proto/: `deploy/buf.sh lint`, `deploy/buf.sh breaking --against ...`.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${CRM_BUF_DIR:-$HOME/.cache/crm-buf}"
if [ ! -x "$dir/node_modules/.bin/buf" ]; then
  command -v npm >/dev/null || { echo "npm is needed to install buf (apt-get install npm)" >&2; exit 1; }
  mkdir -p "$dir"
  npm install --silent --no-audit --no-fund --prefix "$dir" @bufbuild/buf@1 >&2
fi
cd proto
exec "$dir/node_modules/.bin/buf" "$@"
