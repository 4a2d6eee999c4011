package state_test

import (
	"testing"
	_ "unsafe" // for go:linkname

	"github.com/weir-run/weir/internal/pebblestate"
	"github.com/weir-run/weir/internal/state"
)

// backends is the contract suite's list in state_test.go. pebblestate
// imports state, so only an external test package can import pebblestate;
// the linkname lets it join the one suite instead of copying its cases.
// The type must stay identical to the declaration in state_test.go.
//
//go:linkname backends github.com/weir-run/weir/internal/state.backends
var backends map[string]func(t *testing.T) state.Backend

func init() {
	open := func(cacheBytes int64) func(t *testing.T) state.Backend {
		return func(t *testing.T) state.Backend {
			db, err := pebblestate.Open(pebblestate.Options{Dir: t.TempDir(), CacheBytes: cacheBytes})
			if err != nil {
				t.Fatal(err)
			}
			return db
		}
	}
	backends["pebble"] = open(0)
	backends["pebble-nocache"] = open(-1)
	// A budget of a few entries: every few calls write back and evict.
	backends["pebble-tinycache"] = open(200)
}
