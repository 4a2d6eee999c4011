package sdk

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// killingSource replays items one per poll, at parallelism 1, with
// checkpoints and kills at fixed positions, so a test kills its job
// mid-stream however slow the machine is: every checkpointEvery items it
// asks for a checkpoint; at each position of killAt beyond where it started
// it asks for a checkpoint and the kill after it, and emits nothing more
// until killed. Its position is its checkpointed split; ts, when set, gives
// the items' event times, and its watermark is just below the last one's.
type killingSource[T any] struct {
	items           []T
	ts              func(T) int64
	req             chan<- runtime.CheckpointRequest
	killAt          []int
	checkpointEvery int
	pos, start      int
	blocked         bool
}

func (s *killingSource[T]) Poll(emit func(T)) (Poll, error) {
	if s.blocked {
		return Poll{Wait: time.Millisecond}, nil
	}
	if s.pos == len(s.items) {
		return Poll{Done: true}, nil
	}
	for _, k := range s.killAt {
		if k == s.pos && k > s.start {
			s.blocked = true
			s.req <- runtime.CheckpointRequest{Kill: true}
			return Poll{Wait: time.Millisecond}, nil
		}
	}
	emit(s.items[s.pos])
	s.pos++
	if s.checkpointEvery > 0 && s.pos%s.checkpointEvery == 0 {
		select {
		case s.req <- runtime.CheckpointRequest{}:
		default: // enough asked already
		}
	}
	return Poll{}, nil
}

func (s *killingSource[T]) Watermark() (int64, bool) {
	if s.ts == nil || s.pos == 0 {
		return math.MinInt64, false
	}
	return s.ts(s.items[s.pos-1]) - 1, false
}

func (s *killingSource[T]) SnapshotSplits() ([][]byte, error) {
	return [][]byte{binary.AppendUvarint(nil, uint64(s.pos))}, nil
}

func (s *killingSource[T]) Close() error { return nil }

// killingSourceOf adds a killingSource of items (uid "src") to p.
func killingSourceOf[T any](p *Pipeline, items []T, ts func(T) int64, req chan<- runtime.CheckpointRequest, killAt []int) Stream[T] {
	return NewSource(p, "Killing", func(ti TaskInfo) (SourceReader[T], error) {
		s := &killingSource[T]{items: items, ts: ts, req: req, killAt: killAt, checkpointEvery: max(len(items)/20, 1)}
		if its, ok := ti.Restored(); ok && len(its) > 0 {
			pos, n := binary.Uvarint(its[0])
			if n <= 0 || pos > uint64(len(items)) {
				return nil, errors.New("corrupt killing source position")
			}
			s.pos, s.start = int(pos), int(pos)
		}
		return s, nil
	}, WithParallelism(1), WithUID("src"))
}

// runKilled runs the job build makes (its killingSource asking req) in an
// in-process cluster until an attempt ends, and returns how many attempts
// were killed.
func runKilled(t *testing.T, req chan runtime.CheckpointRequest, build func(p *Pipeline)) int {
	t.Helper()
	c := newCkCluster(t.TempDir(), 2*time.Millisecond, build)
	c.Requests = req
	for killed := 0; ; killed++ {
		if killed > 10 {
			t.Fatal("the job was killed more than 10 times")
		}
		finished, err := c.RunAttempt(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if finished {
			return killed
		}
		for len(req) > 0 {
			<-req // asked by the killed attempt
		}
	}
}
