package uvarintframe

import "encoding/binary"

// Varints reads len(vs) zig-zag varints into vs, what AppendVarints wrote,
// exactly as that many Varint calls would (vs from the first failure on is
// zeroed). It is one call for all of them, where Varint costs two per
// number: decoders of a few numbers per record (window state) are ~20%
// slower with Varint than with hand-written binary.Varint calls.
func (r *Reader) Varints(vs []int64) {
	b := r.b
	for i := range vs {
		u, n := binary.Uvarint(b)
		if n <= 0 || n != UvarintLen(u) {
			r.skip(len(r.b) - len(b))
			r.fail("bad varint")
			clear(vs[i:])
			return
		}
		vs[i] = int64(u>>1) ^ -int64(u&1)
		b = b[n:]
	}
	r.skip(len(r.b) - len(b))
}
