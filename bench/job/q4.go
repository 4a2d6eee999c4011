package main

import (
	"math"

	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// q4Auction is an auction as q4 needs it.
type q4Auction struct {
	ID, DateTime, Expires, Reserve, Category, Emit int64
}

// q4Bid is a bid as q4 needs it (Auction is not kept in state).
type q4Bid struct {
	Auction, Price, DateTime, Emit int64
}

// q4State is an auction's keyed state: the auction once known and its best
// valid bid so far, or, before the auction arrives, the bids that wait for
// it. The state lives typed in the task's heap (sdk.ValueState), so a
// waiting bid is an append, not a decode and rewrite of the list.
type q4State struct {
	Known          bool
	Closed         bool // the auction has ended; A is kept until closedRetention after it
	A              q4Auction
	HasBest        bool
	Best, BestEmit int64
	Waiting        []q4Bid // Auction unset: the key says it
}

// offer makes b the best bid if it is valid for the known auction and
// beats the best so far; it reports whether the state changed.
func (s *q4State) offer(b q4Bid) bool {
	a := &s.A
	if b.DateTime < a.DateTime || b.DateTime >= a.Expires || b.Price < a.Reserve || (s.HasBest && b.Price <= s.Best) {
		return false
	}
	s.HasBest, s.Best, s.BestEmit = true, b.Price, b.Emit
	return true
}

// closedRetention is how long (event time) a closed auction's state
// outlives it, so that the bids that still name it are dropped at the cost of
// one small read. Without it they waited for the watermark, and
// the hot auction's list grew by thousands of bids, each read and rewritten
// per bid: quadratic, the top of q4's profile. Correctness does not depend on
// it: a bid arriving after the close is invalid either way.
const closedRetention = 10_000

// q4Event is an auction or a bid.
type q4Event struct {
	IsAuction bool
	A         q4Auction
	B         q4Bid
}

func (e q4Event) auction() int64 {
	if e.IsAuction {
		return e.A.ID
	}
	return e.B.Auction
}

// q4Win is an auction's winning price, in its category.
type q4Win struct {
	Category, Price, Emit int64
}

// q4Acc is a category's running sum and count of winning prices.
type q4Acc struct {
	Category, Sum, Count, Emit int64
}

// q4 finds each auction's winning bid in a KeyedProcess of the auctions and
// bids keyed by auction: a bid that comes before its auction waits in
// state, with an event-time timer that drops the waiting bids the watermark
// has passed if the auction still has not come (they cannot be valid then);
// once the auction is known only the best valid bid is kept, and a timer at
// Expires emits (category, price) and clears the state. An Aggregate per
// category with EmitFinal then emits the floor of the mean once, at the end
// of input.
func init() {
	queries["q4"] = func(events sdk.Stream[nexmark.Event], out sinkConfig) {
		// Auctions and bids travel together on one channel, keyed by
		// auction: from one source subtask an auction then always comes
		// before its bids. On two channels (Connect) the sparse auction
		// channel's buffers flushed later than the bids', and the hot
		// auction's bids piled up waiting for it.
		evs := sdk.FlatMap(events, func(e nexmark.Event, emit func(q4Event)) {
			switch e.Kind {
			case nexmark.KindAuction:
				a := e.Auction
				emit(q4Event{IsAuction: true, A: q4Auction{ID: a.ID, DateTime: a.DateTime, Expires: a.Expires, Reserve: a.Reserve, Category: a.Category, Emit: e.Emit}})
			case nexmark.KindBid:
				b := e.Bid
				emit(q4Event{B: q4Bid{Auction: b.Auction, Price: b.Price, DateTime: b.DateTime, Emit: e.Emit}})
			}
		}, sdk.WithName("Q4Events"), sdk.WithUID("q4-events"))
		wins := sdk.KeyedProcessTimers(sdk.KeyBy(evs, q4Event.auction),
			func(s *sdk.StateStore, t sdk.Timers) (sdk.ProcessFuncs[int64, q4Event, q4Win], error) {
				st := sdk.NewValueState[q4State](s, "auction")
				auction := func(a q4Auction) error {
					cur, _, err := st.Get()
					if err != nil {
						return err
					}
					cur.Known, cur.A = true, a
					for _, b := range cur.Waiting {
						cur.offer(b)
					}
					cur.Waiting = nil
					if err := st.Set(cur); err != nil {
						return err
					}
					return t.At(a.Expires)
				}
				bid := func(b q4Bid) error {
					cur, _, err := st.Get()
					if err != nil {
						return err
					}
					if cur.Closed {
						return nil
					}
					if cur.Known {
						if cur.offer(b) {
							return st.Set(cur)
						}
						return nil
					}
					// One timer for the waiting bids: the first one's, then
					// the earliest left's (see Timer).
					cur.Waiting = append(cur.Waiting, b)
					if err := st.Set(cur); err != nil {
						return err
					}
					if len(cur.Waiting) == 1 {
						return t.At(b.DateTime)
					}
					return nil
				}
				return sdk.ProcessFuncs[int64, q4Event, q4Win]{
					Record: func(_ int64, e q4Event, _ func(q4Win)) error {
						if e.IsAuction {
							return auction(e.A)
						}
						return bid(e.B)
					},
					Timer: func(_ int64, ts int64, _ sdk.TimeDomain, emit func(q4Win)) error {
						cur, ok, err := st.Get()
						if err != nil || !ok {
							return err
						}
						if cur.Closed {
							if ts >= cur.A.Expires+closedRetention {
								return st.Clear()
							}
							return nil
						}
						if cur.Known {
							if ts < cur.A.Expires {
								return nil // a waiting bid's timer, obsolete
							}
							if cur.HasBest {
								emit(q4Win{Category: cur.A.Category, Price: cur.Best, Emit: max(cur.A.Emit, cur.BestEmit)})
							}
							if err := st.Set(q4State{Known: true, Closed: true, A: cur.A}); err != nil {
								return err
							}
							return t.At(cur.A.Expires + closedRetention)
						}
						// The auction has not come by the watermark: it will
						// start after it, so the bids up to it cannot win.
						wm := t.Watermark()
						kept := cur.Waiting[:0]
						next := int64(math.MaxInt64)
						for _, b := range cur.Waiting {
							if b.DateTime > wm {
								kept = append(kept, b)
								next = min(next, b.DateTime)
							}
						}
						if len(kept) == 0 {
							return st.Clear()
						}
						cur.Waiting = kept
						if err := st.Set(cur); err != nil {
							return err
						}
						return t.At(next)
					},
				}, nil
			}, sdk.WithName("Q4Winners"), sdk.WithUID("q4-winners"))
		avg := sdk.Aggregate(sdk.KeyBy(wins, func(w q4Win) int64 { return w.Category }),
			sdk.AggregateFunc[q4Win, q4Acc, nexmark.Q4Out]{
				Init: func() q4Acc { return q4Acc{} },
				Add: func(a q4Acc, w q4Win) q4Acc {
					return q4Acc{Category: w.Category, Sum: a.Sum + w.Price, Count: a.Count + 1, Emit: max(a.Emit, w.Emit)}
				},
				Result: func(a q4Acc) nexmark.Q4Out {
					return nexmark.Q4Out{Category: a.Category, Avg: floorDiv(a.Sum, a.Count), Emit: a.Emit}
				},
			}, sdk.EmitFinal(), sdk.WithName("Q4Average"), sdk.WithUID("q4-average"))
		res := sdk.Map(avg, func(kv sdk.KV[int64, nexmark.Q4Out]) nexmark.Q4Out { return kv.Value },
			sdk.WithName("Q4Out"), sdk.WithUID("q4-out"))
		checksumSink(res, out)
	}
}

// floorDiv is a/b rounded toward negative infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
