package uvarintframe

import "encoding/binary"

// The functions of this file are for codecs of a single number and state
// written on every record: there a Reader (Varint then Done) made a decode
// ~20% slower than binary.Varint, and AppendVarints 10-20% slower than
// as many binary.AppendVarint calls. These inline to what encoding/binary
// does.

// AppendUvarint appends u as a uvarint (AppendUvarints of one number).
func AppendUvarint(dst []byte, u uint64) []byte { return binary.AppendUvarint(dst, u) }

// AppendVarint appends v as a zig-zag varint (AppendVarints of one number).
func AppendVarint(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }

// DecodeUvarint decodes b if it is exactly one uvarint, in the shortest
// form: it accepts what NewReader(b).Uvarint then Done accept. ok is false
// otherwise; the caller says why in its own terms.
func DecodeUvarint(b []byte) (u uint64, ok bool) {
	// binary.Uvarint's loop, small enough to be inlined.
	for i, c := range b {
		u |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			// The last byte, no zero padding, at most 64 bits.
			return u, i == len(b)-1 && (c != 0 || i == 0) && (i < 9 || i == 9 && c == 1)
		}
	}
	return 0, false
}

// DecodeVarint decodes b if it is exactly one zig-zag varint, as
// DecodeUvarint does.
func DecodeVarint(b []byte) (v int64, ok bool) {
	u, ok := DecodeUvarint(b)
	return int64(u>>1) ^ -int64(u&1), ok
}
