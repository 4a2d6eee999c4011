package main

import (
	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/internal/uvarintframe"
	"github.com/weir-run/weir/sdk"
)

// The windowed queries (wcount, scount, q5, q7, q11) move small records of
// their own between operators and keep accumulators in keyed state; these
// are their compact binary codecs (the default JSON codec is slow).

func init() {
	sdk.RegisterCodec[keyedBid](keyedBidCodec{})
	sdk.RegisterCodec[cnt](cntCodec{})
	sdk.RegisterCodec[winCount](winCountCodec{})
	sdk.RegisterCodec[q5Top](q5TopCodec{})
	sdk.RegisterCodec[q7Bid](q7BidCodec{})
	sdk.RegisterCodec[q7Acc](q7AccCodec{})
	sdk.RegisterCodec[q7Part](q7PartCodec{})
	sdk.RegisterCodec[priceBid](priceBidCodec{})
}

// keyedBid is what the counting queries need of a bid: its key (auction or
// bidder), event time and emit time.
type keyedBid struct{ Key, TS, Emit int64 }

type keyedBidCodec struct{}

func (keyedBidCodec) Append(dst []byte, v keyedBid) []byte {
	return uvarintframe.AppendVarints(dst, v.Key, v.TS, v.Emit)
}

func (keyedBidCodec) Decode(b []byte) (keyedBid, error) {
	d := uvarintframe.NewReader(b)
	var f [3]int64
	d.Varints(f[:])
	v := keyedBid{f[0], f[1], f[2]}
	return v, d.Done()
}

// keyedBids projects the bids of events to keyedBids by key, with their
// event time: one operator chained into the source, so the exchange after it
// carries three varints per bid instead of the whole event.
func keyedBids(events sdk.Stream[nexmark.Event], key func(*nexmark.Bid) int64) sdk.Stream[keyedBid] {
	s := sdk.FlatMap(events, func(e nexmark.Event, emit func(keyedBid)) {
		if e.Kind == nexmark.KindBid {
			emit(keyedBid{Key: key(e.Bid), TS: e.Bid.DateTime, Emit: e.Emit})
		}
	}, sdk.WithName("KeyedBids"), sdk.WithUID("keyed-bids"))
	return sdk.WithTimestamps(s, func(b keyedBid) int64 { return b.TS })
}

// cnt is a count with the newest emit time of the records counted.
type cnt struct{ N, Emit int64 }

type cntCodec struct{}

func (cntCodec) Append(dst []byte, v cnt) []byte { return uvarintframe.AppendVarints(dst, v.N, v.Emit) }

func (cntCodec) Decode(b []byte) (cnt, error) {
	d := uvarintframe.NewReader(b)
	var f [2]int64
	d.Varints(f[:])
	v := cnt{f[0], f[1]}
	return v, d.Done()
}

// countBids counts keyedBids with their newest emit time.
var countBids = sdk.AggregateFunc[keyedBid, cnt, cnt]{
	Init:   func() cnt { return cnt{} },
	Add:    func(c cnt, b keyedBid) cnt { return cnt{c.N + 1, max(c.Emit, b.Emit)} },
	Result: func(c cnt) cnt { return c },
	Merge:  func(a, b cnt) cnt { return cnt{a.N + b.N, max(a.Emit, b.Emit)} },
}

// countWindows counts the bids per key and window of a.
func countWindows(events sdk.Stream[nexmark.Event], key func(*nexmark.Bid) int64, a sdk.WindowAssigner) sdk.Stream[sdk.Pane[int64, cnt]] {
	keyed := sdk.KeyBy(keyedBids(events, key), func(b keyedBid) int64 { return b.Key })
	return sdk.WindowAggregate(sdk.Window(keyed, a), countBids, sdk.WithName("Count"), sdk.WithUID("count")).Results()
}

// paneKeyCount is a count pane as the query's output.
func paneKeyCount(p sdk.Pane[int64, cnt]) nexmark.KeyCount {
	return nexmark.KeyCount{Key: p.Key, Count: p.Value.N, Start: p.Start, End: p.End, Emit: p.Value.Emit}
}

// winCount is one key's count in the window ending at End (q5).
type winCount struct{ Key, Count, End, Emit int64 }

type winCountCodec struct{}

func (winCountCodec) Append(dst []byte, v winCount) []byte {
	return uvarintframe.AppendVarints(dst, v.Key, v.Count, v.End, v.Emit)
}

func (winCountCodec) Decode(b []byte) (winCount, error) {
	d := uvarintframe.NewReader(b)
	var f [4]int64
	d.Varints(f[:])
	v := winCount{f[0], f[1], f[2], f[3]}
	return v, d.Done()
}

// q5Top is a window's running maximum count (q5): the N first entries of
// the window's index map are the keys at Max; Used is how many entries the
// map has (older maxima leave entries behind until the window fires).
type q5Top struct{ Max, Emit, N, Used int64 }

type q5TopCodec struct{}

func (q5TopCodec) Append(dst []byte, v q5Top) []byte {
	return uvarintframe.AppendVarints(dst, v.Max, v.Emit, v.N, v.Used)
}

func (q5TopCodec) Decode(b []byte) (q5Top, error) {
	d := uvarintframe.NewReader(b)
	var f [4]int64
	d.Varints(f[:])
	v := q5Top{f[0], f[1], f[2], f[3]}
	return v, d.Done()
}

// q7Bid is what q7 needs of a bid besides its price.
type q7Bid struct{ Auction, Bidder, DateTime int64 }

type q7BidCodec struct{}

func (q7BidCodec) Append(dst []byte, v q7Bid) []byte {
	return uvarintframe.AppendVarints(dst, v.Auction, v.Bidder, v.DateTime)
}

func (q7BidCodec) Decode(b []byte) (q7Bid, error) {
	d := uvarintframe.NewReader(b)
	return readQ7Bid(d), d.Done()
}

// q7Acc is the highest price seen, the bids at it and the newest emit time
// of all bids seen. The first bid at the price is kept inline, so the usual
// single winner costs no allocation.
type q7Acc struct {
	Price, Emit int64
	N           int64 // bids at Price: First and then More
	First       q7Bid
	More        []q7Bid
}

func (a *q7Acc) add(price int64, b q7Bid) {
	switch {
	case a.N == 0 || price > a.Price:
		a.Price, a.N, a.First, a.More = price, 1, b, a.More[:0]
	case price == a.Price:
		a.N++
		a.More = append(a.More, b)
	}
}

// merge folds o into a; it may share o.More.
func (a q7Acc) merge(o q7Acc) q7Acc {
	a.Emit = max(a.Emit, o.Emit)
	switch {
	case o.N == 0 || (a.N > 0 && o.Price < a.Price):
		return a
	case a.N == 0 || o.Price > a.Price:
		o.Emit = a.Emit
		return o
	}
	more := make([]q7Bid, 0, len(a.More)+1+len(o.More))
	a.More = append(append(append(more, a.More...), o.First), o.More...)
	a.N += o.N
	return a
}

func (a q7Acc) each(fn func(q7Bid)) {
	if a.N == 0 {
		return
	}
	fn(a.First)
	for _, b := range a.More {
		fn(b)
	}
}

func appendQ7Acc(dst []byte, v q7Acc) []byte {
	dst = uvarintframe.AppendVarints(dst, v.Price, v.Emit, v.N)
	v.each(func(b q7Bid) { dst = uvarintframe.AppendVarints(dst, b.Auction, b.Bidder, b.DateTime) })
	return dst
}

// readQ7Bid reads the three numbers of a q7Bid in one call: these decoders
// run for every bid, and Varints is one call where Varint is two a number.
func readQ7Bid(d *uvarintframe.Reader) q7Bid {
	var f [3]int64
	d.Varints(f[:])
	return q7Bid{f[0], f[1], f[2]}
}

func decodeQ7Acc(d *uvarintframe.Reader) q7Acc {
	var f [3]int64
	d.Varints(f[:])
	v := q7Acc{Price: f[0], Emit: f[1], N: f[2]}
	if v.N < 0 || v.N > int64(d.Len()) {
		d.Fail("bad bid count")
		return v
	}
	if v.N > 0 {
		v.First = readQ7Bid(d)
	}
	if v.N > 1 {
		v.More = make([]q7Bid, v.N-1)
		for i := range v.More {
			v.More[i] = readQ7Bid(d)
		}
	}
	return v
}

type q7AccCodec struct{}

func (q7AccCodec) Append(dst []byte, v q7Acc) []byte { return appendQ7Acc(dst, v) }

func (q7AccCodec) Decode(b []byte) (q7Acc, error) {
	d := uvarintframe.NewReader(b)
	v := decodeQ7Acc(d)
	return v, d.Done()
}

// q7Part is a subtask's q7Acc of one key group for the window ending at End.
type q7Part struct {
	End int64
	Acc q7Acc
}

type q7PartCodec struct{}

func (q7PartCodec) Append(dst []byte, v q7Part) []byte {
	return appendQ7Acc(uvarintframe.AppendVarints(dst, v.End), v.Acc)
}

func (q7PartCodec) Decode(b []byte) (q7Part, error) {
	d := uvarintframe.NewReader(b)
	v := q7Part{End: d.Varint()}
	v.Acc = decodeQ7Acc(d)
	return v, d.Done()
}

// priceBid is what q7 needs of a bid.
type priceBid struct{ Auction, Bidder, Price, DateTime, Emit int64 }

type priceBidCodec struct{}

func (priceBidCodec) Append(dst []byte, v priceBid) []byte {
	return uvarintframe.AppendVarints(dst, v.Auction, v.Bidder, v.Price, v.DateTime, v.Emit)
}

func (priceBidCodec) Decode(b []byte) (priceBid, error) {
	d := uvarintframe.NewReader(b)
	var f [5]int64
	d.Varints(f[:])
	v := priceBid{f[0], f[1], f[2], f[3], f[4]}
	return v, d.Done()
}
