package nexmark

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func encode(e Event) []byte { return EventCodec{}.Append(nil, e) }

// bodySize is the size of an event as the generator's Avg*ByteSize means
// it: the length of its EventCodec encoding without Emit.
func bodySize(e Event) int { return len(appendEventBody(nil, e)) }

func TestDeterministic(t *testing.T) {
	const n = 20_000
	g1, g2 := NewGenerator(DefaultConfig()), NewGenerator(DefaultConfig())
	want := make([][]byte, n)
	for i := range want {
		want[i] = encode(g1.Event(int64(i)))
	}
	// Another generator, in shuffled order.
	for _, i := range rand.New(rand.NewPCG(7, 7)).Perm(n) {
		if got := encode(g2.Event(int64(i))); !bytes.Equal(got, want[i]) {
			t.Fatalf("event %d differs between generators/orders", i)
		}
	}
	// The same generator from 4 goroutines at once (run with -race).
	var wg sync.WaitGroup
	for s := range 4 {
		wg.Go(func() {
			for i := s; i < n; i += 4 {
				if got := encode(g1.Event(int64(i))); !bytes.Equal(got, want[i]) {
					t.Errorf("event %d differs when generated concurrently", i)
					return
				}
			}
		})
	}
	wg.Wait()
	// Other seeds (0 included: it is a seed, not "default") give other events.
	for _, seed := range []uint64{0, 2} {
		cfg := DefaultConfig()
		cfg.Seed = seed
		g := NewGenerator(cfg)
		same := 0
		for i := range n {
			if bytes.Equal(encode(g.Event(int64(i))), want[i]) {
				same++
			}
		}
		if same > n/100 {
			t.Errorf("seed %d: %d of %d events equal to seed 1's", seed, same, n)
		}
	}
	// The zero values of the other fields are the defaults.
	g0 := NewGenerator(Config{Seed: 1})
	for i := range 200 {
		if !bytes.Equal(encode(g0.Event(int64(i))), want[i]) {
			t.Fatalf("Config{Seed: 1} differs from DefaultConfig at event %d", i)
		}
	}
}

// Every block of 50 events is 1 person, 3 auctions, 46 bids in that order;
// ids are consecutive from 1000; every reference is to a person or auction
// generated at or before the referring event; time never goes back.
func TestStructure(t *testing.T) {
	g := NewGenerator(DefaultConfig())
	const n = 500_000
	nextPerson, nextAuction := int64(firstPersonID), int64(firstAuctionID)
	prevTime := int64(0)
	var counts [3]int
	for i := range int64(n) {
		e := g.Event(i)
		if e.Emit != 0 {
			t.Fatalf("event %d has Emit %d", i, e.Emit)
		}
		wantKind := KindBid
		switch r := i % 50; {
		case r == 0:
			wantKind = KindPerson
		case r < 4:
			wantKind = KindAuction
		}
		if e.Kind != wantKind {
			t.Fatalf("event %d is kind %d, want %d", i, e.Kind, wantKind)
		}
		counts[e.Kind]++
		ts := e.Time()
		if ts < prevTime {
			t.Fatalf("event %d at %d, before event %d's %d", i, ts, i-1, prevTime)
		}
		prevTime = ts
		if want := int64(1_436_918_400_000) + i/10; ts != want {
			t.Fatalf("event %d at %d, want %d", i, ts, want)
		}
		switch e.Kind {
		case KindPerson:
			p := e.Person
			if p.ID != nextPerson {
				t.Fatalf("event %d: person %d, want %d", i, p.ID, nextPerson)
			}
			nextPerson++
		case KindAuction:
			a := e.Auction
			if a.ID != nextAuction {
				t.Fatalf("event %d: auction %d, want %d", i, a.ID, nextAuction)
			}
			nextAuction++
			if a.Seller < firstPersonID || a.Seller >= nextPerson {
				t.Fatalf("event %d: seller %d, persons so far %d..%d", i, a.Seller, firstPersonID, nextPerson-1)
			}
			if a.Expires <= a.DateTime {
				t.Fatalf("event %d: auction expires at %d, not after %d", i, a.Expires, a.DateTime)
			}
			if a.Reserve <= a.InitialBid || a.InitialBid < 100 {
				t.Fatalf("event %d: initial bid %d, reserve %d", i, a.InitialBid, a.Reserve)
			}
			if a.Category < 10 || a.Category > 14 {
				t.Fatalf("event %d: category %d", i, a.Category)
			}
		case KindBid:
			x := e.Bid
			if x.Auction < firstAuctionID || x.Auction >= nextAuction {
				t.Fatalf("event %d: bid on auction %d, auctions so far %d..%d", i, x.Auction, firstAuctionID, nextAuction-1)
			}
			if x.Bidder < firstPersonID || x.Bidder >= nextPerson {
				t.Fatalf("event %d: bidder %d, persons so far %d..%d", i, x.Bidder, firstPersonID, nextPerson-1)
			}
			if x.Price < 100 || x.Price > 100_000_000 {
				t.Fatalf("event %d: price %d", i, x.Price)
			}
		}
		if lastPersonID(i) != nextPerson-1 || lastAuctionID(i) != nextAuction-1 {
			t.Fatalf("event %d: lastPersonID %d lastAuctionID %d, want %d %d", i, lastPersonID(i), lastAuctionID(i), nextPerson-1, nextAuction-1)
		}
	}
	if counts != [3]int{n / 50, 3 * n / 50, 46 * n / 50} {
		t.Errorf("persons, auctions, bids = %v", counts)
	}
}

// The event time is BaseTime + floor(i*1000/EventsPerSecond) at any rate;
// auction lengths average the time until NumInFlightAuctions more auctions
// (Beam), here 100 auctions = 1666 events = 166.6 ms.
func TestTimes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EventsPerSecond = 3
	cfg.BaseTime = 5
	g := NewGenerator(cfg)
	for _, tc := range []struct{ i, want int64 }{{0, 5}, {1, 5 + 333}, {2, 5 + 666}, {3, 5 + 1000}, {3001, 5 + 1_000_333}} {
		if got := g.Event(tc.i).Time(); got != tc.want {
			t.Errorf("event %d at %d, want %d", tc.i, got, tc.want)
		}
	}
	g = NewGenerator(DefaultConfig())
	var sum, n, longest int64
	for i := int64(1); i < 1_000_000; i += 50 {
		for k := range int64(3) {
			a := g.Event(i + k).Auction
			d := a.Expires - a.DateTime
			sum += d
			longest = max(longest, d)
			n++
		}
	}
	if avg := float64(sum) / float64(n); avg < 150 || avg > 185 || longest > 334 {
		t.Errorf("auction lengths average %.1f ms, longest %d; want about 166, at most 334", avg, longest)
	}
}

func TestSizesAndDistributions(t *testing.T) {
	g := NewGenerator(DefaultConfig())
	const n = 1_000_000
	var size, count [3]int
	hot, bids := 0, 0
	states := map[string]int{}
	categories := map[int64]int{}
	channels := map[string]int{}
	hotSeller, hotBidder := 0, 0
	for i := range int64(n) {
		e := g.Event(i)
		size[e.Kind] += bodySize(e)
		count[e.Kind]++
		switch e.Kind {
		case KindPerson:
			p := e.Person
			states[p.State]++
			if !strings.Contains(p.EmailAddress, "@") || !strings.HasSuffix(p.EmailAddress, ".com") || len(p.CreditCard) != 19 || !strings.Contains(p.Name, " ") || p.City == "" {
				t.Fatalf("person %+v", p)
			}
		case KindAuction:
			a := e.Auction
			categories[a.Category]++
			if a.Seller == (lastPersonID(i)-firstPersonID)/100*100+firstPersonID {
				hotSeller++
			}
			// Beam's nextString trims its spaces, so a name may even be empty.
			if strings.TrimSpace(a.ItemName) != a.ItemName || strings.TrimSpace(a.Description) != a.Description || len(a.ItemName) > 19 || len(a.Description) > 99 {
				t.Fatalf("auction %+v", a)
			}
		case KindBid:
			x := e.Bid
			bids++
			// The hot auction is the first of the last batch of 100.
			if x.Auction == (lastAuctionID(i)-firstAuctionID)/100*100+firstAuctionID {
				hot++
			}
			if (x.Bidder-firstPersonID)%100 == 1 && x.Bidder > lastPersonID(i)-101 {
				hotBidder++
			}
			channels[x.Channel]++
			if !strings.HasPrefix(x.URL, "https://www.nexmark.com/") || !strings.Contains(x.URL, "/item.htm?query=1") {
				t.Fatalf("bid url %q", x.URL)
			}
		}
	}
	for k, want := range []int{200, 500, 100} {
		avg := float64(size[k]) / float64(count[k])
		if avg < 0.85*float64(want) || avg > 1.15*float64(want) {
			t.Errorf("kind %d: average encoded body %.1f bytes, want %d ±15%%", k, avg, want)
		}
	}
	// Beam: P(hot auction) = 1 - 1/HotAuctionRatio = 1/2, plus the cold
	// bids that happen to pick it (about 1 in 101).
	if f := float64(hot) / float64(bids); f < 0.48 || f > 0.53 {
		t.Errorf("%.3f of the bids on the hot auction, want about 0.505", f)
	}
	if f := float64(hotSeller) / float64(count[KindAuction]); f < 0.73 || f > 0.79 {
		t.Errorf("%.3f of the auctions by the hot seller, want about 0.75", f)
	}
	if f := float64(hotBidder) / float64(bids); f < 0.73 || f > 0.79 {
		t.Errorf("%.3f of the bids by the hot bidder, want about 0.75", f)
	}
	// q3's filters must select something: persons in OR, ID, CA, auctions
	// of category 10.
	for _, s := range []string{"OR", "ID", "CA"} {
		if f := float64(states[s]) / float64(count[KindPerson]); f < 0.12 || f > 0.21 {
			t.Errorf("%.3f of the persons in %s, want about 1/6", f, s)
		}
	}
	if len(states) != 6 {
		t.Errorf("states %v", states)
	}
	for c := int64(10); c < 15; c++ {
		if f := float64(categories[c]) / float64(count[KindAuction]); f < 0.18 || f > 0.22 {
			t.Errorf("%.3f of the auctions in category %d, want 0.2", f, c)
		}
	}
	// Flink: half the bids from the 4 hot channels.
	for _, c := range hotChannels {
		if f := float64(channels[c]) / float64(bids); f < 0.115 || f > 0.135 {
			t.Errorf("%.3f of the bids from channel %s, want 0.125", f, c)
		}
	}
	if len(channels) < 5000 {
		t.Errorf("%d distinct channels", len(channels))
	}
}

// A Config with other sizes and ratios is obeyed, including an Extra longer
// than the shared pad allows.
func TestConfigOverrides(t *testing.T) {
	cfg := Config{Seed: 3, AvgBidByteSize: 20_000, HotAuctionRatio: 1, NumInFlightAuctions: 10}
	g := NewGenerator(cfg)
	total, bids, hot := 0, 0, 0
	for i := int64(0); i < 20_000; i++ {
		e := g.Event(i)
		if e.Kind != KindBid {
			continue
		}
		bids++
		total += bodySize(e)
		if e.Bid.Auction < lastAuctionID(i)-10 {
			t.Fatalf("event %d: bid on auction %d, not in flight (last %d)", i, e.Bid.Auction, lastAuctionID(i))
		}
		if e.Bid.Auction == (lastAuctionID(i)-firstAuctionID)/100*100+firstAuctionID {
			hot++
		}
	}
	if avg := total / bids; avg < 17_000 || avg > 23_000 {
		t.Errorf("average bid %d bytes, want 20000", avg)
	}
	if f := float64(hot) / float64(bids); f > 0.2 {
		t.Errorf("HotAuctionRatio 1: %.2f of the bids still on the hot auction", f)
	}
}

func TestPow10(t *testing.T) {
	r := rng{s: 9}
	for range 100_000 {
		x := r.float64() * 6
		want := math.Pow(10, x)
		if got := pow10(x); got/want-1 > 1e-12 || want/got-1 > 1e-12 {
			t.Fatalf("pow10(%v) = %v, want %v", x, got, want)
		}
	}
}
