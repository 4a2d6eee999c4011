package web

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fake is a Backend with one running job.
type fake struct {
	cancelled []string
	// insecure and plaintextData are the overview's warnings, kek its
	// key-encryption key ("" for a key file).
	insecure, plaintextData bool
	kek                     string
}

func (f *fake) Overview(context.Context) (*Overview, error) {
	return &Overview{Cluster: Cluster{Self: "c1", Leading: true, Coordinators: []Coordinator{{ID: "c1", API: "127.0.0.1:1", Leader: true, Self: true}},
		Insecure: f.insecure, PlaintextDataPlane: f.plaintextData, KEK: cmp.Or(f.kek, "key file /d/kek")},
		Workers: []WorkerRow{{ID: "w1", Host: "h", Slots: 4, Used: 1}},
		Jobs:    []JobRow{{ID: "j1", Name: "counts", State: "RUNNING", Throughput: 1500, History: []float64{1, 2, 3}}}}, nil
}

func (f *fake) Job(_ context.Context, id string) (*Job, error) {
	if id != "j1" {
		return nil, status.Errorf(codes.NotFound, "no job %s", id)
	}
	return &Job{JobRow: JobRow{ID: "j1", Name: "counts", State: "RUNNING", Throughput: 1500},
		Operators: []Operator{{VertexID: 0, Name: "Source: gen", Source: true, Parallelism: 2, TapUID: "gen", OutRate: 1500,
			Lag: []PartitionLag{{Topic: "in", Partition: 0, Records: ptr(int64(1234)), BehindMs: ptr(int64(2000))}, {Topic: "in", Partition: 1}}},
			{VertexID: 1, Name: "Count -> Sink", Parallelism: 2, InRate: 1500, WatermarkEnded: true}},
		Edges:       []Edge{{From: 0, To: 1, Partitioning: "HASH"}},
		Checkpoints: []Checkpoint{{ID: 7, Status: "COMPLETED", DurationMs: 40, SizeBytes: 2048}},
		Exceptions:  []Exception{{At: time.Unix(0, 0), Attempt: 1, Text: "boom <script>"}}}, nil
}

func ptr[T any](v T) *T { return &v }

func (f *fake) Worker(context.Context, string) (*Worker, error) {
	return &Worker{WorkerRow: WorkerRow{ID: "w1", Slots: 4, Used: 1}, Memory: &weirv1.MemoryStats{RssBytes: 1 << 20}}, nil
}

func (f *fake) CancelJob(_ context.Context, id string) error {
	f.cancelled = append(f.cancelled, id)
	return nil
}

func (f *fake) Savepoint(context.Context, string) (string, error) { return "file:///sp/1", nil }

func (f *fake) Tail(_ context.Context, r *weirv1.TailRequest, send func(*weirv1.TapRecord) error) error {
	if r.Operator != "gen" {
		return status.Error(codes.InvalidArgument, "no operator "+r.Operator)
	}
	for i := range r.Limit {
		if err := send(&weirv1.TapRecord{Subtask: i, Json: `"k1"`}); err != nil {
			return err
		}
	}
	return nil
}

func serve(t *testing.T) (*httptest.Server, *fake) {
	f := &fake{}
	srv := httptest.NewServer(New(f, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv, f
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestInsecureBanners: the overview says loudly when the cluster serves
// plaintext beyond loopback and when only its data plane does.
func TestInsecureBanners(t *testing.T) {
	for _, tc := range []struct {
		insecure, plaintextData bool
		kek                     string
		want, notWant           []string
	}{
		{false, false, "", nil, []string{"Insecure: no TLS", "Insecure: data plane in plaintext", "not encrypted"}},
		{true, false, "", []string{"Insecure: no TLS"}, []string{"Insecure: data plane in plaintext"}},
		{false, true, "", []string{"Insecure: data plane in plaintext", "--data-plane-tls off"}, []string{"Insecure: no TLS"}},
		{false, false, "none", []string{"State at rest is not encrypted", "--kek none"}, []string{"Insecure"}},
	} {
		f := &fake{insecure: tc.insecure, plaintextData: tc.plaintextData, kek: tc.kek}
		srv := httptest.NewServer(New(f, slog.New(slog.DiscardHandler)))
		code, body := get(t, srv.URL+"/")
		srv.Close()
		if code != 200 {
			t.Fatalf("GET /: %d", code)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("insecure=%v plaintextData=%v: the page lacks %q", tc.insecure, tc.plaintextData, w)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(body, w) {
				t.Errorf("insecure=%v plaintextData=%v: the page says %q", tc.insecure, tc.plaintextData, w)
			}
		}
	}
}

func TestPages(t *testing.T) {
	srv, _ := serve(t)
	for _, tc := range []struct {
		path string
		code int
		want []string
	}{
		{"/", 200, []string{`href="/jobs/j1"`, "counts", `class="badge s-running"`, "1.5k/s", `class="badge s-leader"`, "w1"}},
		{"/jobs/j1", 200, []string{`<g class="node source" data-vertex="0"`, `data-vertex="1"`, ">hash</text>", "boom &lt;script&gt;", `<option value="gen">Source: gen</option>`, `class="ck-row"`,
			`title="unknown: some subtask has no watermark yet"`, ">end of input<", ">1.23k<",
			`title="unknown: the partition's end is not known yet"`, `title="no record read from it since the job (re)started"`}},
		{"/jobs/nope", 404, []string{"no job nope"}},
		{"/workers/w1", 200, []string{"1.0 MiB"}},
		{"/static/style.css", 200, []string{"--accent"}},
	} {
		code, body := get(t, srv.URL+tc.path)
		if code != tc.code {
			t.Errorf("GET %s = %d, want %d", tc.path, code, tc.code)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s lacks %q", tc.path, w)
			}
		}
	}
	// Exactly one node per vertex.
	if _, body := get(t, srv.URL+"/jobs/j1"); strings.Count(body, `<g class="node`) != 2 {
		t.Errorf("job page draws %d nodes, want 2", strings.Count(body, `<g class="node`))
	}
}

func TestJSONAPI(t *testing.T) {
	srv, f := serve(t)
	code, body := get(t, srv.URL+"/api/v1/jobs/j1/detail")
	var j Job
	if code != 200 || json.Unmarshal([]byte(body), &j) != nil || len(j.Graph.Nodes) != 2 || len(j.Graph.Edges) != 1 {
		t.Fatalf("detail = %d %s", code, body)
	}
	// What a source cannot know yet is null, not a made-up number.
	if !strings.Contains(body, `"lag":[{"topic":"in","partition":0,"records":1234,"behind_ms":2000},{"topic":"in","partition":1,"records":null,"behind_ms":null}]`) {
		t.Errorf("detail's lag: %s", body)
	}
	resp, err := http.Post(srv.URL+"/api/v1/jobs/j1/cancel", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(f.cancelled) != 1 || f.cancelled[0] != "j1" {
		t.Fatalf("cancel: %d, backend saw %v", resp.StatusCode, f.cancelled)
	}
	resp, err = http.Post(srv.URL+"/api/v1/jobs/j1/savepoint", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"location":"file:///sp/1"`) {
		t.Fatalf("savepoint: %s", b)
	}
}

// events reads n Server-Sent Events.
func events(t *testing.T, url string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []string
	var ev, data strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && len(out) < n {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			ev.WriteString(strings.TrimPrefix(line, "event: "))
		case strings.HasPrefix(line, "data: "):
			if data.Len() > 0 {
				data.WriteString("\n")
			}
			data.WriteString(strings.TrimPrefix(line, "data: "))
		case line == "":
			out = append(out, ev.String()+" "+data.String())
			ev.Reset()
			data.Reset()
		}
	}
	return out
}

func TestLiveSectionsAndTail(t *testing.T) {
	srv, _ := serve(t)
	ev := events(t, srv.URL+"/events/jobs/j1", 1)
	if len(ev) != 1 || !strings.HasPrefix(ev[0], "live ") || !strings.Contains(ev[0], `data-vertex="1"`) || strings.Contains(ev[0], "<html") {
		t.Fatalf("live event = %q", ev)
	}
	recs := events(t, srv.URL+"/api/v1/jobs/j1/tail?operator=gen&limit=3", 3)
	if len(recs) != 3 {
		t.Fatalf("tail events = %q", recs)
	}
	for i, e := range recs {
		var r weirv1.TapRecord
		data, ok := strings.CutPrefix(e, "record ")
		if !ok || protojson.Unmarshal([]byte(data), &r) != nil || r.Subtask != int32(i) || r.Json != `"k1"` {
			t.Fatalf("tail event %d = %q", i, e)
		}
	}
	bad := events(t, srv.URL+"/api/v1/jobs/j1/tail?operator=nope", 1)
	if len(bad) != 1 || bad[0] != "error no operator nope" {
		t.Fatalf("failed tail = %q", bad)
	}
}
