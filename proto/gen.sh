#!/usr/bin/env bash
# Regenerates the Go code from the .proto files with the pinned tools of
# tools/go.mod. Run as `go generate ./proto` from the repository root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd "$here/../tools" && GOBIN="$bin" go install github.com/bufbuild/buf/cmd/buf)
GOBIN="$bin" go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
GOBIN="$bin" go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
cd "$here"
PATH="$bin:$PATH" buf lint
PATH="$bin:$PATH" buf generate
