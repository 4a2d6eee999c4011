#!/bin/sh
# Builds the weir image: deploy/image/build.sh [TAG] (default weir:dev).
# The static binary is built here, on the host, because no base image (and
# so no Go toolchain image) can be pulled; the image is FROM scratch.
# GOARCH picks the image's architecture (default: the host's).
set -eu
tag=${1:-weir:dev}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
(cd "$root" && CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w' -o "$ctx/weir" ./cmd/weir)
mkdir -p "$ctx/etc/ssl/certs" "$ctx/dirs/data" "$ctx/dirs/certs" "$ctx/dirs/shared" "$ctx/dirs/tmp"
chmod 1777 "$ctx/dirs/tmp"
cp "$here/passwd" "$here/group" "$ctx/etc/"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/etc/ssl/certs/"
cp "$here/Dockerfile" "$ctx/"
# Quiet unless it fails (the legacy builder's deprecation notice is noise:
# nothing here needs BuildKit).
out=$(docker build -q -t "$tag" "$ctx" 2>&1) || { echo "$out" >&2; exit 1; }
docker image inspect -f '{{.Size}}' "$tag" | awk -v t="$tag" '{printf "built %s: %.1f MB\n", t, $1/1e6}'
