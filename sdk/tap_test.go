package sdk

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// A tap started before the subtasks exist reaches them, samples what leaves
// the tapped chain (all of it, given the budget), and the metrics count
// every record once on each side of the exchange.
func TestTapAndMetricsOfALocalRun(t *testing.T) {
	const n = 5000
	var total atomic.Int64
	p := NewPipeline("tap", 1)
	gen := Generate(p, n, func(i int64) int64 { return i }, WithUID("gen"))
	sumSink(Map(Rebalance(gen), func(v int64) int64 { return v }, StartNewChain()), &total)
	pl, err := p.compile()
	if err != nil {
		t.Fatal(err)
	}
	var sampled []*weirv1.TapRecord // appended by the source's goroutine only
	var d *runtime.Deployment
	err = pl.RunLocal(context.Background(), quiet(), func(dep *runtime.Deployment) {
		d = dep
		d.StartTap(&weirv1.StartTap{TapId: "t1", Uid: "gen", Rate: 10 * n}, func(r *weirv1.TapRecord) { sampled = append(sampled, r) })
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sampled) != n {
		t.Fatalf("sampled %d records, want all %d", len(sampled), n)
	}
	for i, r := range sampled {
		if r.Json != strconv.Itoa(i) || r.VertexId != 0 || r.Subtask != 0 {
			t.Fatalf("sample %d = %+v", i, r)
		}
	}
	pm := d.ProcessMetrics(time.Now())
	got := map[int32][2]int64{}
	for _, tm := range pm.Tasks {
		got[tm.VertexId] = [2]int64{tm.RecordsIn, tm.RecordsOut}
	}
	if got[0] != [2]int64{0, n} || got[1] != [2]int64{n, 0} {
		t.Fatalf("records (in, out) by vertex = %v, want source out %d and sink in %d", got, n, n)
	}
}
