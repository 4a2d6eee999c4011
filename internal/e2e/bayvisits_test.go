package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weir-run/weir/internal/keygroup"
)

// TestBayVisitsRefinements is the event-time acceptance run of
// jobs/bayvisits' refinements mode: parking-bay visits as session windows
// (gap 60 s) over out-of-order sensor events read from Kafka with
// per-partition watermarks (30 s bound), early panes every 5 events and 3 s
// after a visit's first event, allowed lateness 5 min, retracting
// accumulation, the too-late events to a late topic, and exactly-once Kafka
// output; on `weir local --kafka` at -p 2, in three runs:
//
//   - clean: no failure;
//   - kills: the job's processes are killed with SIGKILL three times
//     mid-stream (each time after a checkpoint completed and more input was
//     written behind it), restarting from the latest checkpoint;
//   - rescale: `weir stop --savepoint`, resumed at -p 3, and again at -p 2.
//
// About 1% of the input are minutes-late readings: half of them 1-3 min
// behind the newest event (within the lateness: they refine visits with
// late panes, extend them or merge two), half 6-21 min behind the watermark
// the job is proven to have reached before they are written (too late:
// they belong in the late topic). Each run reads the output topic
// read_committed, cancels each retraction against the equal pane and
// compares the panes left, as (bay, start, end, count), with the visits of
// an independent reference (the sessions of each bay's not-too-late
// events), and the late topic with the too-late events, both as exact
// multisets. See bayWorkload for why the reference is exact whatever the
// interleaving of partitions, restarts and rescales.
//
// The default, 30,000 events over 200 bays, is sized for CI (under 2 min
// for the three runs on 2 cores). The acceptance sizes (about 5 and
// 15 min for the three runs on 2 cores):
//
//	WEIR_BAY_EVENTS=300000 go test ./internal/e2e -run TestBayVisitsRefinements -timeout 30m -v
//	WEIR_BAY_EVENTS=3000000 go test ./internal/e2e -run TestBayVisitsRefinements -timeout 3h -v
//
// WEIR_BAY_BAYS changes the number of bays (default 200); one run is chosen
// with -run 'TestBayVisitsRefinements/kills'.
func TestBayVisitsRefinements(t *testing.T) {
	prm := bayParams{events: 30_000, bays: 200, parts: 4, step: 300, ooo: 30_000, gap: 60_000, lateness: 300_000,
		lateFrac: 0.005, tooLateFrac: 0.005, seed: 1}
	if n, err := strconv.Atoi(os.Getenv("WEIR_BAY_EVENTS")); err == nil && n > 0 {
		prm.events = n
	}
	if n, err := strconv.Atoi(os.Getenv("WEIR_BAY_BAYS")); err == nil && n > 0 {
		prm.bays = n
	}
	// About one event per bay per minute: visits of every length.
	prm.step = max(60_000/int64(prm.bays), 1)
	// Each phase ends with a wait for the watermark (a few seconds): at
	// most 30 of them, of at least 5,000 events.
	prm.perPhase = max(5000, (prm.events+29)/30)
	start := time.Now()
	w := newBayWorkload(prm)
	t.Logf("workload: %d events (%d minutes late within the lateness, %d too late) over %d bays in %d phases, %d visits; generated in %v",
		w.kept+w.nTooLate, w.lateKept, w.nTooLate, prm.bays, len(w.phases), w.nVisits, time.Since(start).Round(time.Millisecond))

	bin := filepath.Join(t.TempDir(), "bayvisits")
	cmd := exec.Command("go", "build", "-o", bin, "./jobs/bayvisits")
	cmd.Dir = "../.."
	cmd.Env = staticBuildEnv()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build jobs/bayvisits: %v\n%s", err, b)
	}
	l := &localKafka{t: t, dir: t.TempDir(), api: freeAddr(t), http: freeAddr(t), kafka: freeAddr(t)}
	l.start()

	for _, sc := range []string{"clean", "kills", "rescale"} {
		t.Run(sc, func(t *testing.T) {
			r := &bayRun{t: t, l: l, bin: bin, w: w, scenario: sc,
				in: "bay-events-" + sc, out: "bay-visits-" + sc, late: "bay-late-" + sc}
			r.run()
		})
	}
}

// bayParams sizes a workload; times in ms.
type bayParams struct {
	events, bays, parts, perPhase int
	step, ooo, gap, lateness      int64
	lateFrac, tooLateFrac         float64
	seed                          uint64
}

type bayEvent struct {
	Bay string `json:"bay"`
	TS  int64  `json:"ts"`
}

type bayPlaced struct {
	part int32
	ev   bayEvent
}

type bayVisit struct {
	bay               string
	start, end, count int64
}

// bayWorkload is the input, in the order it is written to each partition,
// and the reference output.
//
// Why the reference is exact. A partition's watermark is its largest event
// time read so far minus 30 s minus 1 ms; the window operator's is the
// minimum over partitions (restored from the checkpoint after a failure,
// the minimum over the old subtasks after a rescale), never more than the
// watermark of the partition of the event at hand. So:
//
//   - A kept event is at most 3 min behind the newest event of its
//     partition before it, hence at most 2.5 min behind the watermark,
//     while its session's cleanup time is at least its time + 60 s + 5 min:
//     it is never dropped, and no session it touches can have been cleaned
//     up (that needs the watermark 5 min past the session's end). So the
//     sessions the operator forms are exactly the merges of the kept
//     events' [ts, ts+gap), whatever the interleaving, and once the end
//     markers have moved every watermark past them all, the panes left
//     after retractions are exactly those sessions.
//   - A too-late event of phase k is written only after every key group's
//     window subtask is proven to have had watermark >= W_k in a completed
//     checkpoint (see bayRun.confirm), so whenever it is read, first time
//     or after a restore, the watermark is at least W_k; its time is at
//     most W_k - gap - lateness + 1 and no kept event of its bay is within
//     a gap of it, so its session is itself and its cleanup time is at
//     most W_k: it is always dropped to the late topic.
type bayWorkload struct {
	prm        bayParams
	phases     [][]bayPlaced
	thresholds []int64   // W_k, before phase k (k >= 1)
	partMax    [][]int64 // before phase k, the newest event time of each partition
	markers    []bayPlaced
	visits     map[bayVisit]int
	tooLate    map[bayEvent]int
	nVisits    int
	kept       int
	lateKept   int
	nTooLate   int
}

const bayT0 = int64(1_700_000_000_000)

func newBayWorkload(prm bayParams) *bayWorkload {
	r := rand.New(rand.NewPCG(prm.seed, 0xba7))
	w := &bayWorkload{prm: prm, visits: map[bayVisit]int{}, tooLate: map[bayEvent]int{}}
	name := func(b int) string { return fmt.Sprintf("b%03d", b) }
	byBay := make([][]int64, prm.bays)
	partMax := make([]int64, prm.parts)
	for i := range partMax {
		partMax[i] = math.MinInt64
	}
	now, newest := bayT0, bayT0
	for k := 0; k*prm.perPhase < prm.events; k++ {
		wk := int64(math.MinInt64)
		if k > 0 {
			wk = slices.Min(partMax) - prm.ooo - 1
		}
		w.thresholds = append(w.thresholds, wk)
		w.partMax = append(w.partMax, slices.Clone(partMax))
		var recs []bayPlaced
		n := min(prm.perPhase, prm.events-k*prm.perPhase)
		nt := 0
		if k > 0 {
			nt = int(math.Round(float64(n) * prm.tooLateFrac))
		}
		for range n - nt {
			now += r.Int64N(2*prm.step + 1)
			b := r.IntN(prm.bays)
			var ts int64
			if r.Float64() < prm.lateFrac {
				ts = now - 60_000 - r.Int64N(120_001) // 1-3 min late: within the lateness
				w.lateKept++
			} else {
				ts = max(now-r.Int64N(prm.ooo+1), newest-prm.ooo)
				newest = max(newest, ts)
			}
			p := b % prm.parts
			partMax[p] = max(partMax[p], ts)
			byBay[b] = append(byBay[b], ts)
			recs = append(recs, bayPlaced{int32(p), bayEvent{name(b), ts}})
			w.kept++
		}
		if nt > 0 {
			for _, tss := range byBay {
				slices.Sort(tss)
			}
			// Cleanup time of [ts, ts+gap) is ts+gap-1+lateness <= W_k.
			limit := wk - prm.gap - prm.lateness + 1
			for range nt {
				for try := 0; ; try++ {
					if try == 100_000 {
						panic("bay workload: no quiet spot for a too-late event")
					}
					b := r.IntN(prm.bays)
					ts := limit - r.Int64N(15*60_000)
					// Later events are all more than a gap after ts: only
					// those so far can be near it.
					tss := byBay[b]
					i, _ := slices.BinarySearch(tss, ts-prm.gap+1)
					if i < len(tss) && tss[i] < ts+prm.gap {
						continue // a kept event within a gap: it would merge
					}
					e := bayEvent{name(b), ts}
					pos := r.IntN(len(recs) + 1)
					recs = slices.Insert(recs, pos, bayPlaced{int32(b % prm.parts), e})
					w.tooLate[e]++
					w.nTooLate++
					break
				}
			}
		}
		w.phases = append(w.phases, recs)
	}
	// End markers move every partition's watermark past every visit's
	// cleanup time.
	for p := range prm.parts {
		w.markers = append(w.markers, bayPlaced{int32(p), bayEvent{fmt.Sprintf("zz-end-%d", p), newest + 3_600_000}})
	}
	for b, tss := range byBay {
		slices.Sort(tss)
		for i := 0; i < len(tss); {
			j := i + 1
			for j < len(tss) && tss[j] < tss[j-1]+prm.gap {
				j++
			}
			w.visits[bayVisit{name(b), tss[i], tss[j-1] + prm.gap, int64(j - i)}]++
			w.nVisits++
			i = j
		}
	}
	return w
}

// bayPane is a pane of the output, without its retraction flag.
type bayPane struct {
	Bay        string `json:"bay"`
	Start      int64  `json:"start"`
	End        int64  `json:"end"`
	Count      int64  `json:"count"`
	Timing     string `json:"timing"`
	Index      int64  `json:"index"`
	Retraction bool   `json:"retraction"`
}

// bayCollector reads the output and late topics read_committed for the
// whole run.
type bayCollector struct {
	mu          sync.Mutex
	live        map[bayPane]int // panes minus retractions (Retraction false)
	timings     map[string]int
	retractions int
	late        map[bayEvent]int
	lateProbes  map[string]bool
	records     int
	lastRecord  time.Time
	bad         []string
}

func (c *bayCollector) add(r *kgo.Record, lateTopic string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records++
	c.lastRecord = time.Now()
	if r.Topic == lateTopic {
		var e bayEvent
		if err := json.Unmarshal(r.Value, &e); err != nil || string(r.Key) != e.Bay {
			c.bad = append(c.bad, fmt.Sprintf("late %q key %q", r.Value, r.Key))
			return
		}
		if strings.HasPrefix(e.Bay, "zz-") { // probes; ticks, markers would be a bug
			c.lateProbes[e.Bay] = true
			return
		}
		c.late[e]++
		return
	}
	var p bayPane
	if err := json.Unmarshal(r.Value, &p); err != nil || string(r.Key) != p.Bay || p.Timing == "" {
		c.bad = append(c.bad, fmt.Sprintf("pane %q key %q", r.Value, r.Key))
		return
	}
	if p.Retraction {
		c.retractions++
		p.Retraction = false
		c.live[p]--
	} else {
		c.timings[p.Timing]++
		c.live[p]++
	}
	if c.live[p] == 0 {
		delete(c.live, p)
	}
}

func (c *bayCollector) probed(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lateProbes[name]
}

// bayDiff compares what was read with the reference.
type bayDiff struct {
	got                     int // visits left after retractions
	missing, lost, wrong    int // reference visits not in the output; of which no output visit overlaps; overlaps one
	extra                   int // output visits not in the reference
	unmatched               int // retractions of no pane
	lateMissing, lateExtra  int // too-late events not in the late topic; late records not too late (or repeated)
	examples                []string
	exampleVisits           []bayVisit // the first lost and wrong visits
	panes, retractions, bad int
	timings                 map[string]int
}

func (d bayDiff) ok() bool {
	return d.missing == 0 && d.extra == 0 && d.unmatched == 0 && d.lateMissing == 0 && d.lateExtra == 0 && d.bad == 0
}

func (d bayDiff) String() string {
	return fmt.Sprintf("%d visits after retractions: %d reference visits missing (%d lost: no output visit overlaps them; %d wrong: an output visit overlaps with other bounds or count), "+
		"%d output visits not in the reference, %d retractions of no pane; late topic: %d too-late events missing, %d records that are not too-late events; "+
		"%d unparsable records; read %d panes %v and %d retractions",
		d.got, d.missing, d.lost, d.wrong, d.extra, d.unmatched, d.lateMissing, d.lateExtra, d.bad, d.panes, d.timings, d.retractions)
}

func (c *bayCollector) diff(w *bayWorkload) bayDiff {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := bayDiff{retractions: c.retractions, bad: len(c.bad), timings: map[string]int{}}
	shown := map[string]int{}
	example := func(kind, format string, args ...any) bool {
		if shown[kind]++; shown[kind] > 4 {
			return false
		}
		d.examples = append(d.examples, kind+": "+fmt.Sprintf(format, args...))
		return true
	}
	for k, n := range c.timings {
		d.timings[k] = n
		d.panes += n
	}
	got := map[bayVisit]int{}
	byBay := map[string][]bayVisit{}
	for p, n := range c.live {
		if n < 0 {
			d.unmatched -= n
			example("retraction of no pane", "%+v", p)
			continue
		}
		if strings.HasPrefix(p.Bay, "zz-") {
			continue
		}
		v := bayVisit{p.Bay, p.Start, p.End, p.Count}
		got[v] += n
		d.got += n
		byBay[p.Bay] = append(byBay[p.Bay], v)
	}
	var missing []bayVisit
	for v, n := range w.visits {
		if m := n - got[v]; m > 0 {
			d.missing += m
			missing = append(missing, v)
		}
	}
	sort.Slice(missing, func(i, j int) bool {
		return missing[i].bay < missing[j].bay || missing[i].bay == missing[j].bay && missing[i].start < missing[j].start
	})
	for _, v := range missing {
		var wrong *bayVisit
		for _, o := range byBay[v.bay] {
			if o.start < v.end && v.start < o.end && got[o] > w.visits[o] {
				wrong = &o
				break
			}
		}
		if wrong != nil {
			d.wrong++
			if example("wrong", "want %+v, got %+v", v, *wrong) && shown["wrong"] <= 2 {
				d.exampleVisits = append(d.exampleVisits, v)
			}
		} else {
			d.lost++
			if example("lost", "%+v", v) && shown["lost"] <= 2 {
				d.exampleVisits = append(d.exampleVisits, v)
			}
		}
	}
	for v, n := range got {
		if e := n - w.visits[v]; e > 0 {
			d.extra += e
			example("not in the reference", "%+v", v)
		}
	}
	for e, n := range w.tooLate {
		if m := n - c.late[e]; m > 0 {
			d.lateMissing += m
			example("too-late event not in the late topic", "%+v", e)
		}
	}
	for e, n := range c.late {
		if x := n - w.tooLate[e]; x > 0 {
			d.lateExtra += x
			example("in the late topic, not too late", "%+v", e)
		}
	}
	return d
}

// bayRun is one run of the job over the workload.
type bayRun struct {
	t                *testing.T
	l                *localKafka
	bin, scenario    string
	in, out, late    string
	w                *bayWorkload
	prod             *kgo.Client
	col              *bayCollector
	id               string
	round            int
	lastCheckpointID int64
}

func (r *bayRun) run() {
	t, w := r.t, r.w
	start := time.Now()
	r.prod = kafkaClient(t, r.l.kafka, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(4<<20))
	r.createTopic(r.in, w.prm.parts)
	r.col = &bayCollector{live: map[bayPane]int{}, timings: map[string]int{}, late: map[bayEvent]int{}, lateProbes: map[string]bool{}}
	consumer := kafkaClient(t, r.l.kafka, kgo.ConsumeTopics(r.out, r.late), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			consumer.PollFetches(ctx).EachRecord(func(rec *kgo.Record) { r.col.add(rec, r.late) })
		}
	}()
	defer func() { cancel(); <-done }()

	r.submit(2, "")
	defer func() {
		if _, stderr, code := weir(t, 30*time.Second, "cancel", "--coordinator", r.l.api, r.id); code != 0 {
			t.Logf("cancel %s: %s", r.id, stderr)
		}
	}()
	nph := len(w.phases)
	kills := map[int]bool{}
	rescales := map[int]int{}
	switch r.scenario {
	case "kills":
		kills = map[int]bool{max(nph/4, 1): true, max(nph/2, 2): true, max(3*nph/4, 3): true}
	case "rescale":
		rescales = map[int]int{max(nph/3, 1): 3, max(2*nph/3, 2): 2}
	}
	killed := 0
	for k, recs := range w.phases {
		if k > 0 {
			r.confirm(k)
		}
		if kills[k] {
			// Half the phase, a checkpoint, the other half, and the kill
			// at once, usually while the job works on it: the restore
			// replays input that holds minutes-late and too-late events.
			r.producePaced(recs[:len(recs)/2])
			r.newCheckpoint()
			r.producePaced(recs[len(recs)/2:])
			attempt := jobStatusOf(t, r.l.api, r.id).Attempt
			pids := taskPids(t, r.l.api, r.id)
			if len(pids) == 0 {
				t.Fatalf("job %s: no task process to kill", r.id)
			}
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			killed++
			t.Logf("phase %d: killed the job's %d processes with SIGKILL (kill %d)", k, len(pids), killed)
			waitFor(t, 60*time.Second, "the job to run again", func() bool {
				s := jobStatusOf(t, r.l.api, r.id)
				return s.Attempt > attempt && r.state() == "RUNNING"
			})
			continue
		}
		r.producePaced(recs)
		if p, ok := rescales[k]; ok {
			sp := r.stopWithSavepoint()
			r.submit(p, sp)
			t.Logf("phase %d: stopped with a savepoint, resumed at -p %d as %s", k, p, r.id)
		}
	}
	r.produce(w.markers)
	produced := time.Now()
	// Wait for the output to match, or to stop growing.
	timeout := 2*time.Minute + time.Duration(w.prm.events/1000)*time.Second
	var d bayDiff
	for {
		d = r.col.diff(w)
		r.col.mu.Lock()
		quiet := time.Since(r.col.lastRecord)
		r.col.mu.Unlock()
		if d.ok() || time.Since(produced) > timeout || quiet > 10*time.Second && time.Since(produced) > 10*time.Second {
			break
		}
		if st := r.state(); st == "FAILED" || st == "CANCELED" {
			t.Fatalf("job %s ended %s", r.id, st)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(3 * time.Second) // duplicates would follow soon
	d = r.col.diff(w)
	t.Logf("%s: %d events, %d visits, %d too late, in %v (%d killed, job attempt %d): %s", r.scenario, w.kept+w.nTooLate,
		w.nVisits, w.nTooLate, time.Since(start).Round(time.Millisecond), killed, jobStatusOf(t, r.l.api, r.id).Attempt, d)
	if !d.ok() {
		for _, e := range d.examples {
			t.Log(e)
		}
		r.explain(d.exampleVisits)
		t.Errorf("%s: the visits after retractions or the late topic differ from the reference: %s", r.scenario, d)
	}
}

// createTopic creates the input topic with parts partitions.
func (r *bayRun) createTopic(name string, parts int) {
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, int32(parts), 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10_000
	resp, err := req.RequestWith(context.Background(), r.prod)
	if err != nil {
		r.t.Fatal(err)
	}
	if ec := resp.Topics[0].ErrorCode; ec != 0 {
		r.t.Fatalf("create topic %s: error code %d", name, ec)
	}
}

func (r *bayRun) produce(recs []bayPlaced) {
	r.t.Helper()
	krs := make([]*kgo.Record, len(recs))
	for i, p := range recs {
		b, _ := json.Marshal(p.ev)
		krs[i] = &kgo.Record{Topic: r.in, Key: []byte(p.ev.Bay), Value: b, Partition: p.part}
	}
	for i := 0; i < len(krs); i += 10_000 {
		if err := produceRetrying(krs[i:min(i+10_000, len(krs))], r.prod); err != nil {
			r.t.Fatal(err)
		}
	}
}

// producePaced writes a phase as a stream: 100 events (30 s of event time
// at the default size) at a time, so that the job reads them about as they
// come and its watermark follows closely. Written at once, a phase would be
// read in batches of thousands, with the watermark held where it was
// before the batch: the minutes-late events would seldom be late when read.
func (r *bayRun) producePaced(recs []bayPlaced) {
	r.t.Helper()
	for i := 0; i < len(recs); i += 100 {
		r.produce(recs[i:min(i+100, len(recs))])
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *bayRun) args() []string {
	return []string{r.bin, "--", "--brokers", r.l.kafka, "--input-topic", r.in, "--output-topic", r.out, "--late-topic", r.late,
		"--gap", "60s", "--max-out-of-order", "30s", "--early-every", "5", "--early-after", "3s", "--lateness", "5m", "--retracting"}
}

func (r *bayRun) submit(p int, savepoint string) {
	args := []string{"-p", strconv.Itoa(p), "--checkpoint-interval", "1s"}
	if savepoint != "" {
		args = append(args, "--from-savepoint", savepoint)
	}
	r.id, r.lastCheckpointID = runDetached(r.t, r.l.api, append(args, r.args()...)...), 0
	waitFor(r.t, 60*time.Second, "the job to run", func() bool { return r.state() == "RUNNING" })
}

func (r *bayRun) state() string {
	s := jobStatusOf(r.t, r.l.api, r.id)
	if s.State == "FAILED" {
		r.t.Fatalf("job %s failed: %s", r.id, s.Error)
	}
	return s.State
}

// newCheckpoint waits for a checkpoint newer than the last one seen to
// complete.
func (r *bayRun) newCheckpoint() {
	waitFor(r.t, 60*time.Second, "a new completed checkpoint", func() bool {
		for _, c := range completed(checkpointsOf(r.t, r.l.api, r.id)) {
			if c.ID > r.lastCheckpointID {
				r.lastCheckpointID = c.ID
				return true
			}
		}
		return false
	})
}

func (r *bayRun) stopWithSavepoint() string {
	stdout, stderr, code := weir(r.t, 2*time.Minute, "stop", "--coordinator", r.l.api, "--savepoint", r.id)
	if code != 0 {
		r.t.Fatalf("weir stop --savepoint: %s", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	waitFor(r.t, 30*time.Second, "the stopped job to end", func() bool { return r.state() == "CANCELED" })
	return lines[len(lines)-1]
}

// windowWatermark is the window operator's watermark on the status page
// (the minimum over its subtasks that reported one), or MinInt64.
func (r *bayRun) windowWatermark() int64 {
	resp, err := http.Get("http://" + r.l.http + "/api/v1/jobs/" + r.id + "/detail")
	if err != nil {
		return math.MinInt64
	}
	defer resp.Body.Close()
	var j struct {
		Operators []struct {
			UIDs        []string `json:"uids"`
			WatermarkMs *int64   `json:"watermark_ms"`
		} `json:"operators"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&j) != nil {
		return math.MinInt64
	}
	for _, op := range j.Operators {
		if slices.Contains(op.UIDs, "visits") && op.WatermarkMs != nil {
			return *op.WatermarkMs
		}
	}
	return math.MinInt64
}

// bayMaxParallelism is the job's number of key groups (its default for
// -p 2, kept by its savepoints).
const bayMaxParallelism = 128

// confirm returns once every key group's window subtask is known to have
// had watermark >= wk = W_k (of phase k) in a completed checkpoint. Proof: a probe event of a
// bay in that key group, timed so that its session's cleanup time is wk,
// read committed from the late topic: the window operator dropped it, so its
// watermark was >= wk, and the checkpoint that committed the late record
// came after. Every restore is from that checkpoint or a newer one, so the
// watermark of that subtask (and, after a rescale, of every subtask, which
// restores the minimum of the old ones) stays >= wk. A probe read before the
// watermark got there is accepted instead (its panes go to the output
// topic, under a zz- bay that no comparison looks at); its key group is
// probed again under a new name.
func (r *bayRun) confirm(k int) {
	t, prm, wk := r.t, r.w.prm, r.w.thresholds[k]
	start := time.Now()
	ts := wk - prm.gap - prm.lateness + 1
	pending := map[int][]string{} // key group -> its probes so far
	for g := range bayMaxParallelism {
		pending[g] = nil
	}
	deadline := time.Now().Add(2*time.Minute + time.Duration(prm.perPhase/500)*time.Second)
	for round := 1; ; round++ {
		// A restore after the job read all there was leaves a partition
		// nothing but probes to set its watermark from (partition
		// watermarks start over on a restore): a tick at the partition's
		// newest event time restores it without moving it.
		var recs []bayPlaced
		for p, m := range r.w.partMax[k] {
			recs = append(recs, bayPlaced{int32(p), bayEvent{fmt.Sprintf("zz-tick-%d", p), m}})
		}
		r.produce(recs)
		// Probing before the job caught up only costs probes: wait for
		// the status page's watermark first (a hint, not the proof).
		for hint := time.Now().Add(30*time.Second + time.Duration(prm.perPhase/500)*time.Second); time.Now().Before(hint) && r.windowWatermark() < wk; {
			time.Sleep(200 * time.Millisecond)
		}
		r.round++
		var groups []int
		for g := range pending {
			groups = append(groups, g)
		}
		names := probeNames(r.round, groups)
		recs = recs[:0]
		for _, g := range groups {
			pending[g] = append(pending[g], names[g])
			recs = append(recs, bayPlaced{int32(g % prm.parts), bayEvent{names[g], ts}})
		}
		r.produce(recs)
		for resend := time.Now().Add(10 * time.Second); time.Now().Before(resend); time.Sleep(200 * time.Millisecond) {
			for g, names := range pending {
				if slices.ContainsFunc(names, r.col.probed) {
					delete(pending, g)
				}
			}
			if len(pending) == 0 {
				if round > 1 {
					t.Logf("watermark %d confirmed in %v after %d probe rounds", wk, time.Since(start).Round(time.Millisecond), round)
				}
				return
			}
		}
		r.state()
		if time.Now().After(deadline) {
			t.Fatalf("watermark %d not confirmed for %d key groups within %v (%d probe rounds); window watermark on the status page: %d",
				wk, len(pending), time.Since(start).Round(time.Second), round, r.windowWatermark())
		}
	}
}

// probeNames finds a bay name in each of groups for a probe round.
func probeNames(round int, groups []int) map[int]string {
	want := map[int]bool{}
	for _, g := range groups {
		want[g] = true
	}
	names := map[int]string{}
	for i := 0; len(names) < len(groups); i++ {
		n := fmt.Sprintf("zz-probe-%d-%d", round, i)
		g := keygroup.Of(keygroup.Hash([]byte(n)), bayMaxParallelism)
		if want[g] && names[g] == "" {
			names[g] = n
		}
	}
	return names
}

// explain logs, for a few visits the output got wrong, the bay's input
// events around each in the order its partition holds them (with how far
// each is behind the partition's newest event before it) and the bay's
// panes and retractions there in the order of the output topic.
func (r *bayRun) explain(visits []bayVisit) {
	t, w := r.t, r.w
	if len(visits) == 0 {
		return
	}
	near := func(v bayVisit, bay string, start, end int64) bool {
		return bay == v.bay && start < v.end+w.prm.gap && v.start-w.prm.gap < end
	}
	for _, v := range visits {
		var lines []string
		newest := int64(math.MinInt64)
		part := int32(-1)
		for k, ph := range w.phases {
			for _, p := range ph {
				if p.ev.Bay == v.bay {
					part = p.part
				}
				if part < 0 || p.part != part {
					continue
				}
				if near(v, p.ev.Bay, p.ev.TS, p.ev.TS+w.prm.gap) {
					lines = append(lines, fmt.Sprintf("  phase %d: ts %d (+%d ms from the visit's start), %d ms behind its partition's newest event", k, p.ev.TS, p.ev.TS-v.start, newest-p.ev.TS))
				}
				newest = max(newest, p.ev.TS)
			}
		}
		t.Logf("visit %+v: its bay's events near it, in partition %d order:\n%s", v, part, strings.Join(lines, "\n"))
	}
	consumer := kafkaClient(t, r.l.kafka, kgo.ConsumeTopics(r.out), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	panes := map[bayVisit][]string{}
	for quiet := 0; quiet < 3; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := consumer.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			quiet++
		}
		fs.EachRecord(func(rec *kgo.Record) {
			var p bayPane
			if json.Unmarshal(rec.Value, &p) != nil {
				return
			}
			for _, v := range visits {
				if near(v, p.Bay, p.Start, p.End) {
					panes[v] = append(panes[v], fmt.Sprintf("  offset %d/%d: %s", rec.Partition, rec.Offset, rec.Value))
				}
			}
		})
	}
	for _, v := range visits {
		t.Logf("visit %+v: the output's panes near it:\n%s", v, strings.Join(panes[v], "\n"))
	}
}
