package sdk_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
	"github.com/weir-run/weir/sdk"
	"github.com/weir-run/weir/sdk/connector/file"
)

// countSource emits prefix-0, prefix-1, ... one record per poll, its
// position checkpointed. With limit > 0 it is bounded: it emits its last
// record in the same poll that says Done, so that record can only be
// committed by a checkpoint taken after the end of its input. stopAfter,
// when above 0 at open, bounds it to that many records past its restored
// position. polls counts its polls, across attempts.
type countSource struct {
	prefix      string
	pos, limit  int
	polls       *atomic.Int64
	reachedStop *atomic.Int64
}

func (s *countSource) Poll(emit func(string)) (sdk.Poll, error) {
	s.polls.Add(1)
	if s.limit > 0 && s.pos >= s.limit {
		return sdk.Poll{Done: true}, nil
	}
	emit(fmt.Sprintf("%s-%d", s.prefix, s.pos))
	s.pos++
	if s.limit > 0 && s.pos == s.limit {
		if s.reachedStop != nil {
			s.reachedStop.Store(int64(s.pos))
		}
		return sdk.Poll{Done: true}, nil
	}
	if s.reachedStop == nil {
		return sdk.Poll{}, nil // the bounded one: all at once
	}
	return sdk.Poll{Wait: time.Millisecond}, nil
}

func (s *countSource) SnapshotSplits() ([][]byte, error) {
	return [][]byte{binary.AppendUvarint(nil, uint64(s.pos))}, nil
}

func (s *countSource) Close() error { return nil }

func countSourceOf(p *sdk.Pipeline, uid string, open func(restored int) *countSource) sdk.Stream[string] {
	return sdk.NewSource(p, uid, func(ti sdk.TaskInfo) (sdk.SourceReader[string], error) {
		pos := 0
		if its, ok := ti.Restored(); ok && len(its) > 0 {
			v, n := binary.Uvarint(its[0])
			if n <= 0 {
				return nil, errors.New("corrupt position")
			}
			pos = int(v)
		}
		s := open(pos)
		s.pos = pos
		return s, nil
	}, sdk.WithParallelism(1), sdk.WithUID(uid))
}

// FLIP-147 end to end: a bounded and an unbounded source feed an
// exactly-once file sink. Checkpoints keep completing after the bounded
// source finished; its last record is committed by its final checkpoint;
// a kill and restore after that point neither reads the bounded input
// again nor loses anything; and once the unbounded source ends too, the
// job finishes with every record committed exactly once.
func TestFinalCheckpointWithBoundedAndUnboundedSources(t *testing.T) {
	const bounded = 50
	out := t.TempDir()
	var boundedPolls, unboundedPolls, stopAfter, unboundedEnd atomic.Int64
	c := sdk.NewCkCluster(t.TempDir(), 20*time.Millisecond, func(p *sdk.Pipeline) {
		b := countSourceOf(p, "bounded", func(int) *countSource {
			return &countSource{prefix: "b", limit: bounded, polls: &boundedPolls}
		})
		u := countSourceOf(p, "unbounded", func(restored int) *countSource {
			s := &countSource{prefix: "u", polls: &unboundedPolls, reachedStop: &unboundedEnd}
			if n := stopAfter.Load(); n > 0 {
				s.limit = restored + int(n)
			}
			return s
		})
		file.Sink(sdk.Union(b, u), out, func(s string) string { return s }, sdk.WithParallelism(1))
	})
	c.Parallelism = 1

	// Each checkpoint's snapshot of the bounded source: taken by the source
	// itself (finished or not) or, once it exited, recorded finished for it.
	type seen struct {
		id                 int64
		finished, recorded bool // recorded: no state of its own
		all                bool // every subtask finished
	}
	var cps []seen
	var killAfter int64
	c.Completed = func(m *weirv1.CheckpointManifest) bool {
		s := seen{id: m.CheckpointId, all: true}
		for _, st := range m.Subtasks {
			s.all = s.all && st.Finished
			if len(st.Uids) > 0 && st.Uids[0] == "bounded" {
				s.finished, s.recorded = st.Finished, st.Finished && len(st.Operators) == 0
			}
		}
		cps = append(cps, s)
		// Kill three checkpoints after the bounded source's own last one.
		if s.recorded && killAfter == 0 {
			killAfter = s.id + 2
		}
		return killAfter != 0 && s.id >= killAfter && stopAfter.Load() == 0
	}

	finished, err := c.RunAttempt(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if finished {
		t.Fatal("the first attempt ended by itself: its unbounded source cannot end")
	}
	final := int64(0) // the bounded source's final checkpoint
	for i, s := range cps {
		if i > 0 && s.id <= cps[i-1].id {
			t.Fatalf("checkpoint ids do not advance: %v", cps)
		}
		if s.finished && final == 0 {
			final = s.id
			if s.recorded {
				t.Fatalf("checkpoint %d: the bounded source exited before it took a final checkpoint", s.id)
			}
		}
	}
	last := cps[len(cps)-1]
	if final == 0 || !last.recorded || last.id < final+3 {
		t.Fatalf("checkpoints %+v: want a final one for the bounded source, then at least three without it", cps)
	}
	names, lines := readOutput(t, out)
	// Its last record, emitted with Done, is in the file of its final
	// checkpoint, committed when that checkpoint completed.
	holder := ""
	for _, n := range names {
		if b, err := readFile(filepath.Join(out, n)); err == nil && slices.Contains(b, fmt.Sprintf("b-%d", bounded-1)) {
			holder = n
		}
	}
	if want := fmt.Sprintf("part-00000-%d", final); holder != want {
		t.Fatalf("the bounded source's last record is in %q, want %q (its final checkpoint's file); files %v", holder, want, names)
	}
	if got := count(lines, "b-"); got != bounded {
		t.Fatalf("after the first attempt %d records of the bounded source are visible, want %d", got, bounded)
	}
	t.Logf("attempt 1: final checkpoint %d of the bounded source, %d checkpoints after it, killed after %d",
		final, last.id-final, last.id)

	// The restore finds the bounded source finished: it is not polled, and
	// the unbounded one now stops after 25 more records, ending the job.
	boundedPolls.Store(0)
	stopAfter.Store(25)
	cps = nil
	finished, err = c.RunAttempt(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !finished {
		t.Fatal("the second attempt did not finish")
	}
	if n := boundedPolls.Load(); n != 0 {
		t.Fatalf("the bounded source, restored finished, was polled %d times", n)
	}
	if len(cps) == 0 || !cps[len(cps)-1].all {
		t.Fatalf("checkpoints of the second attempt %+v: want the last to have every subtask finished", cps)
	}
	names, lines = readOutput(t, out)
	var want []string
	for i := range bounded {
		want = append(want, fmt.Sprintf("b-%d", i))
	}
	for i := range int(unboundedEnd.Load()) {
		want = append(want, fmt.Sprintf("u-%d", i))
	}
	slices.Sort(want)
	slices.Sort(lines)
	if !slices.Equal(lines, want) {
		t.Fatalf("output has %d lines, want %d (each record once): files %v", len(lines), len(want), names)
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".") || strings.HasSuffix(n, "-end") {
			t.Fatalf("file %s left: every file is committed by a checkpoint when the job checkpoints", n)
		}
	}
	t.Logf("attempt 2: %d records, %d checkpoints, the last %d", len(lines), len(cps), cps[len(cps)-1].id)
}

func count(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func readFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	return wantLines(string(b)), err
}
