package main

import (
	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/sdk"
)

// q0 passes every event through: the cost of the source, the sink and the
// runtime between them.
func init() {
	queries["q0"] = func(events sdk.Stream[nexmark.Event], out sinkConfig) {
		checksumSink(events, out)
	}
}
