package nexmark

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/weir-run/weir/internal/uvarintframe"
)

// Output is a query's result record. AppendCanonical appends the bytes that
// identify it (never Emit); EmitTime is the wall-clock time (unix ns) of
// the newest input event it derives from, for latency, or 0 when the job
// does not measure latency.
type Output interface {
	AppendCanonical(dst []byte) []byte
	EmitTime() int64
}

// Checksum identifies a multiset of outputs independently of their order, so
// a parallel job's output can be compared with a single-threaded baseline's.
type Checksum struct {
	Count uint64 `json:"count"`
	Sum   uint64 `json:"sum"` // sum of the outputs' xxhash64, mod 2^64
}

// Add counts one output o in c; buf is scratch space, returned for reuse.
// It is generic rather than a method taking Output so that the hot path of
// a sink or baseline does not box every record.
func Add[O Output](c *Checksum, buf []byte, o O) []byte {
	buf = o.AppendCanonical(buf[:0])
	c.Count++
	c.Sum += xxhash.Sum64(buf)
	return buf
}

// Merge adds another part of the same output (another subtask's).
func (c *Checksum) Merge(o Checksum) {
	c.Count += o.Count
	c.Sum += o.Sum
}

func (c Checksum) String() string { return fmt.Sprintf("%d:%016x", c.Count, c.Sum) }

// Canonical encodings start with a tag per type, so that equal fields of
// different types never hash alike.
const (
	tagEvent byte = iota + 1
	tagQ1
	tagQ2
	tagQ3
	tagQ4
	tagKeyCount
	tagQ7
	tagQ8
)

// appendInts and appendStrings are direct calls, not function values: a
// call through a value cannot be inlined, and its variadic arguments then
// go to the heap, several allocations per event.
func appendInts(dst []byte, vs ...int64) []byte { return uvarintframe.AppendVarints(dst, vs...) }

func appendStrings(dst []byte, ss ...string) []byte {
	return uvarintframe.AppendStrings(dst, ss...)
}

// AppendCanonical makes Event the output of q0 (pass-through).
func (e Event) AppendCanonical(dst []byte) []byte {
	return appendEventBody(append(dst, tagEvent), e)
}

func (e Event) EmitTime() int64 { return e.Emit }

// Q1Out is a bid with its price in euros (q1).
type Q1Out struct {
	Auction, Bidder, Price, DateTime int64
	Emit                             int64
}

func (o Q1Out) AppendCanonical(dst []byte) []byte {
	return appendInts(append(dst, tagQ1), o.Auction, o.Bidder, o.Price, o.DateTime)
}
func (o Q1Out) EmitTime() int64 { return o.Emit }

// Q2Out is a bid on one of the selected auctions (q2).
type Q2Out struct {
	Auction, Price int64
	Emit           int64
}

func (o Q2Out) AppendCanonical(dst []byte) []byte {
	return appendInts(append(dst, tagQ2), o.Auction, o.Price)
}
func (o Q2Out) EmitTime() int64 { return o.Emit }

// Q3Out is a seller from OR, ID or CA with an auction in category 10 (q3).
type Q3Out struct {
	Name, City, State string
	Auction           int64
	Emit              int64
}

func (o Q3Out) AppendCanonical(dst []byte) []byte {
	return appendInts(appendStrings(append(dst, tagQ3), o.Name, o.City, o.State), o.Auction)
}
func (o Q3Out) EmitTime() int64 { return o.Emit }

// Q4Out is a category's average closing price at the end of input (q4).
type Q4Out struct {
	Category, Avg int64
	Emit          int64
}

func (o Q4Out) AppendCanonical(dst []byte) []byte {
	return appendInts(append(dst, tagQ4), o.Category, o.Avg)
}
func (o Q4Out) EmitTime() int64 { return o.Emit }

// KeyCount is a count per key and window [Start, End) (unix ms): bids per
// auction (q5, wcount, scount) or per bidder session (q11).
type KeyCount struct {
	Key, Count, Start, End int64
	Emit                   int64
}

func (o KeyCount) AppendCanonical(dst []byte) []byte {
	return appendInts(append(dst, tagKeyCount), o.Key, o.Count, o.Start, o.End)
}
func (o KeyCount) EmitTime() int64 { return o.Emit }

// Q7Out is a bid with the highest price of its window, which ends at End (q7).
type Q7Out struct {
	Auction, Bidder, Price, DateTime, End int64
	Emit                                  int64
}

func (o Q7Out) AppendCanonical(dst []byte) []byte {
	return appendInts(append(dst, tagQ7), o.Auction, o.Bidder, o.Price, o.DateTime, o.End)
}
func (o Q7Out) EmitTime() int64 { return o.Emit }

// Q8Out is a person who joined and opened an auction in the window starting
// at Start (q8).
type Q8Out struct {
	Person int64
	Name   string
	Start  int64
	Emit   int64
}

func (o Q8Out) AppendCanonical(dst []byte) []byte {
	return appendInts(appendStrings(appendInts(append(dst, tagQ8), o.Person), o.Name), o.Start)
}
func (o Q8Out) EmitTime() int64 { return o.Emit }
