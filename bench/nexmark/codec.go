package nexmark

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrDecode wraps every failure to decode an event.
var ErrDecode = errors.New("nexmark: cannot decode event")

// EventCodec is the binary codec of Event; its methods match weir's
// sdk.Codec, so a job registers it with sdk.RegisterCodec.
type EventCodec struct{}

func (EventCodec) Append(dst []byte, e Event) []byte {
	dst = binary.AppendVarint(dst, e.Emit)
	return appendEventBody(dst, e)
}

func (EventCodec) Decode(b []byte) (Event, error) {
	d := decoder{b: b}
	e := Event{Emit: d.int()}
	kind := d.byte()
	switch Kind(kind) {
	case KindPerson:
		p := &Person{}
		p.ID = d.int()
		p.Name, p.EmailAddress, p.CreditCard, p.City, p.State = d.str(), d.str(), d.str(), d.str(), d.str()
		p.DateTime = d.int()
		p.Extra = d.str()
		e.Kind, e.Person = KindPerson, p
	case KindAuction:
		a := &Auction{}
		a.ID = d.int()
		a.ItemName, a.Description = d.str(), d.str()
		a.InitialBid, a.Reserve, a.DateTime, a.Expires, a.Seller, a.Category = d.int(), d.int(), d.int(), d.int(), d.int(), d.int()
		a.Extra = d.str()
		e.Kind, e.Auction = KindAuction, a
	case KindBid:
		x := &Bid{}
		x.Auction, x.Bidder, x.Price = d.int(), d.int(), d.int()
		x.Channel, x.URL = d.str(), d.str()
		x.DateTime = d.int()
		x.Extra = d.str()
		e.Kind, e.Bid = KindBid, x
	default:
		if d.err == nil {
			d.err = fmt.Errorf("unknown kind %d", kind)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrDecode, d.err)
	}
	return e, nil
}

// appendEventBody encodes everything but Emit: the codec's tail and the
// canonical bytes of q0's output.
func appendEventBody(dst []byte, e Event) []byte {
	dst = append(dst, byte(e.Kind))
	switch e.Kind {
	case KindPerson:
		p := e.Person
		dst = appendInts(dst, p.ID)
		dst = appendStrings(dst, p.Name, p.EmailAddress, p.CreditCard, p.City, p.State)
		dst = appendInts(dst, p.DateTime)
		return appendStrings(dst, p.Extra)
	case KindAuction:
		a := e.Auction
		dst = appendInts(dst, a.ID)
		dst = appendStrings(dst, a.ItemName, a.Description)
		dst = appendInts(dst, a.InitialBid, a.Reserve, a.DateTime, a.Expires, a.Seller, a.Category)
		return appendStrings(dst, a.Extra)
	default:
		x := e.Bid
		dst = appendInts(dst, x.Auction, x.Bidder, x.Price)
		dst = appendStrings(dst, x.Channel, x.URL)
		dst = appendInts(dst, x.DateTime)
		return appendStrings(dst, x.Extra)
	}
}

// decoder reads varints and length-prefixed strings, remembering the first
// error so that Decode checks once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	// binary.Varint accepts redundant continuation bytes (0 as 0x80 0x00);
	// the codec's encoding is the shortest, so that Decode accepts exactly
	// what Append writes.
	if n <= 0 || n != varintLen(v) {
		d.err = errors.New("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errors.New("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) str() string {
	if d.err != nil {
		return ""
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || k != uvarintLen(n) || n > uint64(len(d.b)-k) {
		d.err = errors.New("bad string length")
		return ""
	}
	s := string(d.b[k : k+int(n)])
	d.b = d.b[k+int(n):]
	return s
}
