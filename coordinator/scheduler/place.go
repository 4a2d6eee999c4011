package scheduler

import (
	"errors"
	"fmt"
)

// ErrNotEnoughSlots is wrapped by Place when the workers' free slots cannot
// host the job. The job lifecycle treats it as "wait and retry", not as a
// failure of the job's code.
var ErrNotEnoughSlots = errors.New("scheduler: not enough free slots")

// Worker is a worker's offer as placement sees it.
type Worker struct {
	ID string
	// Free is how many slots the worker can give this job; negative counts
	// as zero.
	Free int
}

// Place returns, for each slot index 0..need-1, the ID of the worker that
// hosts it. Each slot goes to the worker with the most free slots left, ties
// broken by the smaller ID (then by position in workers), which spreads a job
// evenly: more workers share the load, and losing one worker loses fewer
// subtasks (the idea behind Flink's cluster.evenly-spread-out-slots).
//
// need <= 0 yields an empty placement. When the free slots add up to less
// than need, Place returns an error wrapping ErrNotEnoughSlots that says how
// many slots were needed and found. workers is not modified; the returned
// slice is the caller's.
func Place(need int, workers []Worker) ([]string, error) {
	free := make([]int, len(workers))
	total := 0
	for i, w := range workers {
		free[i] = max(w.Free, 0)
		total += free[i]
	}
	if total < need {
		return nil, fmt.Errorf("%w: job needs %d slots, %d free on %d worker(s)",
			ErrNotEnoughSlots, need, total, len(workers))
	}
	out := make([]string, 0, max(need, 0))
	for range need {
		best := -1
		for i, w := range workers {
			if free[i] == 0 {
				continue
			}
			if best < 0 || free[i] > free[best] || (free[i] == free[best] && w.ID < workers[best].ID) {
				best = i
			}
		}
		out = append(out, workers[best].ID)
		free[best]--
	}
	return out, nil
}
