package sdk

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The runtime starts goroutines per subtask and per remote channel; every
// test must leave none behind.
// TestMain checks that no goroutine is left behind. The Kafka test broker's
// per-connection goroutines (union_kafka_test.go) are not the job's: they
// end a moment after the broker closes a connection, as in the kafka
// connector's tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*clientConn).read"),
		goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*clientConn).write"))
}

// testLogger discards: the runtime logs nothing a test asserts on.
func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// bag collects what a sink receives, from every subtask, in arrival order.
type bag[T any] struct {
	mu struct {
		sync.Mutex
		items    []T
		subtasks []int // subtask that wrote items[i]
		finished int   // sink writers that got Finish
		closed   int   // sink writers that got Close
	}
}

// sinkTo adds a sink writing into b. The sink's name is "Collect" unless
// opts say otherwise.
func (b *bag[T]) sinkTo(s Stream[T], opts ...Option) {
	NewSink(s, "Collect", func(t TaskInfo) (SinkWriter[T], error) {
		return &bagWriter[T]{b: b, subtask: t.Subtask()}, nil
	}, opts...)
}

func (b *bag[T]) items() []T {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.mu.items)
}

// bySubtask groups the items by the sink subtask that wrote them.
func (b *bag[T]) bySubtask() map[int][]T {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[int][]T)
	for i, v := range b.mu.items {
		m[b.mu.subtasks[i]] = append(m[b.mu.subtasks[i]], v)
	}
	return m
}

func (b *bag[T]) counts() (finished, closed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.finished, b.mu.closed
}

type bagWriter[T any] struct {
	b       *bag[T]
	subtask int
}

func (w *bagWriter[T]) Write(v T) error {
	w.b.mu.Lock()
	w.b.mu.items = append(w.b.mu.items, v)
	w.b.mu.subtasks = append(w.b.mu.subtasks, w.subtask)
	w.b.mu.Unlock()
	return nil
}

func (w *bagWriter[T]) Finish() error {
	w.b.mu.Lock()
	w.b.mu.finished++
	w.b.mu.Unlock()
	return nil
}

func (w *bagWriter[T]) Close() error {
	w.b.mu.Lock()
	w.b.mu.closed++
	w.b.mu.Unlock()
	return nil
}

// runPipeline plans p and runs it locally, bounded so a hung job fails the
// test instead of the whole binary.
func runPipeline(ctx context.Context, p *Pipeline) error {
	pl, err := p.compile()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return pl.RunLocal(ctx, testLogger(), nil)
}

// mustRun runs p locally and fails the test on error.
func mustRun(t *testing.T, p *Pipeline) {
	t.Helper()
	if err := runPipeline(t.Context(), p); err != nil {
		t.Fatalf("job failed: %v", err)
	}
}

// multiset renders values as a sorted list of their %v forms, so any two
// collections of records compare as multisets.
func multiset[T any](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%v", x)
	}
	slices.Sort(out)
	return out
}

// diffMultisets describes how got differs from want as multisets, or
// returns "" if they are equal.
func diffMultisets[T any](got, want []T) string {
	g, w := multiset(got), multiset(want)
	if slices.Equal(g, w) {
		return ""
	}
	count := make(map[string]int)
	for _, s := range g {
		count[s]++
	}
	for _, s := range w {
		count[s]--
	}
	var extra, missing []string
	for _, s := range slices.Sorted(maps.Keys(count)) {
		switch n := count[s]; {
		case n > 0:
			extra = append(extra, fmt.Sprintf("%s x%d", s, n))
		case n < 0:
			missing = append(missing, fmt.Sprintf("%s x%d", s, -n))
		}
	}
	const show = 10
	return fmt.Sprintf("got %d records, want %d; extra %v; missing %v",
		len(got), len(want), extra[:min(show, len(extra))], missing[:min(show, len(missing))])
}
