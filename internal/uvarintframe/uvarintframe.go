// Package uvarintframe is weir's one implementation of the compact framing
// used in codecs, keyed state and checkpointed items: uvarints, zig-zag
// varints (encoding/binary's), and byte strings prefixed by their length as
// a uvarint.
//
// Append functions write; a Reader reads back what they wrote in the same
// order, keeping the first error so that a decoder checks once at the end.
// Readers accept only the shortest encoding of each number (what the Append
// functions and encoding/binary write), so anything a Reader accepts
// re-encodes to the same bytes: decoding is a function of the bytes and
// encoding its exact inverse.
//
// The package imports only the standard library, so leaves such as
// bench/nexmark may use it.
package uvarintframe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// ErrCorrupt is returned (wrapped, with what was wrong and where) for
// bytes that are not a valid framing.
var ErrCorrupt = errors.New("uvarintframe: corrupt encoding")

// UvarintLen is the length of binary.AppendUvarint(nil, u).
func UvarintLen(u uint64) int { return (bits.Len64(u|1) + 6) / 7 }

// VarintLen is the length of binary.AppendVarint(nil, v).
func VarintLen(v int64) int { return UvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

// BytesLen is the length of AppendBytes(nil, b) for len(b) == n.
func BytesLen(n int) int { return UvarintLen(uint64(n)) + n }

// AppendUvarints appends each of vs as a uvarint.
func AppendUvarints(dst []byte, vs ...uint64) []byte {
	for _, v := range vs {
		dst = binary.AppendUvarint(dst, v)
	}
	return dst
}

// AppendVarints appends each of vs as a zig-zag varint.
func AppendVarints(dst []byte, vs ...int64) []byte {
	for _, v := range vs {
		dst = binary.AppendVarint(dst, v)
	}
	return dst
}

// AppendBytes appends b prefixed by its length.
func AppendBytes(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

// AppendString appends s prefixed by its length.
func AppendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

// AppendStrings appends each of ss prefixed by its length.
func AppendStrings(dst []byte, ss ...string) []byte {
	for _, s := range ss {
		dst = AppendString(dst, s)
	}
	return dst
}

// AppendFrames appends each item prefixed by its length: a list of byte
// strings that SplitFrames takes apart.
func AppendFrames(dst []byte, items ...[]byte) []byte {
	for _, it := range items {
		dst = AppendBytes(dst, it)
	}
	return dst
}

// SplitFrames returns the items of b, written by AppendFrames; they alias
// b. An empty b holds no items.
func SplitFrames(b []byte) ([][]byte, error) {
	var items [][]byte
	r := NewReader(b)
	for r.Len() > 0 {
		it := r.Bytes()
		if r.Err() != nil {
			return nil, r.Err()
		}
		items = append(items, it)
	}
	return items, nil
}

// Reader reads numbers and byte strings off the front of a byte slice. The
// first failure sticks: later reads return zero values, and Err reports it.
// The zero Reader reads nothing.
type Reader struct {
	b   []byte
	off int // bytes consumed, for error messages
	err error
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Reset makes r read b from the start, forgetting any error.
func (r *Reader) Reset(b []byte) { *r = Reader{b: b} }

// Err returns the first failure, or nil.
func (r *Reader) Err() error { return r.err }

// Len returns how many bytes are left unread.
func (r *Reader) Len() int { return len(r.b) }

// Rest returns the unread bytes (aliasing the input) and consumes them.
func (r *Reader) Rest() []byte {
	if r.err != nil {
		return nil
	}
	b := r.b
	r.off += len(b)
	r.b = r.b[len(b):]
	return b
}

// Done returns the first failure, or an error if bytes are left unread: a
// decoder of a whole value ends with it.
func (r *Reader) Done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

// Fail records a failure a decoder found in what it read (a count out of
// range, an unknown tag), unless one was recorded already; reads after it
// return zero values.
func (r *Reader) Fail(reason string) { r.fail("%s", reason) }

func (r *Reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: at byte %d: %s", ErrCorrupt, r.off, fmt.Sprintf(format, args...))
	}
	r.b = nil
}

func (r *Reader) skip(n int) {
	r.b = r.b[n:]
	r.off += n
}

// Uvarint reads a uvarint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != UvarintLen(v) {
		r.fail("bad uvarint")
		return 0
	}
	r.skip(n)
	return v
}

// Varint reads a zig-zag varint.
func (r *Reader) Varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || n != VarintLen(v) {
		r.fail("bad varint")
		return 0
	}
	r.skip(n)
	return v
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.skip(1)
	return c
}

// Bytes reads a length-prefixed byte string; the result aliases the input.
func (r *Reader) Bytes() []byte {
	n := r.Uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("length %d exceeds the %d bytes left", n, len(r.b))
		return nil
	}
	b := r.b[:n:n]
	r.skip(int(n))
	return b
}

// Str reads a length-prefixed string. (Not String: a Reader is no fmt.Stringer.)
func (r *Reader) Str() string { return string(r.Bytes()) }
