package runtime

import (
	"testing"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// A subtask restores finished when its whole vertex was finished (at any
// parallelism) or its own old subtask was, at the same parallelism; a
// partly finished vertex restored rescaled runs (its live splits are dealt).
func TestRestoreFinished(t *testing.T) {
	snap := func(subtask, parallelism int32, finished bool) *weirv1.SubtaskSnapshot {
		return &weirv1.SubtaskSnapshot{Subtask: subtask, Parallelism: parallelism, Uids: []string{"src"}, Finished: finished}
	}
	for _, tc := range []struct {
		name string
		olds []*weirv1.SubtaskSnapshot
		i, p int
		want bool
	}{
		{"fresh", nil, 0, 2, false},
		{"fully finished, same parallelism", []*weirv1.SubtaskSnapshot{snap(0, 2, true), snap(1, 2, true)}, 1, 2, true},
		{"fully finished, rescaled", []*weirv1.SubtaskSnapshot{snap(0, 2, true), snap(1, 2, true)}, 2, 3, true},
		{"own finished", []*weirv1.SubtaskSnapshot{snap(0, 2, true), snap(1, 2, false)}, 0, 2, true},
		{"another finished", []*weirv1.SubtaskSnapshot{snap(0, 2, true), snap(1, 2, false)}, 1, 2, false},
		{"partly finished, rescaled", []*weirv1.SubtaskSnapshot{snap(0, 2, true), snap(1, 2, false)}, 0, 3, false},
	} {
		m := &weirv1.CheckpointManifest{CheckpointId: 7, Subtasks: tc.olds}
		r, err := Restore(m, "src", tc.i, tc.p, 128)
		if err != nil {
			t.Fatal(err)
		}
		if r.finished != tc.want {
			t.Errorf("%s: subtask %d of %d restores finished=%v, want %v", tc.name, tc.i, tc.p, r.finished, tc.want)
		}
	}
}
