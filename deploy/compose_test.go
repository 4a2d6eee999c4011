package deploy

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-run/weir/internal/freeport"
)

// requireDockerEnv makes a missing Docker Engine (or compose tool) a
// failure instead of a skip; .ci/run sets it.
const requireDockerEnv = "WEIR_REQUIRE_DOCKER"

// The keyedcount job the HA test runs: long enough to outlive every
// disruption (about 100 s at the rate cap), exact at the end.
const (
	haEvents = 1_500_000
	haKeys   = 100
	haRate   = 15_000
)

// TestComposeHA runs the compose layout (deploy/compose) on real
// containers: it builds the image, starts 3 etcd members, 2 coordinators
// and 3 workers with TLS, submits keyedcount with weir-cli, then kills a
// worker, cuts the leader coordinator off the network, stops an etcd member
// and restarts the workers one by one. The job's committed output must be
// exact at the end, and compose down must leave nothing behind.
func TestComposeHA(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of containers")
	}
	c := newComposeCluster(t)
	start := time.Now()
	c.up()
	t.Logf("compose up to every daemon healthy: %v", time.Since(start).Round(time.Millisecond))

	// The status page answers on the host.
	for i, port := range c.httpPorts {
		h := c.health(port)
		if h == nil || h.ID != fmt.Sprintf("coordinator-%d", i+1) {
			t.Fatalf("https://localhost:%d/healthz: %+v", port, h)
		}
	}
	if code := c.httpStatus(c.httpPorts[0], "/login"); code != http.StatusOK {
		t.Fatalf("status page /login on the host: %d", code)
	}

	out := c.compose("run", "--rm", "weir-cli", "run", "--detach", "-p", "2", "--checkpoint-interval", "1s",
		"/jobs/keyedcount", "--", "--events", strconv.Itoa(haEvents), "--keys", strconv.Itoa(haKeys),
		"--rate", strconv.Itoa(haRate), "--output", "/shared/out/keyedcount")
	lines := strings.Fields(strings.TrimSpace(out))
	if len(lines) == 0 {
		t.Fatalf("weir run printed no job id: %q", out)
	}
	job := lines[len(lines)-1]
	c.waitRunning(job, 0, time.Minute)
	t.Logf("job %s running", job)

	// 1. A worker hosting a task is killed: the job restarts on the others.
	st := c.status(job)
	victim := st.Tasks[0].Worker
	at := time.Now()
	c.docker("kill", c.container(victim))
	c.waitRunning(job, st.Attempt, time.Minute)
	t.Logf("kill -9 %s: the job runs again (attempt %d) after %v", victim, c.status(job).Attempt, time.Since(at).Round(time.Millisecond))
	c.docker("start", c.container(victim))
	c.waitHealthy(victim, time.Minute)

	// 2. The leader coordinator is cut off the network: it steps down (its
	// lease expires and it logs so) and the other leads.
	leader, standby := c.leaders()
	st = c.status(job)
	at = time.Now()
	c.docker("network", "disconnect", c.network, c.container(leader))
	c.waitFor(30*time.Second, leader+" replaced", func() bool {
		h := c.health(c.port(standby))
		return h != nil && h.Leader
	})
	t.Logf("%s cut off: %s leads after %v", leader, standby, time.Since(at).Round(time.Millisecond))
	c.waitRunning(job, 0, time.Minute)
	if a := c.status(job).Attempt; a == st.Attempt {
		t.Logf("the new leader re-attached to the job (attempt %d) after %v", a, time.Since(at).Round(time.Millisecond))
	} else {
		t.Logf("the new leader restarted the job (attempt %d) after %v", a, time.Since(at).Round(time.Millisecond))
	}
	c.waitFor(30*time.Second, leader+" logs that it lost leadership", func() bool {
		return strings.Contains(c.logs(leader), `msg="lost leadership"`)
	})
	// Back at its address (its listener's) and under its service name,
	// which compose gave it and a reconnect does not restore by itself.
	c.docker("network", "connect", "--ip", c.ips[leader], "--alias", leader, c.network, c.container(leader))
	reconnected := time.Now()
	// A standby can take over at once only when it is queued in the
	// election again, which waits for its etcd client to reconnect.
	c.waitFor(30*time.Second, leader+" back as a standby, queued in the election", func() bool {
		h := c.health(c.port(leader))
		return h != nil && !h.Leader && h.Candidate
	})
	t.Logf("%s back on the network: queued as a candidate after %v", leader, time.Since(reconnected).Round(time.Millisecond))

	// 2b. The new leader is stopped (SIGTERM): it resigns, so the other
	// leads at once, well before its lease (2 s) could have expired, and it
	// exits 0.
	at = time.Now()
	c.docker("stop", "-t", "20", c.container(standby))
	stopped := time.Since(at)
	c.waitFor(30*time.Second, leader+" leading again", func() bool {
		h := c.health(c.port(leader))
		return h != nil && h.Leader
	})
	took := time.Since(at)
	t.Logf("docker stop %s: it exited after %v, %s led %v after docker stop began", standby, stopped.Round(time.Millisecond), leader, took.Round(time.Millisecond))
	if code := strings.TrimSpace(c.docker("inspect", "-f", "{{.State.ExitCode}}", c.container(standby))); code != "0" {
		t.Errorf("%s exited %s on SIGTERM, want 0", standby, code)
	}
	if took > stopped+1200*time.Millisecond {
		t.Errorf("%s led %v after %s stopped: it did not resign (a lease expiry takes 1.3-2 s)\n--- %s\n%s\n--- %s\n%s",
			leader, took-stopped, standby, standby, tail(c.logs(standby), 12), leader, tail(c.logs(leader), 12))
	}
	c.docker("start", c.container(standby))
	c.waitHealthy(standby, time.Minute)
	c.waitRunning(job, 0, time.Minute)

	// 3. An etcd member stops: the others keep a quorum, checkpoints go on.
	done := c.lastCheckpoint(job)
	at = time.Now()
	c.docker("stop", c.container("etcd-3"))
	c.waitFor(time.Minute, "a checkpoint with etcd-3 down", func() bool { return c.lastCheckpoint(job) > done })
	t.Logf("etcd-3 stopped: checkpoint %d completed %v later", c.lastCheckpoint(job), time.Since(at).Round(time.Millisecond))
	if s := c.status(job).State; s != "RUNNING" {
		t.Fatalf("job %s with etcd-3 down, want RUNNING", s)
	}
	c.docker("start", c.container("etcd-3"))
	c.waitHealthy("etcd-3", time.Minute)

	// 4. Rolling restart: each worker stops on SIGTERM (its job processes
	// with it) and comes back; the job runs again before the next.
	for _, w := range []string{"worker-1", "worker-2", "worker-3"} {
		at := time.Now()
		c.docker("restart", "-t", "20", c.container(w))
		c.waitHealthy(w, time.Minute)
		c.waitRunning(job, 0, time.Minute)
		t.Logf("restart %s: healthy and the job running after %v", w, time.Since(at).Round(time.Millisecond))
	}
	if s := c.status(job).State; s != "RUNNING" {
		t.Fatalf("the job is %s after the disruptions; it must outlive them (raise haEvents)", s)
	}

	c.waitFor(5*time.Minute, "the job to finish", func() bool {
		s := c.status(job)
		if s.State == "FAILED" || s.State == "CANCELED" {
			t.Fatalf("job %s: %+v", s.State, s)
		}
		return s.State == "FINISHED"
	})
	st = c.status(job)
	t.Logf("job finished: attempt %d, %d restarts, %v after the start", st.Attempt, st.Restarts, time.Since(start).Round(time.Second))
	c.checkOutput()

	c.down()
}

// composeCluster is one compose project of deploy/compose.
type composeCluster struct {
	t         *testing.T
	tool      []string // docker compose or docker-compose
	project   string
	network   string
	env       []string
	httpPorts []int
	ips       map[string]string // coordinator service: its fixed address
	client    *http.Client      // trusts the cluster CA, once up
	ids       map[string]string // service: container id
}

func newComposeCluster(t *testing.T) *composeCluster {
	t.Helper()
	require := os.Getenv(requireDockerEnv) == "1"
	skip := func(why string) {
		if require {
			t.Fatalf("%s, and $%s=1", why, requireDockerEnv)
		}
		t.Skipf("%s (set $%s=1 to make this a failure)", why, requireDockerEnv)
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		skip(fmt.Sprintf("no Docker Engine answers: %v: %s", err, bytes.TrimSpace(out)))
	}
	var tool []string
	if exec.Command("docker", "compose", "version").Run() == nil {
		tool = []string{"docker", "compose"}
	} else if exec.Command("docker-compose", "version").Run() == nil {
		tool = []string{"docker-compose"}
	} else {
		skip("neither docker compose nor docker-compose is installed")
	}

	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tag := "weir:deploytest"
	build := exec.Command(filepath.Join(root, "deploy/image/build.sh"), tag)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("deploy/image/build.sh: %v\n%s", err, out)
	} else {
		t.Logf("%s", bytes.TrimSpace(out))
	}
	checkImageSize(t, tag)

	jobs := t.TempDir()
	if err := os.Chmod(jobs, 0o755); err != nil {
		t.Fatal(err)
	}
	gob := exec.Command("go", "build", "-o", filepath.Join(jobs, "keyedcount"), "./jobs/keyedcount")
	gob.Dir, gob.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gob.CombinedOutput(); err != nil {
		t.Fatalf("build keyedcount: %v\n%s", err, out)
	}

	n := rand.IntN(150) + 100
	c := &composeCluster{
		t: t, tool: tool, project: fmt.Sprintf("weirdeploy%d", n),
		httpPorts: []int{freePort(t), freePort(t)},
		ids:       map[string]string{},
	}
	c.network = c.project + "_weir"
	net := fmt.Sprintf("10.218.%d", n)
	c.ips = map[string]string{"coordinator-1": net + ".11", "coordinator-2": net + ".12"}
	c.env = append(os.Environ(), "WEIR_IMAGE="+tag, "WEIR_NET="+net, "WEIR_JOBS_DIR="+jobs,
		fmt.Sprintf("WEIR_HTTP_PORT_1=%d", c.httpPorts[0]), fmt.Sprintf("WEIR_HTTP_PORT_2=%d", c.httpPorts[1]))
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range []string{"coordinator-1", "coordinator-2", "worker-1", "worker-2", "worker-3", "etcd-1"} {
				t.Logf("--- %s (last lines)\n%s", s, tail(c.logs(s), 30))
			}
		}
		c.runCompose("down", "-v", "--remove-orphans", "-t", "5")
		// The image is rebuilt each run: drop it rather than leave one
		// untagged image per run behind.
		exec.Command("docker", "image", "rm", "-f", tag).Run()
	})
	return c
}

// checkImageSize fails when the image is 60 MB or more.
func checkImageSize(t *testing.T, tag string) {
	t.Helper()
	out, err := exec.Command("docker", "image", "inspect", "-f", "{{.Size}}", tag).Output()
	if err != nil {
		t.Fatal(err)
	}
	size, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if size >= 60e6 {
		t.Fatalf("image %s is %.1f MB, want under 60 MB", tag, float64(size)/1e6)
	}
	t.Logf("image %s: %.1f MB", tag, float64(size)/1e6)
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Port("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runCompose runs the compose tool on the project, returning its output
// and error.
func (c *composeCluster) runCompose(args ...string) (string, error) {
	full := append(append(slices.Clone(c.tool[1:]), "-p", c.project, "-f", "compose/compose.yaml"), args...)
	cmd := exec.Command(c.tool[0], full...)
	cmd.Env = c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v\n%s%s", c.tool[0], strings.Join(full, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

func (c *composeCluster) compose(args ...string) string {
	c.t.Helper()
	out, err := c.runCompose(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *composeCluster) docker(args ...string) string {
	c.t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// container is the id of service's container.
func (c *composeCluster) container(service string) string {
	c.t.Helper()
	if id, ok := c.ids[service]; ok {
		return id
	}
	id := strings.TrimSpace(c.compose("ps", "-q", service))
	if id == "" {
		c.t.Fatalf("no container for %s", service)
	}
	c.ids[service] = id
	return id
}

func (c *composeCluster) logs(service string) string {
	id := c.ids[service]
	if id == "" {
		out, _ := c.runCompose("ps", "-q", service)
		id = strings.TrimSpace(out)
	}
	if id == "" {
		return ""
	}
	out, _ := exec.Command("docker", "logs", id).CombinedOutput()
	return string(out)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var daemons = []string{"etcd-1", "etcd-2", "etcd-3", "coordinator-1", "coordinator-2", "worker-1", "worker-2", "worker-3"}

// up starts the layout, waits for every daemon's health check to pass and
// trusts the cluster CA the certs service made.
func (c *composeCluster) up() {
	c.t.Helper()
	c.compose("up", "-d")
	for _, s := range daemons {
		c.waitHealthy(s, 2*time.Minute)
	}
	certs := strings.TrimSpace(c.compose("ps", "-q", "certs"))
	ca := c.copyOut(certs, "/certs/ca.crt")
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca["ca.crt"]) {
		c.t.Fatalf("no CA certificate in the certs volume")
	}
	c.client = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"},
	}}
}

// copyOut reads path (a file or directory) out of a container: file name
// (relative to path's parent) to content.
func (c *composeCluster) copyOut(container, path string) map[string][]byte {
	c.t.Helper()
	out, err := exec.Command("docker", "cp", container+":"+path, "-").Output()
	if err != nil {
		c.t.Fatalf("docker cp %s:%s: %v", container, path, err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			c.t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				c.t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
}

func (c *composeCluster) waitHealthy(service string, within time.Duration) {
	c.t.Helper()
	id := c.container(service)
	c.waitFor(within, service+" healthy", func() bool {
		out, err := exec.Command("docker", "inspect", "-f", "{{.State.Health.Status}}", id).Output()
		return err == nil && strings.TrimSpace(string(out)) == "healthy"
	})
}

func (c *composeCluster) waitFor(within time.Duration, what string, ok func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			c.t.Fatalf("waited %v for %s", within, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// healthz is a coordinator's /healthz.
type healthz struct {
	ID        string `json:"id"`
	Leader    bool   `json:"leader"`
	Candidate bool   `json:"candidate"`
}

// health reads the coordinator's /healthz through its port on the host;
// nil when it does not answer.
func (c *composeCluster) health(port int) *healthz {
	resp, err := c.client.Get(fmt.Sprintf("https://localhost:%d/healthz", port))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var h healthz
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&h) != nil {
		return nil
	}
	return &h
}

func (c *composeCluster) httpStatus(port int, path string) int {
	c.t.Helper()
	resp, err := c.client.Get(fmt.Sprintf("https://localhost:%d%s", port, path))
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (c *composeCluster) port(coordinator string) int {
	if coordinator == "coordinator-1" {
		return c.httpPorts[0]
	}
	return c.httpPorts[1]
}

// leaders returns the leading coordinator and the standby.
func (c *composeCluster) leaders() (leader, standby string) {
	c.t.Helper()
	c.waitFor(30*time.Second, "a leader", func() bool {
		for _, s := range []string{"coordinator-1", "coordinator-2"} {
			if h := c.health(c.port(s)); h != nil && h.Leader {
				leader = s
				return true
			}
		}
		return false
	})
	if leader == "coordinator-1" {
		return leader, "coordinator-2"
	}
	return leader, "coordinator-1"
}

// cli runs the weir CLI as the cluster's admin inside etcd-1's container
// (every container has weir and the certificates; etcd-1 stays up).
func (c *composeCluster) cli(args ...string) ([]byte, error) {
	full := append([]string{"exec", "-e", "WEIR_TLS_CERT=/certs/admin.crt", "-e", "WEIR_TLS_KEY=/certs/admin.key",
		"-e", "WEIR_COORDINATOR=coordinator-1:7070,coordinator-2:7070", c.container("etcd-1"), "weir"}, args...)
	return exec.Command("docker", full...).Output()
}

// jobStatus is `weir status -o json`.
type jobStatus struct {
	State    string `json:"state"`
	Attempt  int64  `json:"attempt"`
	Restarts int32  `json:"restarts"`
	Error    string `json:"error"`
	Tasks    []struct {
		Worker string `json:"worker"`
		State  string `json:"state"`
	} `json:"tasks"`
}

// status is the job's status; a failed call (a coordinator changing
// leaders) reads as state "UNKNOWN".
func (c *composeCluster) status(job string) jobStatus {
	out, err := c.cli("status", "-o", "json", job)
	var s jobStatus
	if err != nil || json.Unmarshal(out, &s) != nil {
		return jobStatus{State: "UNKNOWN"}
	}
	return s
}

// waitRunning waits until the job's attempt is past after and it and all
// its tasks are RUNNING.
func (c *composeCluster) waitRunning(job string, after int64, within time.Duration) {
	c.t.Helper()
	c.waitFor(within, fmt.Sprintf("job %s running after attempt %d", job, after), func() bool {
		s := c.status(job)
		switch s.State {
		case "FINISHED", "FAILED", "CANCELED":
			c.t.Fatalf("job %s while waiting for it to run: %+v", s.State, s)
		case "RUNNING":
		default:
			return false
		}
		if s.Attempt <= after || len(s.Tasks) == 0 {
			return false
		}
		for _, task := range s.Tasks {
			if task.State != "RUNNING" {
				return false
			}
		}
		return true
	})
}

// lastCheckpoint is the id of the job's newest completed checkpoint, 0 if
// none or when the call fails.
func (c *composeCluster) lastCheckpoint(job string) int64 {
	out, err := c.cli("checkpoints", "-o", "json", job)
	if err != nil {
		return 0
	}
	var cks []struct {
		ID     int64  `json:"id"`
		Status string `json:"status"`
	}
	if json.Unmarshal(out, &cks) != nil {
		return 0
	}
	var last int64
	for _, ck := range cks {
		if ck.Status == "COMPLETED" && ck.ID > last {
			last = ck.ID
		}
	}
	return last
}

// checkOutput reads the file sink's committed output from the shared
// volume: every key exactly once, with its exact count.
func (c *composeCluster) checkOutput() {
	c.t.Helper()
	files := c.copyOut(c.container("worker-1"), "/shared/out/keyedcount")
	counts := map[string]int64{}
	var parts []string
	for name, b := range files {
		base := filepath.Base(name)
		if !strings.HasPrefix(base, "part-") {
			continue // in-progress or pending files are not output
		}
		parts = append(parts, base)
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), "\t")
			n, err := strconv.ParseInt(v, 10, 64)
			if !ok || err != nil {
				c.t.Fatalf("%s: bad line %q", name, sc.Text())
			}
			if _, dup := counts[k]; dup {
				c.t.Fatalf("key %s is in the output twice", k)
			}
			counts[k] = n
		}
	}
	if len(counts) != haKeys {
		c.t.Fatalf("%d keys in the output (%v), want %d", len(counts), parts, haKeys)
	}
	for i := range haKeys {
		if k := "k" + strconv.Itoa(i); counts[k] != haEvents/haKeys {
			c.t.Fatalf("%s counted %d, want %d", k, counts[k], haEvents/haKeys)
		}
	}
	slices.Sort(parts)
	c.t.Logf("output exact: %d keys × %d in %v", haKeys, haEvents/haKeys, parts)
}

// down removes the project and checks that no container, network or volume
// of it is left.
func (c *composeCluster) down() {
	c.t.Helper()
	c.compose("down", "-v", "--remove-orphans", "-t", "10")
	label := "label=com.docker.compose.project=" + c.project
	for _, kind := range [][]string{{"ps", "-a", "-q"}, {"network", "ls", "-q"}, {"volume", "ls", "-q"}} {
		args := append(slices.Clone(kind), "--filter", label)
		if out := strings.TrimSpace(c.docker(args...)); out != "" {
			c.t.Errorf("after compose down, docker %s lists %s", strings.Join(kind, " "), out)
		}
	}
}
