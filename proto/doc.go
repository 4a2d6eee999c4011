// Package proto holds weir's wire contracts: the .proto files under weir/v1
// and the Go code generated from them (package weirv1). It imports nothing of
// weir's own. Regenerate with `go generate ./proto`.
package proto

//go:generate ./gen.sh
