package uvarintframe

// Frame reads a length-prefixed byte string exactly as Bytes does, but
// takes a one-byte length (an item under 128 bytes) inline: Bytes costs
// two calls per item (Bytes, Uvarint), which is most of the cost of walking
// a batch of small records.
func (r *Reader) Frame() []byte {
	// A failed Reader holds no bytes, so a failure always goes to Bytes;
	// a one-byte uvarint is always the shortest encoding.
	b := r.b
	if len(b) == 0 || b[0] >= 0x80 || int(b[0]) >= len(b) {
		return r.Bytes()
	}
	n := 1 + int(b[0])
	r.b = b[n:]
	r.off += n
	return b[1:n:n]
}
