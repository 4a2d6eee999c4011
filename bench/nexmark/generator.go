package nexmark

import "math/rand/v2"

// Config is the generator's model. The zero value of a field means its
// default (DefaultConfig).
type Config struct {
	Seed            uint64
	EventsPerSecond float64 // event-time rate: event i is at BaseTime + i/EventsPerSecond
	BaseTime        int64   // unix ms of event 0
}

// DefaultConfig is Beam's and Flink's Nexmark default model.
func DefaultConfig() Config {
	return Config{Seed: 1, EventsPerSecond: 10_000, BaseTime: 1_436_918_400_000}
}

// Generator makes event i as a pure function of (Config, i), so any subset
// of indices can be generated anywhere, in any order, in parallel.
type Generator struct{ cfg Config }

func NewGenerator(cfg Config) *Generator {
	d := DefaultConfig()
	if cfg.EventsPerSecond == 0 {
		cfg.EventsPerSecond = d.EventsPerSecond
	}
	if cfg.BaseTime == 0 {
		cfg.BaseTime = d.BaseTime
	}
	return &Generator{cfg: cfg}
}

// PLACEHOLDER: a minimal model so that the queries can be written against
// the API; being replaced by the port of Beam's generator.
func (g *Generator) Event(i int64) Event {
	r := rand.New(rand.NewPCG(g.cfg.Seed, uint64(i)))
	ts := g.cfg.BaseTime + int64(float64(i)*1000/g.cfg.EventsPerSecond)
	block, rem := i/50, i%50
	switch {
	case rem < 1:
		id := 1000 + block
		return Event{Kind: KindPerson, Person: &Person{ID: id, Name: "p", City: "Boise", State: []string{"OR", "ID", "CA", "WA"}[r.IntN(4)], DateTime: ts}}
	case rem < 4:
		id := 1000 + block*3 + rem - 1
		return Event{Kind: KindAuction, Auction: &Auction{ID: id, Reserve: 100, DateTime: ts, Expires: ts + r.Int64N(20_000), Seller: 1000 + r.Int64N(block+1), Category: 10 + r.Int64N(5)}}
	default:
		last := 1000 + block*3
		return Event{Kind: KindBid, Bid: &Bid{Auction: max(1000, last-r.Int64N(100)), Bidder: 1000 + r.Int64N(block+1), Price: r.Int64N(10_000), DateTime: ts}}
	}
}
