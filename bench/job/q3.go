package main

import (
	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// q3Person is a person from OR, ID or CA, as q3 needs it.
type q3Person struct {
	ID                int64
	Name, City, State string
	Emit              int64
}

// q3Auction is an auction of category 10, as q3 needs it.
type q3Auction struct {
	ID, Seller, Emit int64
}

// q3 is an incremental join of the selected persons (keyed by ID) with the
// selected auctions (keyed by Seller) in one KeyedCoProcess: the person is
// kept in keyed state for good, an auction arriving before its seller waits
// until the person comes. Each match is emitted by whichever side
// arrives second, with that event's Emit.
func init() {
	queries["q3"] = func(events sdk.Stream[nexmark.Event], out sinkConfig) {
		ps := sdk.FlatMap(events, func(e nexmark.Event, emit func(q3Person)) {
			if e.Kind != nexmark.KindPerson {
				return
			}
			switch p := e.Person; p.State {
			case "OR", "ID", "CA":
				emit(q3Person{ID: p.ID, Name: p.Name, City: p.City, State: p.State, Emit: e.Emit})
			}
		}, sdk.WithName("Q3Persons"), sdk.WithUID("q3-persons"))
		as := sdk.FlatMap(events, func(e nexmark.Event, emit func(q3Auction)) {
			if e.Kind == nexmark.KindAuction && e.Auction.Category == 10 {
				emit(q3Auction{ID: e.Auction.ID, Seller: e.Auction.Seller, Emit: e.Emit})
			}
		}, sdk.WithName("Q3Auctions"), sdk.WithUID("q3-auctions"))
		joined := sdk.KeyedCoProcess(sdk.Connect(
			sdk.KeyBy(ps, func(p q3Person) int64 { return p.ID }),
			sdk.KeyBy(as, func(a q3Auction) int64 { return a.Seller })),
			func(s *sdk.StateStore, _ sdk.Timers) (sdk.CoProcessFuncs[int64, q3Person, q3Auction, nexmark.Q3Out], error) {
				person := sdk.NewValueState[q3Person](s, "person")
				// The auctions waiting for their seller, as a slice in
				// one value: an append updates one heap cell (a
				// ListState's Add updates two, the element and the
				// list's range).
				waiting := sdk.NewValueState[[]int64](s, "waiting-auctions")
				return sdk.CoProcessFuncs[int64, q3Person, q3Auction, nexmark.Q3Out]{
					First: func(_ int64, p q3Person, emit func(nexmark.Q3Out)) error {
						if err := person.Set(p); err != nil {
							return err
						}
						ids, _, err := waiting.Get()
						if err != nil || len(ids) == 0 {
							return err
						}
						for _, id := range ids {
							emit(nexmark.Q3Out{Name: p.Name, City: p.City, State: p.State, Auction: id, Emit: p.Emit})
						}
						return waiting.Clear()
					},
					Second: func(_ int64, a q3Auction, emit func(nexmark.Q3Out)) error {
						p, ok, err := person.Get()
						if err != nil {
							return err
						}
						if !ok {
							ids, _, err := waiting.Get()
							if err != nil {
								return err
							}
							return waiting.Set(append(ids, a.ID))
						}
						emit(nexmark.Q3Out{Name: p.Name, City: p.City, State: p.State, Auction: a.ID, Emit: a.Emit})
						return nil
					},
				}, nil
			}, sdk.WithName("Q3Join"), sdk.WithUID("q3-join"))
		checksumSink(joined, out)
	}
}
