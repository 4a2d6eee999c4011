package sdk

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A restore that reads a keyed state as another type than it was saved
// with (another job's savepoint with the same uids, or a changed type)
// fails for good, naming both types, instead of decoding garbage or
// restarting until the budget is spent. The same types restore.
func TestRestoredStateOfAnotherTypeIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sameType bool
		// ttlClock: the second attempt reads the state with an
		// event-time TTL, the first wrote it with a wall-clock one.
		ttlClock bool
	}{{"another type", false, false}, {"same type", true, false}, {"another TTL clock", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			attempts := 0
			build := func(p *Pipeline) {
				attempts++
				src := Generate(p, 200_000, func(i int64) int64 { return i }, WithRate(100_000), WithUID("src"))
				keyed := KeyBy(src, func(i int64) int64 { return i % 10 })
				open := func(s *StateStore) (func(k, v int64, emit func(int64)) error, error) {
					if attempts == 1 || tc.sameType || tc.ttlClock {
						ttl := WithTTL(time.Hour)
						if tc.ttlClock && attempts > 1 {
							ttl = WithEventTimeTTL(time.Hour)
						}
						sum := NewValueState[int64](s, "sum", ttl)
						return func(_, v int64, emit func(int64)) error {
							n, _, err := sum.Get()
							if err == nil {
								err = sum.Set(n + v)
							}
							return err
						}, nil
					}
					last := NewValueState[string](s, "sum")
					return func(_, v int64, emit func(int64)) error { return last.Set("x") }, nil
				}
				var out bag[int64]
				out.sinkTo(KeyedProcess(keyed, open, WithUID("proc")))
			}
			c := newCkCluster(t.TempDir(), 50*time.Millisecond, build)
			finished, err := c.RunAttempt(context.Background(), 2)
			if finished || err != nil {
				t.Fatalf("first attempt: finished %v, err %v; want it killed after 2 checkpoints", finished, err)
			}
			finished, err = c.RunAttempt(context.Background(), 0)
			if tc.sameType {
				if !finished || err != nil {
					t.Fatalf("restore with the same types: finished %v, err %v", finished, err)
				}
				return
			}
			want := `operator proc declares state "sum" as value string (sdk.StringCodec), but the restored snapshot holds it as value int64`
			if tc.ttlClock {
				want = `declares state "sum" as value int64 (sdk.VarintCodec[int64]) with event-time TTL, but the restored snapshot holds it as value int64 (sdk.VarintCodec[int64])`
			}
			if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), want) {
				t.Fatalf("restore as another type: %v; want a permanent error containing %q", err, want)
			}
		})
	}
}
