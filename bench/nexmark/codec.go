package nexmark

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/weir-run/weir/internal/uvarintframe"
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
	d := uvarintframe.NewReader(b)
	e := Event{Emit: d.Varint()}
	kind := d.Byte()
	switch Kind(kind) {
	case KindPerson:
		p := &Person{}
		p.ID = d.Varint()
		p.Name, p.EmailAddress, p.CreditCard, p.City, p.State = d.Str(), d.Str(), d.Str(), d.Str(), d.Str()
		p.DateTime = d.Varint()
		p.Extra = d.Str()
		e.Kind, e.Person = KindPerson, p
	case KindAuction:
		a := &Auction{}
		a.ID = d.Varint()
		a.ItemName, a.Description = d.Str(), d.Str()
		a.InitialBid, a.Reserve, a.DateTime, a.Expires, a.Seller, a.Category = d.Varint(), d.Varint(), d.Varint(), d.Varint(), d.Varint(), d.Varint()
		a.Extra = d.Str()
		e.Kind, e.Auction = KindAuction, a
	case KindBid:
		x := &Bid{}
		x.Auction, x.Bidder, x.Price = d.Varint(), d.Varint(), d.Varint()
		x.Channel, x.URL = d.Str(), d.Str()
		x.DateTime = d.Varint()
		x.Extra = d.Str()
		e.Kind, e.Bid = KindBid, x
	default:
		if d.Err() == nil {
			return Event{}, fmt.Errorf("%w: unknown kind %d", ErrDecode, kind)
		}
	}
	if err := d.Done(); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrDecode, err)
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
