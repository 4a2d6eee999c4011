package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The jobs of a campaign, by name.
const (
	jobCounts = "counts" // eoscount: Kafka→Kafka, keyed state
	jobVisits = "visits" // bayvisits: Kafka→Kafka, session windows
	jobFiles  = "files"  // tworegions: two pipelines (regions) of generator → keyed count → exactly-once file sink
)

// Workload constants: small enough for two shared cores.
const (
	countKeys   = 300
	bays        = 20
	visitGap    = 5 * time.Second
	closingBay  = "zz-close-" // bays of the events that close every visit at the end
	partitions  = 4           // weir kafka's topics
	fileKeys    = 500
	fileRate    = 500 // events per second of each of the file job's two pipelines
	parallelism = 2
)

// workload submits the jobs and feeds their input topics.
type workload struct {
	t       *topology
	rng     *rand.Rand
	ids     map[string]string // job name → id
	fileOut string
	fileEvs int64

	prod *kgo.Client
	stop chan struct{}
	done chan struct{}

	mu        sync.Mutex
	scale     float64 // input per tick, times 30 count records and 10 bay events (1: 150 and 50 a second)
	produced  int
	produceEr error
	maxTS     int64
}

// newProducer is the input's producer: records go to the partitions
// they name.
func newProducer(brokers string) (*kgo.Client, error) {
	return kgo.NewClient(kgo.SeedBrokers(brokers), kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
}

func newWorkload(t *topology, seed uint64, duration time.Duration) (*workload, error) {
	prod, err := newProducer(t.brokers)
	if err != nil {
		return nil, err
	}
	events := int64(duration.Seconds()*fileRate*0.8) / fileKeys * fileKeys
	if events < fileKeys {
		events = fileKeys
	}
	return &workload{t: t, rng: rand.New(rand.NewPCG(seed, 0x5eed)), ids: map[string]string{},
		fileOut: filepath.Join(t.dir, "files-out"), fileEvs: events, prod: prod, scale: 1,
		stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// submit starts the three jobs with a restart strategy that outlasts any
// campaign: a fixed 1 s delay, no practical limit.
func (w *workload) submit() error {
	jobs := []struct {
		name, bin string
		args      []string
	}{
		{jobCounts, w.t.bins.EOSCount, []string{"--brokers", w.t.brokers, "--input-topic", "counts-in", "--output-topic", "counts-out"}},
		{jobVisits, w.t.bins.BayVisits, []string{"--brokers", w.t.brokers, "--input-topic", "visits-in", "--output-topic", "visits-out",
			"--gap", visitGap.String()}},
		{jobFiles, w.t.bins.TwoRegions, []string{"--events", fmt.Sprint(w.fileEvs), "--keys", fmt.Sprint(fileKeys),
			"--rate", fmt.Sprint(fileRate), "--output-a", w.fileOut + "-a", "--output-b", w.fileOut + "-b"}},
	}
	// The input topics exist before the jobs read them.
	if err := w.produceRetrying([]*kgo.Record{
		{Topic: "counts-in", Key: []byte("key-0"), Value: []byte("v")},
		{Topic: "visits-in", Key: []byte("b0"), Value: w.bayEvent("b0", 1)},
	}); err != nil {
		return err
	}
	for _, j := range jobs {
		id, err := w.t.cli.Submit([]string{"--name", j.name, "-p", fmt.Sprint(parallelism), "--checkpoint-interval", "1s",
			"--restart-strategy", "fixed-delay", "--restart-delay", "1s", "--max-restarts", "1000000"}, j.bin, j.args...)
		if err != nil {
			return fmt.Errorf("submit %s: %w", j.name, err)
		}
		w.ids[j.name] = id
	}
	return nil
}

// startTS is the event time of the first bay event.
const startTS = 1_700_000_000_000

func (w *workload) bayEvent(bay string, ts int64) []byte {
	b, _ := json.Marshal(struct {
		Bay string `json:"bay"`
		TS  int64  `json:"ts"`
	}{bay, ts})
	return b
}

// feed produces input until end is called: every 200 ms, 30 records of
// eoscount's keys and 10 bay events 500 ms of event time apart, each up to
// 3 s late (the job allows 30 s).
func (w *workload) feed() {
	go func() {
		defer close(w.done)
		i, ts := 1, int64(startTS+500)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			var recs []*kgo.Record
			w.mu.Lock()
			nCounts, nBays := max(1, int(30*w.scale+0.5)), max(1, int(10*w.scale+0.5))
			w.mu.Unlock()
			for range nCounts {
				k := "key-" + strconv.Itoa(i%countKeys)
				recs = append(recs, &kgo.Record{Topic: "counts-in", Key: []byte(k), Value: []byte("v"), Partition: int32(i % partitions)})
				i++
			}
			maxTS := ts
			for range nBays {
				ts += 500
				bay := "b" + strconv.Itoa(w.rng.IntN(bays))
				t := ts - w.rng.Int64N(3000)
				// A bay's events go to one partition, as a keyed producer's would.
				recs = append(recs, &kgo.Record{Topic: "visits-in", Key: []byte(bay), Value: w.bayEvent(bay, t), Partition: bayPartition(bay)})
				maxTS = ts
			}
			err := w.produceRetrying(recs)
			w.mu.Lock()
			if err != nil && w.produceEr == nil {
				w.produceEr = err
			}
			w.produced += len(recs)
			w.maxTS = maxTS
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
}

func bayPartition(bay string) int32 {
	n, _ := strconv.Atoi(strings.TrimPrefix(bay, "b"))
	return int32(n % partitions)
}

// setScale sets the input rate: scale times 150 count records and 50 bay
// events a second.
func (w *workload) setScale(s float64) {
	w.mu.Lock()
	w.scale = s
	w.mu.Unlock()
}

// producedCount is how many input records were produced so far.
func (w *workload) producedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.produced
}

// end stops the feed and produces one event per partition an hour of
// event time past the last, which closes every visit.
func (w *workload) end() error {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	err, maxTS := w.produceEr, w.maxTS
	w.mu.Unlock()
	if err != nil {
		return err
	}
	var recs []*kgo.Record
	for p := range partitions {
		bay := closingBay + strconv.Itoa(p)
		recs = append(recs, &kgo.Record{Topic: "visits-in", Key: []byte(bay), Value: w.bayEvent(bay, maxTS+3600_000), Partition: int32(p)})
	}
	return w.produceRetrying(recs)
}

// produceRetrying rides out a broker that is down or cut off, with a new
// client after each failure (a broker killed -9 forgets the idempotent
// producer's sequence numbers, which can wedge the old one). A retried
// batch may have been written already: the verifier reads the input
// topics as they stand, duplicates and all.
func (w *workload) produceRetrying(recs []*kgo.Record) error {
	var err error
	for range 60 {
		// Fresh records each try: a produced record keeps the context it
		// was produced with, and a retry under an expired one fails at once.
		try := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			try[i] = &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = w.prod.ProduceSync(ctx, try...).FirstErr()
		cancel()
		if err == nil {
			return nil
		}
		w.prod.Close()
		time.Sleep(500 * time.Millisecond)
		prod, perr := newProducer(w.t.brokers)
		if perr != nil {
			return fmt.Errorf("produce: %w", perr)
		}
		w.prod = prod
	}
	return fmt.Errorf("produce: %w", err)
}

func (w *workload) close() { w.prod.Close() }

// readTimeout bounds reading a whole topic back. Reading ends sooner when
// nothing new comes (quiet, stall); this only stops a read that keeps
// getting records, which an hour's soak at 20,000 records/s (tens of
// millions) did past the minute it used to have.
const readTimeout = 30 * time.Minute

// readTopic reads every committed record of topic: until at least min
// records have come and then nothing new for quiet, or nothing new for
// stall (whatever is missing is not coming), or timeout.
func readTopic(brokers, topic string, min int, quiet, stall, timeout time.Duration) ([]*kgo.Record, error) {
	return readTopicIso(brokers, topic, kgo.ReadCommitted(), min, quiet, stall, timeout)
}

// readTopicIso is readTopic at isolation level iso.
func readTopicIso(brokers, topic string, iso kgo.IsolationLevel, min int, quiet, stall, timeout time.Duration) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(iso),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var recs []*kgo.Record
	last := time.Now()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		n := len(recs)
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		if len(recs) > n {
			last = time.Now()
		}
		if len(recs) >= min && time.Since(last) >= quiet {
			return recs, nil
		}
		if time.Since(last) >= stall {
			break
		}
	}
	return recs, fmt.Errorf("%s: %d committed records, nothing new for %v, want at least %d", topic, len(recs), time.Since(last).Round(time.Second), min)
}

// Check is one verified output: how it differs from the reference.
type Check struct {
	Job        string `json:"job"`
	Expected   int    `json:"expected"`   // records (or lines) the reference has
	Got        int    `json:"got"`        // records (or lines) committed
	Lost       int    `json:"lost"`       // in the reference, not in the output
	Duplicated int    `json:"duplicated"` // in the output more often than in the reference
	Wrong      int    `json:"wrong"`      // in the output, not in the reference
	Error      string `json:"error,omitempty"`
	// LostIn says where the lost records are: each aborted transaction
	// (partition, producer id, epoch, offsets) that held some, and how
	// many were never written at all.
	LostIn []string `json:"lost_in,omitempty"`
}

// OK reports an exact match.
func (c Check) OK() bool { return c.Error == "" && c.Lost == 0 && c.Duplicated == 0 && c.Wrong == 0 }

func (c Check) String() string {
	s := fmt.Sprintf("%s: %d expected, %d committed, %d lost, %d duplicated, %d wrong", c.Job, c.Expected, c.Got, c.Lost, c.Duplicated, c.Wrong)
	if c.Error != "" {
		s += ": " + c.Error
	}
	for _, l := range c.LostIn {
		s += "\n    lost: " + l
	}
	return s
}

// compare fills c from the multisets want (the reference) and got.
func compare(c *Check, want, got map[string]int) {
	for k, n := range want {
		c.Expected += n
		c.Lost += max(0, n-got[k])
	}
	for k, n := range got {
		c.Got += n
		if w, ok := want[k]; !ok {
			c.Wrong += n
		} else {
			c.Duplicated += max(0, n-w)
		}
	}
}

// verifyCounts: eoscount's read_committed output holds, for each key with
// n input records, the counts 1..n, each once.
func verifyCounts(brokers string) Check {
	c := Check{Job: jobCounts}
	in, err := readTopic(brokers, "counts-in", 1, 3*time.Second, 30*time.Second, readTimeout)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	n := map[string]int{}
	for _, r := range in {
		n[string(r.Key)]++
	}
	want := map[string]int{}
	for k, m := range n {
		for i := 1; i <= m; i++ {
			want[k+"="+strconv.Itoa(i)] = 1
		}
	}
	out, err := readTopic(brokers, "counts-out", len(in), 5*time.Second, 45*time.Second, readTimeout)
	if err != nil {
		c.Error = err.Error()
	}
	got := map[string]int{}
	for _, r := range out {
		got[string(r.Key)+"="+string(r.Value)]++
	}
	compare(&c, want, got)
	if c.Lost > 0 {
		c.LostIn = explainLost(brokers, "counts-out", out, lostOf(want, got), func(r *kgo.Record) string { return string(r.Key) + "=" + string(r.Value) })
	}
	return c
}

// lostOf is what want has more often than got.
func lostOf(want, got map[string]int) map[string]int {
	lost := map[string]int{}
	for k, n := range want {
		if d := n - got[k]; d > 0 {
			lost[k] = d
		}
	}
	return lost
}

// explainLost finds the lost records (by keyOf) among topic's records
// that read_committed does not return, those of aborted transactions, and
// names each such transaction; the rest were never written.
func explainLost(brokers, topic string, committed []*kgo.Record, lost map[string]int, keyOf func(*kgo.Record) string) []string {
	type pos struct {
		part int32
		off  int64
	}
	seen := map[pos]bool{}
	for _, r := range committed {
		seen[pos{r.Partition, r.Offset}] = true
	}
	all, err := readTopicIso(brokers, topic, kgo.ReadUncommitted(), len(committed), 3*time.Second, 20*time.Second, time.Minute)
	if err != nil && len(all) == 0 {
		return []string{fmt.Sprintf("cannot tell where: read_uncommitted %s: %v", topic, err)}
	}
	type txn struct {
		part   int32
		pid    int64
		epoch  int16
		lo, hi int64
		n      int
	}
	var txns []*txn
	byTxn := map[[3]int64]*txn{}
	left := maps.Clone(lost)
	for _, r := range all {
		if seen[pos{r.Partition, r.Offset}] {
			continue
		}
		k := keyOf(r)
		if left[k] == 0 {
			continue
		}
		left[k]--
		id := [3]int64{int64(r.Partition), r.ProducerID, int64(r.ProducerEpoch)}
		t := byTxn[id]
		if t == nil {
			t = &txn{part: r.Partition, pid: r.ProducerID, epoch: r.ProducerEpoch, lo: r.Offset}
			byTxn[id] = t
			txns = append(txns, t)
		}
		t.lo, t.hi, t.n = min(t.lo, r.Offset), max(t.hi, r.Offset), t.n+1
	}
	var out []string
	for _, t := range txns {
		out = append(out, fmt.Sprintf("%d records in an aborted transaction of %s/%d, producer id %d epoch %d, offsets %d-%d",
			t.n, topic, t.part, t.pid, t.epoch, t.lo, t.hi))
	}
	never := 0
	for _, n := range left {
		never += n
	}
	if never > 0 {
		out = append(out, fmt.Sprintf("%d records never written to %s", never, topic))
	}
	return out
}

type bayEv struct {
	Bay string `json:"bay"`
	TS  int64  `json:"ts"`
}

// visitsOf is the reference: per bay, the merges of the overlapping
// half-open intervals [ts, ts+gap) of its events, as bayvisits writes
// them.
func visitsOf(events []bayEv, gap int64) map[string]int {
	byBay := map[string][]int64{}
	for _, e := range events {
		if !strings.HasPrefix(e.Bay, closingBay) {
			byBay[e.Bay] = append(byBay[e.Bay], e.TS)
		}
	}
	out := map[string]int{}
	for bay, ts := range byBay {
		slices.Sort(ts)
		emit := func(start, end, count int64) {
			b, _ := json.Marshal(bay)
			out[fmt.Sprintf(`{"bay":%s,"start":%d,"end":%d,"count":%d}`, b, start, end, count)]++
		}
		start, end, count := ts[0], ts[0]+gap, int64(1)
		for _, t := range ts[1:] {
			if t < end {
				end, count = max(end, t+gap), count+1
				continue
			}
			emit(start, end, count)
			start, end, count = t, t+gap, 1
		}
		emit(start, end, count)
	}
	return out
}

// verifyVisits: bayvisits' read_committed output is the reference's
// visits, each once.
func verifyVisits(brokers string) Check {
	c := Check{Job: jobVisits}
	in, err := readTopic(brokers, "visits-in", 1, 3*time.Second, 30*time.Second, readTimeout)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	var evs []bayEv
	for _, r := range in {
		var e bayEv
		if err := json.Unmarshal(r.Value, &e); err != nil {
			c.Error = fmt.Sprintf("input record %q: %v", r.Value, err)
			return c
		}
		evs = append(evs, e)
	}
	want := visitsOf(evs, visitGap.Milliseconds())
	total := 0
	for _, n := range want {
		total += n
	}
	out, err := readTopic(brokers, "visits-out", total, 5*time.Second, 45*time.Second, readTimeout)
	if err != nil {
		c.Error = err.Error()
	}
	got := map[string]int{}
	for _, r := range out {
		got[string(r.Value)]++
	}
	compare(&c, want, got)
	if c.Lost > 0 {
		c.LostIn = explainLost(brokers, "visits-out", out, lostOf(want, got), func(r *kgo.Record) string { return string(r.Value) })
	}
	return c
}

// verifyFiles: each of tworegions' pipelines' committed files (under
// dir-a and dir-b) hold one line "key<TAB>count" per key, each count
// events/keys.
func verifyFiles(dir string, events int64) Check {
	c := Check{Job: jobFiles}
	want := map[string]int{}
	for _, p := range []string{"a", "b"} {
		for k := range fileKeys {
			want[fmt.Sprintf("%s:k%d\t%d", p, k, events/fileKeys)] = 1
		}
	}
	got := map[string]int{}
	for _, p := range []string{"a", "b"} {
		readCommitted(&c, dir+"-"+p, p+":", got)
	}
	compare(&c, want, got)
	return c
}

// readCommitted adds every line of dir's committed files, prefixed, to got.
func readCommitted(c *Check, dir, prefix string, got map[string]int) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		c.Error = err.Error()
	}
	var names []string
	for _, e := range entries {
		// Committed files only: in-progress and pending ones are hidden.
		if !strings.HasPrefix(e.Name(), ".") && !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			c.Error = err.Error()
			continue
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l != "" {
				got[prefix+l]++
			}
		}
	}
}
