// Package chunkio owns the adapter from a stream of byte chunks (a gRPC
// stream of messages) to an io.Reader, so binaries can flow from an upload
// into the object store, or from the coordinator into a worker's cache,
// without buffering them whole and without a goroutine and pipe per transfer.
package chunkio

// Reader reads the concatenation of the chunks next returns. next returns
// io.EOF after the last chunk; any other error is returned by Read as is.
// Chunks are not retained beyond the Read that consumes them.
type Reader struct {
	next func() ([]byte, error)
	buf  []byte
	err  error
}

// NewReader returns a Reader over next.
func NewReader(next func() ([]byte, error)) *Reader { return &Reader{next: next} }

func (r *Reader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.buf, r.err = r.next()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
