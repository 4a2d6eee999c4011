package baseline

import "github.com/weir-run/weir/bench/nexmark"

func init() { Queries["q11"] = q11 }

// q11 (user sessions): bids per bidder per session, gap 10 s; bids whose
// intervals [ts, ts+10s) overlap are in one session.
//
// The bids come in event-time order, so a bidder's session is over once a
// bid comes the gap or more after its last one. Every bid appends
// (bidder, ts) to a queue in time order; the queue's head is closed (when
// it is still its bidder's last bid) as time passes it by more than the
// gap, so open sessions are all that is kept.
func q11(g *nexmark.Generator, n int64) nexmark.Checksum {
	type session struct{ start, last, count int64 }
	type mark struct{ bidder, ts int64 }
	var c nexmark.Checksum
	var buf []byte
	open := map[int64]*session{}
	var queue []mark
	head := 0
	closeSession := func(bidder int64, s *session) {
		buf = nexmark.Add(&c, buf, nexmark.KeyCount{Key: bidder, Count: s.count, Start: s.start, End: s.last + sessionGap})
		delete(open, bidder)
	}
	for i := range n {
		e := g.Event(i)
		if e.Kind != nexmark.KindBid {
			continue
		}
		ts, bidder := e.Bid.DateTime, e.Bid.Bidder
		for head < len(queue) && queue[head].ts+sessionGap <= ts {
			m := queue[head]
			head++
			if s := open[m.bidder]; s != nil && s.last == m.ts {
				closeSession(m.bidder, s)
			}
		}
		if head > 1024 && head*2 > len(queue) {
			queue = append(queue[:0], queue[head:]...)
			head = 0
		}
		s := open[bidder]
		switch {
		case s == nil:
			open[bidder] = &session{start: ts, last: ts, count: 1}
		case ts < s.last:
			outOfOrder()
		default: // ts < s.last + gap, else the queue closed it
			s.last, s.count = ts, s.count+1
		}
		queue = append(queue, mark{bidder, ts})
	}
	for bidder, s := range open {
		closeSession(bidder, s)
	}
	return c
}
