package main

import (
	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// q8Window is q8's tumbling window size in ms.
const q8Window = 10_000

// q8Start is the start of the q8 window holding ts.
func q8Start(ts int64) int64 {
	m := ts % q8Window
	if m < 0 {
		m += q8Window
	}
	return ts - m
}

// q8Person is a person event as q8 needs it, with its window's start.
type q8Person struct {
	ID    int64
	Name  string
	Start int64
	Emit  int64
}

// q8Auction is an auction event as q8 needs it, with its window's start.
type q8Auction struct {
	Seller, Start, Emit int64
}

const (
	q8HasPerson  uint8 = 1 // the person's event is in the window
	q8HasAuction uint8 = 2 // an auction of the person is in the window
)

// q8Win is what a person ID has seen in one window.
type q8Win struct {
	Start int64
	Flags uint8
	Name  string // while only the person has been seen
}

// q8State is a person ID's open windows (normally one).
type q8State struct{ W []q8Win }

// q8 joins the persons (keyed by ID) with the auctions (keyed by Seller) per
// tumbling 10 s window in one KeyedCoProcess: each key keeps, per open
// window, whether it has seen the person and an auction; the event that
// completes the pair emits the (person, window) output, once, and an
// event-time timer at the window's end drops the window's state. Because no
// event is late, an output emitted when the pair completes is final.
func init() {
	queries["q8"] = func(events sdk.Stream[nexmark.Event], out sinkConfig) {
		ps := sdk.FlatMap(events, func(e nexmark.Event, emit func(q8Person)) {
			if e.Kind == nexmark.KindPerson {
				p := e.Person
				emit(q8Person{ID: p.ID, Name: p.Name, Start: q8Start(p.DateTime), Emit: e.Emit})
			}
		}, sdk.WithName("Q8Persons"), sdk.WithUID("q8-persons"))
		as := sdk.FlatMap(events, func(e nexmark.Event, emit func(q8Auction)) {
			if e.Kind == nexmark.KindAuction {
				a := e.Auction
				emit(q8Auction{Seller: a.Seller, Start: q8Start(a.DateTime), Emit: e.Emit})
			}
		}, sdk.WithName("Q8Auctions"), sdk.WithUID("q8-auctions"))
		res := sdk.KeyedCoProcess(sdk.Connect(
			sdk.KeyBy(ps, func(p q8Person) int64 { return p.ID }),
			sdk.KeyBy(as, func(a q8Auction) int64 { return a.Seller })),
			func(s *sdk.StateStore, t sdk.Timers) (sdk.CoProcessFuncs[int64, q8Person, q8Auction, nexmark.Q8Out], error) {
				st := sdk.NewValueState[q8State](s, "windows")
				// see marks flag in key's window start; on the transition to
				// both flags it emits, with the name and emit time given.
				see := func(key, start int64, flag uint8, name string, emitTime int64, emit func(nexmark.Q8Out)) error {
					cur, _, err := st.Get()
					if err != nil {
						return err
					}
					i := 0
					for i < len(cur.W) && cur.W[i].Start != start {
						i++
					}
					if i == len(cur.W) {
						cur.W = append(cur.W, q8Win{Start: start})
						if err := t.At(start + q8Window - 1); err != nil {
							return err
						}
					}
					w := &cur.W[i]
					if w.Flags&flag != 0 {
						return nil
					}
					w.Flags |= flag
					if flag == q8HasPerson {
						w.Name = name
					}
					if w.Flags == q8HasPerson|q8HasAuction {
						emit(nexmark.Q8Out{Person: key, Name: w.Name, Start: start, Emit: emitTime})
						w.Name = ""
					}
					return st.Set(cur)
				}
				return sdk.CoProcessFuncs[int64, q8Person, q8Auction, nexmark.Q8Out]{
					First: func(key int64, p q8Person, emit func(nexmark.Q8Out)) error {
						return see(key, p.Start, q8HasPerson, p.Name, p.Emit, emit)
					},
					Second: func(key int64, a q8Auction, emit func(nexmark.Q8Out)) error {
						return see(key, a.Start, q8HasAuction, "", a.Emit, emit)
					},
					Timer: func(_ int64, ts int64, _ sdk.TimeDomain, _ func(nexmark.Q8Out)) error {
						cur, ok, err := st.Get()
						if err != nil || !ok {
							return err
						}
						keep := cur.W[:0]
						for _, w := range cur.W {
							if w.Start+q8Window-1 > ts {
								keep = append(keep, w)
							}
						}
						if len(keep) == 0 {
							return st.Clear()
						}
						cur.W = keep
						return st.Set(cur)
					},
				}, nil
			}, sdk.WithName("Q8Join"), sdk.WithUID("q8-join"))
		checksumSink(res, out)
	}
}
