package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// TestLocalTLS: weir local --tls runs a job across its two workers with
// TLS everywhere, using the admin certificate it made; a plaintext client
// and a page request without a certificate are refused; and a stranger
// sending huge stream headers to a job process's data port is refused
// before they are read, without growing the process or the log.
func TestLocalTLS(t *testing.T) {
	dir := t.TempDir()
	api, httpAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, "weir local --tls", "local", "--tls", "--data-dir", dir, "--api", api, "--http", httpAddr, "--workers", "2", "--slots", "2")
	certs := filepath.Join(dir, "certs")
	waitFor(t, 30*time.Second, "weir local to make its certificates", func() bool {
		_, err := os.Stat(filepath.Join(certs, "local-admin.key"))
		return err == nil
	})
	t.Setenv("WEIR_TLS_CA", filepath.Join(certs, "ca.crt"))
	t.Setenv("WEIR_TLS_CERT", filepath.Join(certs, "local-admin.crt"))
	t.Setenv("WEIR_TLS_KEY", filepath.Join(certs, "local-admin.key"))
	waitFor(t, 30*time.Second, "weir local to answer", func() bool { _, ok := listJobs(t, api); return ok })
	waitFor(t, 10*time.Second, "workers", func() bool { return len(listWorkers(t, api)) == 2 })

	if _, stderr, code := weir(t, 10*time.Second, "list", "--coordinator", api, "--tls-ca=", "--tls-cert=", "--tls-key="); code != 1 || !strings.Contains(stderr, "set --tls-ca") {
		t.Errorf("a plaintext weir list: %d %q", code, stderr)
	}
	// The page: HTTPS; /healthz is public, the API needs a certificate.
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(certs, "ca.crt"))
	pool.AppendCertsFromPEM(ca)
	anon := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for path, want := range map[string]int{"/healthz": 200, "/api/v1/overview": 401} {
		resp, err := anon.Get("https://" + httpAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without a certificate: %d, want %d", path, resp.StatusCode, want)
		}
	}

	// A browser without a certificate logs in with a viewer token: it may
	// read the page but not cancel.
	tokOut, stderr, code := weir(t, 20*time.Second, "token", "create", "--name", "web", "--role", "viewer", "--coordinator", api)
	if code != 0 {
		t.Fatalf("weir token create: %s", stderr)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Timeout: 5 * time.Second, Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := "https://" + httpAddr
	resp, err := browser.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("the login page has no CSRF field:\n%s", page)
	}
	resp, err = browser.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "token": {strings.TrimSpace(tokOut)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/" {
		t.Fatalf("login with a viewer token ended at %s with %d, want the overview", resp.Request.URL, resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", base+"/api/v1/jobs/nope/cancel", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("X-Weir-Csrf", string(m[1]))
	if resp, err = browser.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("a viewer's browser session cancelling: %d, want 403", resp.StatusCode)
	}
	resp, err = browser.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "token": {"weir_wrong"}})
	if err == nil {
		resp.Body.Close()
	}
	if err != nil || resp.StatusCode != 401 || resp.Request.URL.Path != "/login" {
		t.Errorf("a wrong token: %v %v, want the login page again with 401", resp.Request.URL, err)
	}

	// A job over both workers: its channels run TLS and carry the
	// attempt's secret.
	const events, keys = 400000, 1000
	out := filepath.Join(dir, "out")
	id := runDetached(t, api, "-p", "4", "--checkpoint-interval", "1s", bins.keyedcount, "--",
		"--events", strconv.Itoa(events), "--keys", strconv.Itoa(keys), "--rate", "20000", "--output", out)
	var pid int
	waitFor(t, 30*time.Second, "the job's tasks", func() bool {
		stdout, _, code := weir(t, 10*time.Second, "status", "--coordinator", api, id, "-o", "json")
		var st struct {
			State string
			Tasks []struct{ PID int }
		}
		if code != 0 || json.Unmarshal([]byte(stdout), &st) != nil || st.State != "RUNNING" || len(st.Tasks) == 0 {
			return false
		}
		pid = st.Tasks[0].PID
		return pid > 0
	})
	ports := listeningPorts(t, pid)
	if len(ports) == 0 {
		t.Fatalf("job process %d listens on no port", pid)
	}
	rssBefore := procStatusKB(t, pid, "VmRSS")
	logBefore := d.out.Len()

	// The data plane runs TLS with the process's own certificate: a
	// plaintext stream does not get through the handshake.
	for _, port := range ports {
		cc, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		stream, err := weirv1.NewDataServiceClient(cc).Exchange(ctx)
		if err == nil {
			_, err = stream.Recv()
		}
		cancel()
		cc.Close()
		if status.Code(err) != codes.Unavailable {
			t.Errorf("a plaintext DataService stream to port %d: %v, want Unavailable (no TLS handshake)", port, err)
		}
	}

	// The attack: 8 streams per port with a 60 MiB first message and no
	// channel secret, over TLS (which anyone may open: the channel secret
	// is what admits a producer).
	huge := make([]byte, 60<<20)
	var wg sync.WaitGroup
	for _, port := range ports {
		cc, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port),
			grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})),
			grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(100<<20)))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		for range 8 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				ctx = metadata.AppendToOutgoingContext(ctx, "weir-job", strings.Repeat("J", 4<<10))
				stream, err := weirv1.NewDataServiceClient(cc).Exchange(ctx)
				if err != nil {
					return
				}
				stream.Send(&weirv1.DataFrame{Payload: &weirv1.DataFrame_Batch{Batch: &weirv1.RecordBatch{Data: huge, Count: 1}}})
				stream.Recv()
			})
		}
	}
	wg.Wait()
	time.Sleep(time.Second) // any log line the attack caused reaches the worker's log
	rssAfter, peak := procStatusKB(t, pid, "VmRSS"), procStatusKB(t, pid, "VmHWM")
	logged := d.out.Len() - logBefore
	t.Logf("MEASURED job process %d under the header attack: RSS %d → %d KiB (peak %d KiB), %d bytes of log", pid, rssBefore, rssAfter, peak, logged)
	// The job runs at 20,000 events/s meanwhile, under GOGC 400 (its
	// slots' memory caps the heap): its own garbage may add tens of MiB
	// between collections. Frames the attack claims (up to GiBs) would
	// blow through both bounds.
	if rssAfter > rssBefore+40<<10 || peak > 100<<10 {
		t.Errorf("the attack grew the job process from %d to %d KiB (peak %d KiB)", rssBefore, rssAfter, peak)
	}
	if logged > 1<<20 {
		t.Errorf("the attack wrote %d bytes of log", logged)
	}

	waitFinished(t, api, id, 120*time.Second)
	checkCounts(t, out, keys, events/keys)

	// A team's submitter token allows one job that has not ended: a second
	// is refused, with nothing submitted, until the first ends.
	teamTok, stderr, code := weir(t, 20*time.Second, "token", "create", "--name", "team", "--role", "submitter", "--max-jobs", "1", "--coordinator", api)
	if code != 0 {
		t.Fatalf("weir token create --max-jobs: %s", stderr)
	}
	t.Setenv("WEIR_TLS_CERT", "")
	t.Setenv("WEIR_TLS_KEY", "")
	t.Setenv("WEIR_TOKEN", strings.TrimSpace(teamTok))
	long := []string{"-p", "2", bins.keyedcount, "--", "--events", "10000000", "--keys", "10", "--rate", "1000", "--output", t.TempDir()}
	first := runDetached(t, api, long...)
	before, _ := listJobs(t, api)
	_, stderr, code = weir(t, 30*time.Second, append([]string{"run", "--coordinator", api, "--detach"}, long...)...)
	if want := "team (token) has 1 jobs that have not ended, and its token allows 1 (--max-jobs)"; code == 0 || !strings.Contains(stderr, want) {
		t.Fatalf("a second job over the quota: exit %d, %q; want %q", code, stderr, want)
	}
	if after, _ := listJobs(t, api); len(after) != len(before) {
		t.Fatalf("a refused submit left a job: %d jobs, had %d", len(after), len(before))
	}
	if _, stderr, code := weir(t, 30*time.Second, "cancel", "--coordinator", api, first); code != 0 {
		t.Fatalf("cancel: %s", stderr)
	}
	waitFor(t, 30*time.Second, "the first job to end", func() bool { return jobStatusOf(t, api, first).State == "CANCELED" })
	second := runDetached(t, api, long...)
	weir(t, 30*time.Second, "cancel", "--coordinator", api, second)
}

// listeningPorts are the TCP ports process pid listens on (from /proc).
func listeningPorts(t *testing.T, pid int) []int {
	t.Helper()
	inodes := map[string]bool{}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] { // 0A: LISTEN
				continue
			}
			local := fields[1]
			p, err := strconv.ParseInt(local[strings.LastIndex(local, ":")+1:], 16, 32)
			if err == nil {
				ports = append(ports, int(p))
			}
		}
	}
	return ports
}

// procStatusKB reads a kB field of /proc/PID/status.
func procStatusKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
