package runtime

import (
	"math"
	"testing"
)

// A process's keyed subtasks share one hot-state budget, so that its memory
// does not grow with the subtasks it hosts.
func TestStateCacheBudgetIsPerProcess(t *testing.T) {
	for _, tc := range []struct {
		memLimit int64
		keyed    int
		want     int64
	}{
		{math.MaxInt64, 0, 128 << 20},
		{math.MaxInt64, 1, 128 << 20},
		{math.MaxInt64, 4, 32 << 20},
		{math.MaxInt64, 64, 4 << 20}, // the floor
		{2 << 30, 2, 128 << 20},      // an eighth of GOMEMLIMIT, halved
		{256 << 20, 1, 32 << 20},
	} {
		if got := stateCacheShare(processStateCacheBytes(tc.memLimit), tc.keyed); got != tc.want {
			t.Errorf("limit %d, %d keyed subtasks: %d bytes each, want %d", tc.memLimit, tc.keyed, got, tc.want)
		}
	}
}
