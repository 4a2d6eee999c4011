//go:build tools

// Package tools pins buf, the proto compiler driver used by `go generate ./proto`.
// The protoc plugins are installed at exact versions by proto/gen.sh: buf's
// protobuf requirement is newer than protoc-gen-go v1.36.12, so they cannot
// share this module.
package tools

import _ "github.com/bufbuild/buf/cmd/buf"
