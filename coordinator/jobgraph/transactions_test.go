package jobgraph_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weir-run/weir/coordinator/jobgraph"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func TestCheckTransactionTimeouts(t *testing.T) {
	graph := func(timeouts ...time.Duration) *weirv1.JobGraph {
		v := &weirv1.Vertex{Id: 0, Parallelism: 1, IsSource: true,
			Operators: []*weirv1.Operator{{Uid: "src", Name: "Source", Kind: "source"}}}
		for i, d := range timeouts {
			v.Operators = append(v.Operators, &weirv1.Operator{Uid: "sink-" + string(rune('a'+i)), Name: "KafkaSink",
				Kind: "sink", TransactionTimeoutMs: d.Milliseconds()})
		}
		return &weirv1.JobGraph{MaxParallelism: 128, Vertices: []*weirv1.Vertex{v}}
	}
	bounds := jobgraph.TransactionBounds{CheckpointInterval: time.Second, CheckpointTimeout: time.Minute, MaxRestartDelay: 30 * time.Second}
	for _, tc := range []struct {
		name   string
		g      *weirv1.JobGraph
		b      jobgraph.TransactionBounds
		errHas []string // empty: accepted
	}{
		{name: "no transactional operator", g: graph(), b: bounds},
		{name: "long enough", g: graph(92 * time.Second), b: bounds},
		{name: "equal is too short", g: graph(91 * time.Second), b: bounds,
			errHas: []string{`operator "KafkaSink" (uid sink-a) has transaction timeout 1m31s`, "stay open for 1m31s",
				"checkpoint interval 1s + checkpoint timeout 1m0s + restart delay up to 30s", "raise the transaction timeout above 1m31s"}},
		{name: "names every offender", g: graph(10*time.Second, time.Hour, 20*time.Second), b: bounds,
			errHas: []string{"uid sink-a", "uid sink-c"}},
		{name: "no checkpoints, no transactions", g: graph(time.Second), b: jobgraph.TransactionBounds{CheckpointTimeout: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := jobgraph.CheckTransactionTimeouts(tc.g, tc.b)
			if len(tc.errHas) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, jobgraph.ErrTransactionTimeout) {
				t.Fatalf("err = %v, want ErrTransactionTimeout", err)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "uid sink-b") {
				t.Errorf("error names the sink with a long enough timeout: %v", err)
			}
		})
	}
}
