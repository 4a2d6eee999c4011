package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-run/weir/sdk"
)

// The test binary doubles as the job binary: run with BAYVISITS_JOB=1 it is
// the job's main, so the test runs the real command line without a build.
func TestMain(m *testing.M) {
	if os.Getenv("BAYVISITS_JOB") == "1" {
		sdk.Main(build)
		return
	}
	os.Exit(m.Run())
}

// generate writes n events over bays: times advance ~step ms per event and
// are shuffled back by up to ooo ms (never more than ooo older than the
// newest before), as the job's contract allows.
func generate(t *testing.T, path string, seed uint64, n, bays int, step, ooo int64) []event {
	r := rand.New(rand.NewPCG(seed, 7))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	evs := make([]event, n)
	now, newest := int64(1_700_000_000_000), int64(0)
	for i := range evs {
		now += r.Int64N(2*step + 1)
		ts := max(now-r.Int64N(ooo+1), newest-ooo)
		newest = max(newest, ts)
		evs[i] = event{Bay: "b" + strconv.Itoa(r.IntN(bays)), TS: ts}
		fmt.Fprintf(w, "{\"bay\":%q,\"ts\":%d}\n", evs[i].Bay, ts)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return evs
}

// reference is the naive model: per bay, sort the times and cut where the
// next event is at or after the current session's end.
func reference(evs []event, gap int64) []string {
	byBay := map[string][]int64{}
	for _, e := range evs {
		byBay[e.Bay] = append(byBay[e.Bay], e.TS)
	}
	var out []string
	line := func(bay string, s, e, n int64) string {
		return fmt.Sprintf(`{"bay":%q,"start":%d,"end":%d,"count":%d}`, bay, s, e, n)
	}
	for bay, tss := range byBay {
		slices.Sort(tss)
		start, end, n := tss[0], tss[0]+gap, int64(0)
		for _, ts := range tss {
			if ts >= end {
				out = append(out, line(bay, start, end, n))
				start, n = ts, 0
			}
			end = ts + gap
			n++
		}
		out = append(out, line(bay, start, end, n))
	}
	slices.Sort(out)
	return out
}

// committed reads the committed output lines of dir, sorted.
func committed(t *testing.T, dir string) []string {
	files, err := filepath.Glob(filepath.Join(dir, "part-*"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l != "" {
				var probe map[string]any
				if err := json.Unmarshal([]byte(l), &probe); err != nil {
					t.Fatalf("output line %q is not JSON: %v", l, err)
				}
				lines = append(lines, l)
			}
		}
	}
	slices.Sort(lines)
	return lines
}

func runJob(t *testing.T, p int, args ...string) {
	cmd := exec.Command(os.Args[0], append([]string{"--mode=local", "-p", strconv.Itoa(p), "--"}, args...)...)
	cmd.Env = append(os.Environ(), "BAYVISITS_JOB=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bayvisits: %v\n%s", err, out)
	}
}

func compare(t *testing.T, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	i := 0
	for i < min(len(got), len(want)) && got[i] == want[i] {
		i++
	}
	t.Fatalf("got %d sessions, want %d; first difference at %d: got %q want %q", len(got), len(want), i,
		got[min(i, len(got)-1)], want[min(i, len(want)-1)])
}

// TestBayVisits runs the job's command line at p=1 and p=4 on a generated
// file and compares the committed sessions with the naive reference.
// BAYVISITS_EVENTS=2000000 BAYVISITS_BAYS=5000 runs the acceptance size.
func TestBayVisits(t *testing.T) {
	n, bays := 200_000, 1000
	if s := os.Getenv("BAYVISITS_EVENTS"); s != "" {
		n, _ = strconv.Atoi(s)
		bays, _ = strconv.Atoi(os.Getenv("BAYVISITS_BAYS"))
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "events.jsonl")
	// ~one event per bay per minute on average: sessions of every size.
	step := int64(60_000 / bays)
	evs := generate(t, in, 42, n, bays, max(step, 1), 30_000)
	want := reference(evs, 60_000)
	for _, p := range []int{1, 4} {
		out := filepath.Join(dir, fmt.Sprintf("out-p%d", p))
		start := time.Now()
		runJob(t, p, "--input", in, "--output", out, "--gap", "60s", "--max-out-of-order", "30s")
		t.Logf("p=%d: %d events, %d sessions in %v", p, n, len(want), time.Since(start))
		compare(t, committed(t, out), want)
	}
}

// TestBayVisitsTouchingIntervalsStaySeparate pins the half-open rule: an
// event exactly gap after the previous one starts a new visit.
func TestBayVisitsTouchingIntervalsStaySeparate(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "events.jsonl")
	content := `{"bay":"b1","ts":1000}
{"bay":"b1","ts":61000}
{"bay":"b3","ts":1000}
{"bay":"b3","ts":61000}
{"bay":"b3","ts":60999}
{"bay":"b2","ts":500}
`
	if err := os.WriteFile(in, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	runJob(t, 2, "--input", in, "--output", filepath.Join(dir, "out"), "--gap", "60s")
	compare(t, committed(t, filepath.Join(dir, "out")), []string{
		`{"bay":"b1","start":1000,"end":61000,"count":1}`,
		`{"bay":"b1","start":61000,"end":121000,"count":1}`,
		`{"bay":"b2","start":500,"end":60500,"count":1}`,
		`{"bay":"b3","start":1000,"end":121000,"count":3}`,
	})
}
