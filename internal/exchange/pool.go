package exchange

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// bufferPool holds DataService message buffers: the codec marshals into it
// and unmarshals from it, and client connections read frames into it.
//
// gRPC's default pool has a 32 KiB tier and then a 1 MiB one, and zeroes a
// buffer's whole capacity on every Get. A ~32 KiB batch plus its envelope
// lands in the 1 MiB tier, so every frame cleared 1 MiB when sent and again
// when received: 58% of a remote channel's CPU, and still 54% with finer
// zeroing tiers (this VM clears memory at ~1.3 GB/s). gRPC fills every byte
// it asks for before reading it (marshal, frame reads and copies write the
// requested length), so this pool skips the zeroing. It is not installed on
// the caller's grpc.Server, where other services may run.
var bufferPool mem.BufferPool = newDirtyPool()

const (
	minPoolShift = 8  // 256 B: smaller requests use the smallest tier
	maxPoolShift = 22 // 4 MiB: larger requests are rare and allocate
)

// dirtyPool keeps power-of-two buffers in one sync.Pool per size class and
// returns them without clearing.
type dirtyPool struct {
	tiers [maxPoolShift - minPoolShift + 1]sync.Pool
}

func newDirtyPool() *dirtyPool { return &dirtyPool{} }

// tier returns the index of the smallest class holding size bytes, or -1.
func tier(size int) int {
	if size <= 1<<minPoolShift {
		return 0
	}
	shift := bits.Len(uint(size - 1))
	if shift > maxPoolShift {
		return -1
	}
	return shift - minPoolShift
}

func (p *dirtyPool) Get(size int) *[]byte {
	t := tier(size)
	if t < 0 {
		b := make([]byte, size)
		return &b
	}
	if b, ok := p.tiers[t].Get().(*[]byte); ok {
		*b = (*b)[:size]
		return b
	}
	b := make([]byte, size, 1<<(t+minPoolShift))
	return &b
}

func (p *dirtyPool) Put(b *[]byte) {
	c := cap(*b)
	if c < 1<<minPoolShift || c > 1<<maxPoolShift || c&(c-1) != 0 {
		return // not one of ours
	}
	p.tiers[tier(c)].Put(b)
}
