package sdk

import "context"

// RunLocal runs p as Main's local mode does. It is for the external tests
// (package sdk_test), which can import connectors; sdk's own tests cannot,
// connectors importing sdk.
func RunLocal(ctx context.Context, p *Pipeline) error { return runPipeline(ctx, p) }
