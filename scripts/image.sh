#!/usr/bin/env bash
# Builds the raftcache binary (static, CGO_ENABLED=0) and the container
# image around it (Dockerfile: FROM scratch, nothing pulled).
#   scripts/image.sh [TAG]      default TAG: raftcache:dev
# Uses podman, or docker when podman is absent (CONTAINER_ENGINE overrides).
# With podman, CONTAINERS_CONF defaults to deploy/containers.conf (runc, no
# default ulimits: what Debian's podman 4.3 needs on hosts like CI).
# RAFTCACHE_BIN=path uses that static binary instead of building one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-raftcache:dev}
engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
  if command -v podman >/dev/null; then engine=podman
  elif command -v docker >/dev/null; then engine=docker
  else echo "image.sh: neither podman nor docker is installed" >&2; exit 1; fi
fi
if [ "$(basename "$engine")" = podman ]; then
  export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/deploy/containers.conf}
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
if [ -n "${RAFTCACHE_BIN:-}" ]; then
  # A static binary built already (the container test reuses its own).
  cp "$RAFTCACHE_BIN" "$ctx/raftcache"
else
  (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/raftcache" .)
fi
mkdir -m 0700 "$ctx/data"
cp "$root/Dockerfile" "$ctx/Dockerfile"
"$engine" build --quiet -t "$tag" -f "$ctx/Dockerfile" "$ctx" >/dev/null
echo "built $tag with $engine"
