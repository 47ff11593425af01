#!/usr/bin/env bash
# Renders every Kubernetes overlay and checks it: schemas
# (kubernetes-validate --strict), security policy (checkov; the justified
# exceptions are in k8s/.checkov.yaml) and the network policies' flows
# (deploy/k8s_flows.py: every needed flow allowed, nothing else); and that
# the Dockerfile and docker-compose.yml cover every binary (deploy/images_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh
command -v kubectl >/dev/null || die "kubectl renders the overlays (kubectl kustomize): install it"
venv="$HOME/.cache/crm-k8s-venv"
if ! "$venv/bin/python" -c 'import yaml' 2>/dev/null || [ ! -x "$venv/bin/checkov" ]; then
  log "installing checkov and kubernetes-validate into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q checkov==3.3.30 kubernetes-validate==1.37.0 pyyaml==6.0.4
fi
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
for overlay in k8s/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" >"$out/$name.yaml"
done
# The collector lives in `monitoring`: rendered and checked, outside the
# flows evaluation of the CRM namespace.
kubectl kustomize k8s/observability >"$out/observability.yaml"
"$venv/bin/kubernetes-validate" --strict --quiet "$out"/*.yaml
for rendered in "$out"/*.yaml; do
  "$venv/bin/checkov" -f "$rendered" --config-file k8s/.checkov.yaml >"$out/checkov.log" 2>&1 \
    || { cat "$out/checkov.log"; die "checkov failed on $(basename "$rendered")"; }
done
for rendered in "$out"/dev.yaml "$out"/prod.yaml; do
  "$venv/bin/python" deploy/k8s_flows.py <"$rendered"
done
"$venv/bin/python" deploy/images_check.py
log "kubernetes overlays render, validate, pass checkov and allow exactly the needed flows"
