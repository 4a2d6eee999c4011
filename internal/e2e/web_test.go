package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestObservability runs one keyedcount job on `weir local` and checks
// what an operator sees of it: /metrics, `weir tail` and the status page
// in a real browser. One cluster serves all three to keep the suite fast.
func TestObservability(t *testing.T) {
	api, web := startLocalWeb(t, 2, 4)
	id := runDetached(t, api, "-p", "2", "--checkpoint-interval", "1s", bins.keyedcount, "--",
		"--events", "1000000000", "--keys", "50", "--rate", "2000", "--output", t.TempDir())
	waitFor(t, 30*time.Second, "the job to run", func() bool { return jobStatusOf(t, api, id).State == "RUNNING" })
	base := "http://" + web

	t.Run("api", func(t *testing.T) {
		var jobs struct {
			Jobs []struct{ ID string } `json:"jobs"`
		}
		getJSON(t, base+"/api/v1/jobs", &jobs)
		if len(jobs.Jobs) != 1 || jobs.Jobs[0].ID != id {
			t.Fatalf("GET /api/v1/jobs = %+v, want job %s", jobs, id)
		}
		// An unknown job is a 404 with the reason, as docs/api.md says.
		for _, path := range []string{"/api/v1/jobs/nosuchjob", "/api/v1/jobs/nosuchjob/checkpoints", "/api/v1/jobs/nosuchjob/detail"} {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "nosuchjob") {
				t.Errorf("GET %s = %s %s, want 404 naming the job", path, resp.Status, b)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		waitFor(t, 20*time.Second, "records and a checkpoint in /metrics", func() bool {
			fams := scrape(t, base+"/metrics")
			out := counterOf(fams["weir_operator_records_out_total"], map[string]string{"job": id, "operator": "Source: Generate"})
			in := counterOf(fams["weir_operator_records_in_total"], map[string]string{"job": id, "operator": "Count -> FileSink"})
			cks := histogramCount(fams["weir_checkpoint_duration_seconds"], map[string]string{"job": id})
			tasks := histogramCount(fams["weir_checkpoint_task_duration_seconds"], map[string]string{"job": id, "operator": "Count -> FileSink"})
			// The workers' own metrics, relayed from the job processes.
			workerOut := counterOf(fams["weir_task_records_out_total"], map[string]string{"job": id, "vertex": "0", "subtask": "0"})
			return out > 0 && in > 0 && cks > 0 && tasks > 0 && workerOut > 0
		})
	})

	t.Run("tail", func(t *testing.T) {
		stdout, stderr, code := weir(t, 30*time.Second, "tail", "--coordinator", api, id, "events", "--limit", "5")
		if code != 0 {
			t.Fatalf("weir tail exited %d: %s", code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if len(lines) != 5 {
			t.Fatalf("weir tail --limit 5 printed %d lines:\n%s", len(lines), stdout)
		}
		for _, l := range lines {
			var key string
			if err := json.Unmarshal([]byte(l), &key); err != nil || !strings.HasPrefix(key, "k") {
				t.Fatalf("tail line %q is not a JSON key string (%v)", l, err)
			}
		}
	})

	t.Run("browser", func(t *testing.T) { browse(t, base, id) })
}

// chromium finds Debian's chromium; without it the browser test skips,
// unless WEIR_REQUIRE_CHROMIUM says CI installed it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("WEIR_REQUIRE_CHROMIUM") != "" {
		t.Fatal("WEIR_REQUIRE_CHROMIUM is set but chromium is not installed (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium); set WEIR_REQUIRE_CHROMIUM=1 to fail instead")
	return ""
}

func browse(t *testing.T, base, id string) {
	exe := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 1000))
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	do := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, a); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	shots := screenshotDir(t)
	shoot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(shots, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
	poll := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}

	do("load the job page", chromedp.Navigate(base+"/jobs/"+id))
	nodes, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("#dag g.node").length`))
	if err != nil {
		t.Fatal(err)
	}
	var detail struct {
		Operators []struct{ Name string } `json:"operators"`
	}
	getJSON(t, base+"/api/v1/jobs/"+id+"/detail", &detail)
	if nodes != len(detail.Operators) || nodes != 2 {
		t.Fatalf("the job graph has %d nodes, want one per vertex (%d)", nodes, len(detail.Operators))
	}
	poll("non-zero throughput", `!["0/s", ""].includes(document.querySelector("#throughput").textContent.trim())`)
	poll("checkpoint rows", `document.querySelectorAll("#checkpoints tr.ck-row").length > 0`)
	do("start the tail", chromedp.Click("#tail-toggle"))
	poll("tailed records", `document.querySelectorAll("#tail-list li.tail-record").length >= 12`)
	shoot("job.png")

	// The page's own POST carries its CSRF token through the guard.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`(window.confirm = () => true, true)`)); err != nil {
		t.Fatal(err)
	}
	do("take a savepoint from the page", chromedp.Click("#take-savepoint"))
	poll("the savepoint's location", `document.getElementById("toast").textContent.startsWith("Savepoint written to")`)

	// After the job page, the overview's trend has a few seconds to show.
	do("load the overview", chromedp.Navigate(base+"/"))
	poll("the job row with throughput", `document.querySelectorAll(".job-row").length === 1 && document.querySelector(".job-row .job-throughput").textContent !== "0/s"`)
	poll("both workers", `document.querySelectorAll(".worker-row").length === 2`)
	shoot("overview.png")
}

// screenshotDir is $WEIR_SCREENSHOT_DIR (to refresh docs/screenshots) or
// a temporary directory that outlives the test, so its path can be opened.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("WEIR_SCREENSHOT_DIR"); d != "" {
		return d
	}
	d, err := os.MkdirTemp("", "weir-screenshots")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, b)
	}
}

// scrape parses a /metrics page with Prometheus's own text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

func counterOf(f *dto.MetricFamily, labels map[string]string) float64 {
	for _, m := range f.GetMetric() {
		if labelsMatch(m, labels) {
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func histogramCount(f *dto.MetricFamily, labels map[string]string) uint64 {
	for _, m := range f.GetMetric() {
		if labelsMatch(m, labels) {
			return m.GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// standbyPage checks that the standby at web links to the leader's page.
func standbyPage(t *testing.T, web, leaderWeb string) {
	t.Helper()
	resp, err := http.Get("http://" + web + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if want := `href="http://` + leaderWeb + `/"`; !strings.Contains(string(b), "Standby coordinator") || !strings.Contains(string(b), want) {
		t.Fatalf("the standby's page does not link to the leader (%s):\n%s", want, b)
	}
}
