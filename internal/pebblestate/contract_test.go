package pebblestate

import (
	"testing"

	"github.com/weir-run/weir/internal/state"
	"github.com/weir-run/weir/internal/state/statetest"
)

// Pebble passes the one state contract, with the cache on, off, and so
// small that every few calls write back and evict.
func TestContract(t *testing.T) {
	for name, cache := range map[string]int64{"cache": 0, "nocache": -1, "tinycache": 200} {
		t.Run(name, func(t *testing.T) {
			statetest.RunContract(t, func(t *testing.T) state.Backend {
				db, err := Open(Options{Dir: t.TempDir(), CacheBytes: cache})
				if err != nil {
					t.Fatal(err)
				}
				return db
			})
		})
	}
}
