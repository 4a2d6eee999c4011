package main

import (
	"time"

	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

const (
	q5Size  = 10 * time.Second
	q5Slide = 2 * time.Second
)

// q5 (hot items): the bids per auction per sliding window (10 s, slide 2 s),
// then per window the auctions whose count is the window's maximum.
//
// Stage 1 is scount's window operator keyed by auction. Its panes, keyed by
// window end, go to a process function that keeps per window the running
// maximum and the auctions at it (in a map state indexed 0..N-1, so a tie
// costs one write, not a rewrite of a list) and fires an event-time timer
// at End-1. The window operator emits every pane of a window before it
// forwards the watermark that fired them, and the downstream watermark is
// the minimum over the upstream subtasks, so the timer fires once all of the
// window's counts are in.
func init() {
	queries["q5"] = func(events sdk.Stream[nexmark.Event], out sinkConfig) {
		panes := countWindows(events, func(b *nexmark.Bid) int64 { return b.Auction }, sdk.Sliding(q5Size, q5Slide))
		counts := sdk.Map(panes, func(p sdk.Pane[int64, cnt]) winCount {
			return winCount{Key: p.Key, Count: p.Value.N, End: p.End, Emit: p.Value.Emit}
		}, sdk.WithName("WindowCount"), sdk.WithUID("window-count"))
		byWindow := sdk.KeyBy(counts, func(c winCount) int64 { return c.End })
		hot := sdk.KeyedProcessTimers(byWindow, openQ5Max, sdk.WithName("HotItems"), sdk.WithUID("hot-items"))
		checksumSink(hot, out)
	}
}

func openQ5Max(s *sdk.StateStore, t sdk.Timers) (sdk.ProcessFuncs[int64, winCount, nexmark.KeyCount], error) {
	top := sdk.NewValueState[q5Top](s, "top")
	ids := sdk.NewMapState[int64, int64](s, "at-max")
	size := q5Size.Milliseconds()
	return sdk.ProcessFuncs[int64, winCount, nexmark.KeyCount]{
		Record: func(end int64, c winCount, _ func(nexmark.KeyCount)) error {
			tp, ok, err := top.Get()
			if err != nil {
				return err
			}
			if !ok {
				if err := t.At(end - 1); err != nil {
					return err
				}
			}
			tp.Emit = max(tp.Emit, c.Emit)
			if c.Count > tp.Max {
				tp.Max, tp.N = c.Count, 0
			}
			if c.Count == tp.Max {
				if err := ids.Put(tp.N, c.Key); err != nil {
					return err
				}
				tp.N++
				tp.Used = max(tp.Used, tp.N)
			}
			return top.Set(tp)
		},
		Timer: func(end, _ int64, _ sdk.TimeDomain, emit func(nexmark.KeyCount)) error {
			tp, ok, err := top.Get()
			if err != nil || !ok {
				return err
			}
			for i := range tp.N {
				a, ok, err := ids.Get(i)
				if err != nil {
					return err
				}
				if ok {
					emit(nexmark.KeyCount{Key: a, Count: tp.Max, Start: end - size, End: end, Emit: tp.Emit})
				}
			}
			for i := range tp.Used {
				if err := ids.Delete(i); err != nil {
					return err
				}
			}
			return top.Clear()
		},
	}, nil
}
