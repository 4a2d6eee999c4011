package baseline

import "github.com/weir-run/weir/bench/nexmark"

func init() { Queries["q0"] = q0 }

func q0(g *nexmark.Generator, n int64) nexmark.Checksum {
	var c nexmark.Checksum
	var buf []byte
	for i := range n {
		buf = nexmark.Add(&c, buf, g.Event(i))
	}
	return c
}
