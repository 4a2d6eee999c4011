package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/weir-run/weir/bench/baseline"
	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/internal/uvarintframe"
	"github.com/weir-run/weir/sdk"
)

// runQuery runs query name over n events at parallelism p in this process
// and returns the merged checksum of its sinks' reports.
func runQuery(t *testing.T, name string, n int64, p int, eventRate float64) nexmark.Checksum {
	t.Helper()
	dir := t.TempDir()
	pl := sdk.NewPipeline("nexmark-"+name, p)
	args := []string{"--query", name, "--events", strconv.FormatInt(n, 10), "--report-dir", dir,
		"--event-rate", strconv.FormatFloat(eventRate, 'f', -1, 64), "--latency"}
	if err := build(pl, args); err != nil {
		t.Fatal(err)
	}
	if err := sdk.RunLocal(context.Background(), pl); err != nil {
		t.Fatal(err)
	}
	var sum nexmark.Checksum
	for i := range p {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("sink-%d.json", i)))
		if err != nil {
			t.Fatalf("subtask %d wrote no report: %v", i, err)
		}
		var r nexmark.SinkReport
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.Checksum.Count > 0 && r.Latency.Total != r.Checksum.Count {
			t.Errorf("subtask %d: %d latencies for %d outputs: an output lost its Emit time", i, r.Latency.Total, r.Checksum.Count)
		}
		sum.Merge(r.Checksum)
	}
	return sum
}

// Every query's output equals its baseline's on the same events, at p=1 and
// in parallel, for a dense and a sparse event-time rate (few large windows,
// many small ones).
func TestQueriesMatchBaselines(t *testing.T) {
	n := int64(200_000)
	if testing.Short() {
		n = 50_000
	}
	for _, name := range queryNames() {
		base, ok := baseline.Queries[name]
		if !ok {
			t.Errorf("query %s has no baseline", name)
			continue
		}
		for _, rate := range []float64{10_000, 1_000} {
			cfg := nexmark.DefaultConfig()
			cfg.EventsPerSecond = rate
			want := base(nexmark.NewGenerator(cfg), n)
			if want.Count == 0 {
				t.Errorf("%s at %v ev/s: the baseline has no output; the test would prove nothing", name, rate)
			}
			for _, p := range []int{1, 3} {
				t.Run(fmt.Sprintf("%s/rate=%v/p=%d", name, rate, p), func(t *testing.T) {
					if got := runQuery(t, name, n, p, rate); got != want {
						t.Fatalf("checksum %v, baseline %v", got, want)
					}
				})
			}
		}
	}
}

func TestBadArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "nexmark needs --query"},
		{[]string{"--query", "q99"}, `unknown query "q99"`},
		{[]string{"--query", "q0", "--events", "-1"}, "--events must not be negative"},
		{[]string{"--query", "q0", "--event-rate", "0"}, "--event-rate must be positive"},
	} {
		err := build(sdk.NewPipeline("x", 1), tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// q4's keyed state round-trips through its codec (it is written to the
// backend at checkpoints and evictions), waiting bids included, and a
// waiting count the bytes cannot hold is refused, not allocated.
func TestQ4StateCodec(t *testing.T) {
	c := sdk.CodecFor[q4State]()
	a := q4Auction{ID: 7, DateTime: 1000, Expires: 5000, Reserve: 30, Category: 12, Emit: 99}
	for _, s := range []q4State{
		{},
		{Known: true, A: a, HasBest: true, Best: 41, BestEmit: 3},
		{Known: true, Closed: true, A: a},
		{Waiting: []q4Bid{{Price: 5, DateTime: 1200, Emit: 1}, {Price: -2, DateTime: 1300, Emit: 2}}},
	} {
		got, err := c.Decode(c.Append(nil, s))
		if err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(s) {
			t.Errorf("round trip: got %+v, want %+v", got, s)
		}
	}
	for _, count := range []int64{1 << 30, 1 << 62} { // 3 × 2^62 overflows
		b := uvarintframe.AppendVarints([]byte{0}, count)
		if _, err := c.Decode(b); err == nil {
			t.Errorf("a waiting count of %d in %d bytes decoded", count, len(b))
		}
	}
}

// q4's shuffled events round-trip through their codec, and bytes that are
// not one event are refused.
func TestQ4EventCodec(t *testing.T) {
	c := sdk.CodecFor[q4Event]()
	for _, e := range []q4Event{
		{IsAuction: true, A: q4Auction{ID: 7, DateTime: 1000, Expires: 5000, Reserve: 30, Category: 12, Emit: 99}},
		{B: q4Bid{Auction: 7, Price: -41, DateTime: 1 << 50, Emit: 3}},
		{},
	} {
		got, err := c.Decode(c.Append(nil, e))
		if err != nil || got != e {
			t.Errorf("round trip of %+v: %+v, %v", e, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {1}, {0, 2, 4}, append(c.Append(nil, q4Event{}), 0)} {
		if _, err := c.Decode(bad); !errors.Is(err, sdk.ErrDecode) {
			t.Errorf("Decode(%x) = %v, want ErrDecode", bad, err)
		}
	}
}

func FuzzQ4EventCodec(f *testing.F) {
	c := sdk.CodecFor[q4Event]()
	f.Add(c.Append(nil, q4Event{IsAuction: true, A: q4Auction{ID: 1, Category: 10}}))
	f.Add(c.Append(nil, q4Event{B: q4Bid{Auction: 1, Price: 5}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := c.Decode(b)
		if err != nil {
			return
		}
		if again, err := c.Decode(c.Append(nil, e)); err != nil || again != e {
			t.Fatalf("%x decoded to %+v, which re-encoded decodes to %+v, %v", b, e, again, err)
		}
	})
}
