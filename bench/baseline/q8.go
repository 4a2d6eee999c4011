package baseline

import "github.com/weir-run/weir/bench/nexmark"

func init() { Queries["q8"] = q8 }

const q8Window = 10_000 // ms

type q8Key struct{ id, start int64 }

// q8Seen is what a person ID has seen in a window.
type q8Seen struct {
	name            string
	person, auction bool
}

// q8: per tumbling 10 s window, every person whose person event and at
// least one of whose auctions are in the window, once. The events come in
// event-time order, so a window's state is dropped once an event is past
// its end.
func q8(g *nexmark.Generator, n int64) nexmark.Checksum {
	var c nexmark.Checksum
	var buf []byte
	seen := map[q8Key]q8Seen{}
	latest := int64(-1 << 63) // the newest window start seen
	for i := range n {
		e := g.Event(i)
		if e.Kind == nexmark.KindBid {
			continue
		}
		ts := e.Time()
		m := ts % q8Window
		if m < 0 {
			m += q8Window
		}
		start := ts - m
		if start > latest {
			latest = start
			for k := range seen {
				if k.start+q8Window <= ts {
					delete(seen, k)
				}
			}
		}
		var k q8Key
		if e.Kind == nexmark.KindPerson {
			k = q8Key{e.Person.ID, start}
			s := seen[k]
			if s.person {
				continue
			}
			s.person, s.name = true, e.Person.Name
			if s.auction {
				buf = nexmark.Add(&c, buf, nexmark.Q8Out{Person: k.id, Name: s.name, Start: start})
			}
			seen[k] = s
		} else {
			k = q8Key{e.Auction.Seller, start}
			s := seen[k]
			if s.auction {
				continue
			}
			s.auction = true
			if s.person {
				buf = nexmark.Add(&c, buf, nexmark.Q8Out{Person: k.id, Name: s.name, Start: start})
			}
			seen[k] = s
		}
	}
	return c
}
