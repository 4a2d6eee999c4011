package main

import (
	"context"

	"github.com/weir-run/weir/sdk"
)

// Example runs the job in this process: each window's panes in the order
// they were emitted, retractions before the panes that replace them.
func Example() {
	p := sdk.NewPipeline("windowdemo", 1)
	if err := build(p, nil); err != nil {
		panic(err)
	}
	if err := sdk.RunLocal(context.Background(), p); err != nil {
		panic(err)
	}
	// Output:
	// b7 [0s,10s) pane    EARLY    #0 count=2
	// b7 [0s,10s) retract EARLY    #0 count=2
	// b7 [0s,10s) pane    ON_TIME  #1 count=3
	// b7 [0s,10s) retract ON_TIME  #1 count=3
	// b7 [0s,10s) pane    LATE     #2 count=4
	// b7 [10s,20s) pane    EARLY    #0 count=2
	// b7 [10s,20s) retract EARLY    #0 count=2
	// b7 [10s,20s) pane    ON_TIME  #1 count=2
	// b7 [20s,30s) pane    EARLY    #0 count=2
	// b7 [20s,30s) retract EARLY    #0 count=2
	// b7 [20s,30s) pane    ON_TIME  #1 count=2
	// b7 dropped: reading at 5s
}
