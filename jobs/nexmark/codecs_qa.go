package main

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// Compact binary codecs for the intermediate records and keyed state of
// q1-q4 and q8, and for their outputs: varints and length-prefixed strings,
// so that nothing crosses an exchange or enters state as JSON.

// qaCodec adapts an append and a decode function to sdk.Codec.
type qaCodec[T any] struct {
	app func(dst []byte, v T) []byte
	dec func(d *qaDec) T
}

func (c qaCodec[T]) Append(dst []byte, v T) []byte { return c.app(dst, v) }

func (c qaCodec[T]) Decode(b []byte) (T, error) {
	d := qaDec{b: b}
	v := c.dec(&d)
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		var zero T
		return zero, fmt.Errorf("%w: %T: %v", sdk.ErrDecode, zero, d.err)
	}
	return v, nil
}

func qaRegister[T any](app func(dst []byte, v T) []byte, dec func(d *qaDec) T) {
	sdk.RegisterCodec[T](qaCodec[T]{app: app, dec: dec})
}

// qaDec reads varints and length-prefixed strings, keeping the first error.
type qaDec struct {
	b   []byte
	err error
}

func (d *qaDec) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *qaDec) str() string {
	if d.err != nil {
		return ""
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.err = errors.New("bad string length")
		return ""
	}
	s := string(d.b[k : k+int(n)])
	d.b = d.b[k+int(n):]
	return s
}

func qaInts(dst []byte, vs ...int64) []byte {
	for _, v := range vs {
		dst = binary.AppendVarint(dst, v)
	}
	return dst
}

func qaStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func init() {
	// Outputs.
	qaRegister(func(dst []byte, o nexmark.Q1Out) []byte {
		return qaInts(dst, o.Auction, o.Bidder, o.Price, o.DateTime, o.Emit)
	}, func(d *qaDec) nexmark.Q1Out {
		return nexmark.Q1Out{Auction: d.int(), Bidder: d.int(), Price: d.int(), DateTime: d.int(), Emit: d.int()}
	})
	qaRegister(func(dst []byte, o nexmark.Q2Out) []byte {
		return qaInts(dst, o.Auction, o.Price, o.Emit)
	}, func(d *qaDec) nexmark.Q2Out {
		return nexmark.Q2Out{Auction: d.int(), Price: d.int(), Emit: d.int()}
	})
	qaRegister(func(dst []byte, o nexmark.Q3Out) []byte {
		return qaInts(qaStr(qaStr(qaStr(dst, o.Name), o.City), o.State), o.Auction, o.Emit)
	}, func(d *qaDec) nexmark.Q3Out {
		return nexmark.Q3Out{Name: d.str(), City: d.str(), State: d.str(), Auction: d.int(), Emit: d.int()}
	})
	qaRegister(func(dst []byte, o nexmark.Q4Out) []byte {
		return qaInts(dst, o.Category, o.Avg, o.Emit)
	}, func(d *qaDec) nexmark.Q4Out {
		return nexmark.Q4Out{Category: d.int(), Avg: d.int(), Emit: d.int()}
	})
	qaRegister(func(dst []byte, o nexmark.Q8Out) []byte {
		return qaInts(qaStr(qaInts(dst, o.Person), o.Name), o.Start, o.Emit)
	}, func(d *qaDec) nexmark.Q8Out {
		return nexmark.Q8Out{Person: d.int(), Name: d.str(), Start: d.int(), Emit: d.int()}
	})

	// q3.
	qaRegister(func(dst []byte, p q3Person) []byte {
		return qaInts(qaStr(qaStr(qaStr(qaInts(dst, p.ID), p.Name), p.City), p.State), p.Emit)
	}, func(d *qaDec) q3Person {
		return q3Person{ID: d.int(), Name: d.str(), City: d.str(), State: d.str(), Emit: d.int()}
	})
	qaRegister(func(dst []byte, a q3Auction) []byte {
		return qaInts(dst, a.ID, a.Seller, a.Emit)
	}, func(d *qaDec) q3Auction {
		return q3Auction{ID: d.int(), Seller: d.int(), Emit: d.int()}
	})

	// q4.
	qaRegister(func(dst []byte, b q4Bid) []byte {
		return qaInts(dst, b.Auction, b.Price, b.DateTime, b.Emit)
	}, func(d *qaDec) q4Bid {
		return q4Bid{Auction: d.int(), Price: d.int(), DateTime: d.int(), Emit: d.int()}
	})
	qaRegister(func(dst []byte, e q4Event) []byte {
		if e.IsAuction {
			return appendQ4Auction(append(dst, 1), e.A)
		}
		return qaInts(append(dst, 0), e.B.Auction, e.B.Price, e.B.DateTime, e.B.Emit)
	}, func(d *qaDec) q4Event {
		if len(d.b) == 0 {
			d.err = errors.New("empty q4 event")
			return q4Event{}
		}
		isAuction := d.b[0] == 1
		d.b = d.b[1:]
		if isAuction {
			return q4Event{IsAuction: true, A: decodeQ4Auction(d)}
		}
		return q4Event{B: q4Bid{Auction: d.int(), Price: d.int(), DateTime: d.int(), Emit: d.int()}}
	})
	qaRegister(func(dst []byte, s q4State) []byte {
		var flags int64
		if s.Known {
			flags |= 1
		}
		if s.HasBest {
			flags |= 2
		}
		if s.Closed {
			flags |= 4
		}
		dst = qaInts(dst, flags)
		if s.Known {
			dst = appendQ4Auction(dst, s.A)
		}
		if s.HasBest {
			dst = qaInts(dst, s.Best, s.BestEmit)
		}
		dst = qaInts(dst, s.Pending)
		return dst
	}, func(d *qaDec) q4State {
		var s q4State
		flags := d.int()
		s.Known, s.HasBest, s.Closed = flags&1 != 0, flags&2 != 0, flags&4 != 0
		if s.Known {
			s.A = decodeQ4Auction(d)
		}
		if s.HasBest {
			s.Best, s.BestEmit = d.int(), d.int()
		}
		s.Pending = d.int()
		return s
	})
	qaRegister(func(dst []byte, w q4Win) []byte {
		return qaInts(dst, w.Category, w.Price, w.Emit)
	}, func(d *qaDec) q4Win {
		return q4Win{Category: d.int(), Price: d.int(), Emit: d.int()}
	})
	qaRegister(func(dst []byte, a q4Acc) []byte {
		return qaInts(dst, a.Category, a.Sum, a.Count, a.Emit)
	}, func(d *qaDec) q4Acc {
		return q4Acc{Category: d.int(), Sum: d.int(), Count: d.int(), Emit: d.int()}
	})

	// q8.
	qaRegister(func(dst []byte, p q8Person) []byte {
		return qaInts(qaStr(qaInts(dst, p.ID), p.Name), p.Start, p.Emit)
	}, func(d *qaDec) q8Person {
		return q8Person{ID: d.int(), Name: d.str(), Start: d.int(), Emit: d.int()}
	})
	qaRegister(func(dst []byte, a q8Auction) []byte {
		return qaInts(dst, a.Seller, a.Start, a.Emit)
	}, func(d *qaDec) q8Auction {
		return q8Auction{Seller: d.int(), Start: d.int(), Emit: d.int()}
	})
	qaRegister(func(dst []byte, s q8State) []byte {
		dst = qaInts(dst, int64(len(s.W)))
		for _, w := range s.W {
			dst = qaStr(qaInts(dst, w.Start, int64(w.Flags)), w.Name)
		}
		return dst
	}, func(d *qaDec) q8State {
		var s q8State
		n := d.int()
		if n < 0 || n > int64(len(d.b)) {
			if d.err == nil {
				d.err = errors.New("bad window count")
			}
			return s
		}
		s.W = make([]q8Win, n)
		for i := range s.W {
			s.W[i] = q8Win{Start: d.int(), Flags: uint8(d.int()), Name: d.str()}
		}
		return s
	})
}

func appendQ4Auction(dst []byte, a q4Auction) []byte {
	return qaInts(dst, a.ID, a.DateTime, a.Expires, a.Reserve, a.Category, a.Emit)
}

func decodeQ4Auction(d *qaDec) q4Auction {
	return q4Auction{ID: d.int(), DateTime: d.int(), Expires: d.int(), Reserve: d.int(), Category: d.int(), Emit: d.int()}
}
