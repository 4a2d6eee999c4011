package main

import (
	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// The queries read one or two kinds of event. The filters chain into the
// source's subtask, so they cost a branch per event, not an exchange.

func bids(events sdk.Stream[nexmark.Event]) sdk.Stream[nexmark.Event] {
	return sdk.Filter(events, func(e nexmark.Event) bool { return e.Kind == nexmark.KindBid }, sdk.WithName("Bids"), sdk.WithUID("bids"))
}

func persons(events sdk.Stream[nexmark.Event]) sdk.Stream[nexmark.Event] {
	return sdk.Filter(events, func(e nexmark.Event) bool { return e.Kind == nexmark.KindPerson }, sdk.WithName("Persons"), sdk.WithUID("persons"))
}

func auctions(events sdk.Stream[nexmark.Event]) sdk.Stream[nexmark.Event] {
	return sdk.Filter(events, func(e nexmark.Event) bool { return e.Kind == nexmark.KindAuction }, sdk.WithName("Auctions"), sdk.WithUID("auctions"))
}
