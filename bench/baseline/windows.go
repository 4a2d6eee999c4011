package baseline

import "github.com/weir-run/weir/bench/nexmark"

// Window sizes of the windowed queries (QUERIES.md), in ms.
const (
	windowSize  = 10_000
	windowSlide = 2_000
	sessionGap  = 10_000
)

// floorTo rounds ts down to a multiple of step, also below zero.
func floorTo(ts, step int64) int64 {
	r := ts % step
	if r < 0 {
		r += step
	}
	return ts - r
}

func outOfOrder() { panic("baseline: bids out of event-time order") }

// slidingCounts counts the bids of events 0..n-1 per key and window of size
// and slide (size a multiple of slide) and calls emit for every window with
// at least one bid, in order of End, with the counts per key (valid only
// during the call).
//
// The bids come in event-time order, so it keeps only the counts of the
// open window: a running sum of its panes' counts, to which each bid adds
// one, and from which the oldest pane's counts are subtracted as the window
// slides past it. A bid costs two map updates, whatever size/slide is.
func slidingCounts(g *nexmark.Generator, n int64, key func(*nexmark.Bid) int64, size, slide int64,
	emit func(start, end int64, counts map[int64]int64)) {
	k := size / slide
	panes := make([]map[int64]int64, k)
	for i := range panes {
		panes[i] = map[int64]int64{}
	}
	paneOf := func(start int64) map[int64]int64 {
		i := (start / slide) % k
		if i < 0 {
			i += k
		}
		return panes[i]
	}
	win := map[int64]int64{} // the counts of the window ending at next
	var next int64
	active := false // win is not empty
	closeUpTo := func(ts int64) {
		for active && ts >= next {
			emit(next-size, next, win)
			p := paneOf(next - size)
			if k == 1 {
				clear(win)
			} else {
				for key, c := range p {
					if c == win[key] {
						delete(win, key)
					} else {
						win[key] -= c
					}
				}
			}
			clear(p)
			next += slide
			active = len(win) > 0
		}
	}
	for i := range n {
		e := g.Event(i)
		if e.Kind != nexmark.KindBid {
			continue
		}
		ts := e.Bid.DateTime
		closeUpTo(ts)
		ps := floorTo(ts, slide)
		switch {
		case !active:
			active, next = true, ps+slide
		case ps < next-slide:
			outOfOrder()
		}
		kk := key(e.Bid)
		win[kk]++
		if k > 1 {
			paneOf(ps)[kk]++
		}
	}
	closeUpTo(1<<63 - 1)
}

func auctionOf(b *nexmark.Bid) int64 { return b.Auction }
