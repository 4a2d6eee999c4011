package nexmark

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestEventCodecRoundTrip(t *testing.T) {
	g := NewGenerator(DefaultConfig())
	cases := []Event{
		{Kind: KindPerson, Person: &Person{}},
		{Kind: KindAuction, Auction: &Auction{}},
		{Kind: KindBid, Bid: &Bid{}},
		{Kind: KindPerson, Emit: 1_700_000_000_123_456_789, Person: &Person{ID: 1000, Name: "Peter Shultz", EmailAddress: "a@b.com",
			CreditCard: "0001 0002 0003 0004", City: "Boise", State: "ID", DateTime: 1_436_918_400_000, Extra: "xyz"}},
		{Kind: KindAuction, Emit: -1, Auction: &Auction{ID: -5, ItemName: "ü 名", Description: string(make([]byte, 300)), InitialBid: 1 << 62,
			Reserve: -1 << 63, DateTime: 1, Expires: 2, Seller: 3, Category: 10, Extra: "e"}},
		{Kind: KindBid, Emit: 42, Bid: &Bid{Auction: 1000, Bidder: 1001, Price: 100_000_000, Channel: "Google",
			URL: "https://www.nexmark.com/abc/def/ghi/item.htm?query=1", DateTime: 1 << 50, Extra: "pad"}},
		withEmit(g.Event(0), 7), withEmit(g.Event(1), 8), withEmit(g.Event(4), 9),
	}
	for k, e := range cases {
		b := EventCodec{}.Append([]byte("prefix"), e)
		if string(b[:6]) != "prefix" {
			t.Fatalf("case %d: Append overwrote dst", k)
		}
		got, err := EventCodec{}.Decode(b[6:])
		if err != nil {
			t.Fatalf("case %d: %v", k, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("case %d: decoded %+v, want %+v", k, got, e)
		}
		// Every proper prefix and any trailing byte is an error, not a panic.
		for n := range len(b) - 6 {
			if _, err := (EventCodec{}).Decode(b[6 : 6+n]); !errors.Is(err, ErrDecode) {
				t.Fatalf("case %d: truncated to %d bytes: error %v", k, n, err)
			}
		}
		if _, err := (EventCodec{}).Decode(append(b[6:len(b):len(b)], 0)); !errors.Is(err, ErrDecode) {
			t.Fatalf("case %d: trailing byte: error %v", k, err)
		}
	}
	if _, err := (EventCodec{}).Decode([]byte{0, 3}); !errors.Is(err, ErrDecode) {
		t.Errorf("unknown kind: error %v", err)
	}
	// A varint with a redundant continuation byte (0 as 0x80 0x00) is not
	// the codec's encoding: accepting it would make two byte strings
	// decode to one event.
	if _, err := (EventCodec{}).Decode([]byte{0x80, 0x00, byte(KindBid), 0, 0, 0, 0, 0, 0, 0}); !errors.Is(err, ErrDecode) {
		t.Errorf("overlong varint: error %v", err)
	}
}

func withEmit(e Event, emit int64) Event { e.Emit = emit; return e }

// FuzzEventCodec: Decode never panics, and whatever it accepts re-encodes
// to exactly the input bytes. Run: go test ./bench/nexmark -fuzz FuzzEventCodec
func FuzzEventCodec(f *testing.F) {
	g := NewGenerator(DefaultConfig())
	for _, i := range []int64{0, 1, 2, 3, 4, 5, 49, 50} {
		f.Add(EventCodec{}.Append(nil, withEmit(g.Event(i), i)))
	}
	f.Add([]byte{})
	f.Add([]byte{0, 2, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := EventCodec{}.Decode(b)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		if got := (EventCodec{}).Append(nil, e); !bytes.Equal(got, b) {
			t.Fatalf("decoded %+v re-encodes to %x, input %x", e, got, b)
		}
	})
}
