package baseline

import (
	"slices"

	"github.com/weir-run/weir/bench/nexmark"
)

// Query runs one query over events 0..n-1 of g and returns its output's
// checksum.
type Query func(g *nexmark.Generator, n int64) nexmark.Checksum

// Queries holds every baseline by query name; the q*.go files fill it.
var Queries = map[string]Query{}

// Names lists the queries in order.
func Names() []string {
	names := make([]string, 0, len(Queries))
	for n := range Queries {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
