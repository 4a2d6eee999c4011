package main

import (
	"fmt"

	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/internal/uvarintframe"
	"github.com/weir-run/weir/sdk"
)

// Compact binary codecs for the intermediate records and keyed state of
// q1-q4 and q8, and for their outputs: varints and length-prefixed strings,
// so that nothing crosses an exchange or enters state as JSON.

// qaCodec adapts an append and a decode function to sdk.Codec.
type qaCodec[T any] struct {
	app func(dst []byte, v T) []byte
	dec func(d *uvarintframe.Reader) T
}

func (c qaCodec[T]) Append(dst []byte, v T) []byte { return c.app(dst, v) }

func (c qaCodec[T]) Decode(b []byte) (T, error) {
	d := uvarintframe.NewReader(b)
	return decoded(d, c.dec(d))
}

// decoded is v, read by d, unless d found it corrupt or left bytes unread.
func decoded[T any](d *uvarintframe.Reader, v T) (T, error) {
	if err := d.Done(); err != nil {
		var zero T
		return zero, fmt.Errorf("%w: %T: %v", sdk.ErrDecode, zero, err)
	}
	return v, nil
}

func qaRegister[T any](app func(dst []byte, v T) []byte, dec func(d *uvarintframe.Reader) T) {
	sdk.RegisterCodec[T](qaCodec[T]{app: app, dec: dec})
}

func init() {
	// Outputs.
	qaRegister(func(dst []byte, o nexmark.Q1Out) []byte {
		return uvarintframe.AppendVarints(dst, o.Auction, o.Bidder, o.Price, o.DateTime, o.Emit)
	}, func(d *uvarintframe.Reader) nexmark.Q1Out {
		return nexmark.Q1Out{Auction: d.Varint(), Bidder: d.Varint(), Price: d.Varint(), DateTime: d.Varint(), Emit: d.Varint()}
	})
	qaRegister(func(dst []byte, o nexmark.Q2Out) []byte {
		return uvarintframe.AppendVarints(dst, o.Auction, o.Price, o.Emit)
	}, func(d *uvarintframe.Reader) nexmark.Q2Out {
		return nexmark.Q2Out{Auction: d.Varint(), Price: d.Varint(), Emit: d.Varint()}
	})
	qaRegister(func(dst []byte, o nexmark.Q3Out) []byte {
		return uvarintframe.AppendVarints(uvarintframe.AppendString(uvarintframe.AppendString(uvarintframe.AppendString(dst, o.Name), o.City), o.State), o.Auction, o.Emit)
	}, func(d *uvarintframe.Reader) nexmark.Q3Out {
		return nexmark.Q3Out{Name: d.Str(), City: d.Str(), State: d.Str(), Auction: d.Varint(), Emit: d.Varint()}
	})
	qaRegister(func(dst []byte, o nexmark.Q4Out) []byte {
		return uvarintframe.AppendVarints(dst, o.Category, o.Avg, o.Emit)
	}, func(d *uvarintframe.Reader) nexmark.Q4Out {
		return nexmark.Q4Out{Category: d.Varint(), Avg: d.Varint(), Emit: d.Varint()}
	})
	qaRegister(func(dst []byte, o nexmark.Q8Out) []byte {
		return uvarintframe.AppendVarints(uvarintframe.AppendString(uvarintframe.AppendVarints(dst, o.Person), o.Name), o.Start, o.Emit)
	}, func(d *uvarintframe.Reader) nexmark.Q8Out {
		return nexmark.Q8Out{Person: d.Varint(), Name: d.Str(), Start: d.Varint(), Emit: d.Varint()}
	})

	// q3.
	qaRegister(func(dst []byte, p q3Person) []byte {
		return uvarintframe.AppendVarints(uvarintframe.AppendString(uvarintframe.AppendString(uvarintframe.AppendString(uvarintframe.AppendVarints(dst, p.ID), p.Name), p.City), p.State), p.Emit)
	}, func(d *uvarintframe.Reader) q3Person {
		return q3Person{ID: d.Varint(), Name: d.Str(), City: d.Str(), State: d.Str(), Emit: d.Varint()}
	})
	qaRegister(func(dst []byte, a q3Auction) []byte {
		return uvarintframe.AppendVarints(dst, a.ID, a.Seller, a.Emit)
	}, func(d *uvarintframe.Reader) q3Auction {
		return q3Auction{ID: d.Varint(), Seller: d.Varint(), Emit: d.Varint()}
	})

	// q4.
	qaRegister(func(dst []byte, b q4Bid) []byte {
		return uvarintframe.AppendVarints(dst, b.Auction, b.Price, b.DateTime, b.Emit)
	}, func(d *uvarintframe.Reader) q4Bid {
		return q4Bid{Auction: d.Varint(), Price: d.Varint(), DateTime: d.Varint(), Emit: d.Varint()}
	})
	sdk.RegisterCodec[q4Event](q4EventCodec{})
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
		dst = uvarintframe.AppendVarints(dst, flags)
		if s.Known {
			dst = appendQ4Auction(dst, s.A)
		}
		if s.HasBest {
			dst = uvarintframe.AppendVarints(dst, s.Best, s.BestEmit)
		}
		dst = uvarintframe.AppendVarints(dst, int64(len(s.Waiting)))
		for _, b := range s.Waiting {
			dst = uvarintframe.AppendVarints(dst, b.Price, b.DateTime, b.Emit)
		}
		return dst
	}, func(d *uvarintframe.Reader) q4State {
		var s q4State
		flags := d.Varint()
		s.Known, s.HasBest, s.Closed = flags&1 != 0, flags&2 != 0, flags&4 != 0
		if s.Known {
			s.A = decodeQ4Auction(d)
		}
		if s.HasBest {
			s.Best, s.BestEmit = d.Varint(), d.Varint()
		}
		if n := d.Varint(); n > 0 && n <= int64(d.Len())/3 { // 3 varints a bid
			s.Waiting = make([]q4Bid, n)
			for i := range s.Waiting {
				s.Waiting[i] = q4Bid{Price: d.Varint(), DateTime: d.Varint(), Emit: d.Varint()}
			}
		} else if n != 0 {
			d.Fail("bad q4 waiting count")
		}
		return s
	})
	qaRegister(func(dst []byte, w q4Win) []byte {
		return uvarintframe.AppendVarints(dst, w.Category, w.Price, w.Emit)
	}, func(d *uvarintframe.Reader) q4Win {
		return q4Win{Category: d.Varint(), Price: d.Varint(), Emit: d.Varint()}
	})
	qaRegister(func(dst []byte, a q4Acc) []byte {
		return uvarintframe.AppendVarints(dst, a.Category, a.Sum, a.Count, a.Emit)
	}, func(d *uvarintframe.Reader) q4Acc {
		return q4Acc{Category: d.Varint(), Sum: d.Varint(), Count: d.Varint(), Emit: d.Varint()}
	})

	// q8.
	qaRegister(func(dst []byte, p q8Person) []byte {
		return uvarintframe.AppendVarints(uvarintframe.AppendString(uvarintframe.AppendVarints(dst, p.ID), p.Name), p.Start, p.Emit)
	}, func(d *uvarintframe.Reader) q8Person {
		return q8Person{ID: d.Varint(), Name: d.Str(), Start: d.Varint(), Emit: d.Varint()}
	})
	qaRegister(func(dst []byte, a q8Auction) []byte {
		return uvarintframe.AppendVarints(dst, a.Seller, a.Start, a.Emit)
	}, func(d *uvarintframe.Reader) q8Auction {
		return q8Auction{Seller: d.Varint(), Start: d.Varint(), Emit: d.Varint()}
	})
	qaRegister(func(dst []byte, s q8State) []byte {
		dst = uvarintframe.AppendVarints(dst, int64(len(s.W)))
		for _, w := range s.W {
			dst = uvarintframe.AppendString(uvarintframe.AppendVarints(dst, w.Start, int64(w.Flags)), w.Name)
		}
		return dst
	}, func(d *uvarintframe.Reader) q8State {
		var s q8State
		n := d.Varint()
		if n < 0 || n > int64(d.Len()) {
			d.Fail("bad window count")
			return s
		}
		s.W = make([]q8Win, n)
		for i := range s.W {
			s.W[i] = q8Win{Start: d.Varint(), Flags: uint8(d.Varint()), Name: d.Str()}
		}
		return s
	})
}

// q4EventCodec is q4's shuffled record, every event but the persons': a
// codec of its own, not a qaCodec, because a qaCodec's decode function is
// a func value, through which its Reader escapes to the heap, one
// allocation per record decoded.
type q4EventCodec struct{}

func (q4EventCodec) Append(dst []byte, e q4Event) []byte {
	if e.IsAuction {
		return appendQ4Auction(append(dst, 1), e.A)
	}
	return uvarintframe.AppendVarints(append(dst, 0), e.B.Auction, e.B.Price, e.B.DateTime, e.B.Emit)
}

func (q4EventCodec) Decode(b []byte) (q4Event, error) {
	d := uvarintframe.NewReader(b)
	var e q4Event
	switch {
	case d.Len() == 0:
		d.Fail("empty q4 event")
	case d.Byte() == 1:
		e = q4Event{IsAuction: true, A: decodeQ4Auction(d)}
	default:
		e = q4Event{B: q4Bid{Auction: d.Varint(), Price: d.Varint(), DateTime: d.Varint(), Emit: d.Varint()}}
	}
	return decoded(d, e)
}

func appendQ4Auction(dst []byte, a q4Auction) []byte {
	return uvarintframe.AppendVarints(dst, a.ID, a.DateTime, a.Expires, a.Reserve, a.Category, a.Emit)
}

func decodeQ4Auction(d *uvarintframe.Reader) q4Auction {
	return q4Auction{ID: d.Varint(), DateTime: d.Varint(), Expires: d.Varint(), Reserve: d.Varint(), Category: d.Varint(), Emit: d.Varint()}
}
