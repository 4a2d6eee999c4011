package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weir-run/weir/bench/cluster"
	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/s3test"
)

// Binaries are the programs a campaign runs.
type Binaries struct {
	Weir, Versitygw                 string
	EOSCount, BayVisits, TwoRegions string
}

// component is one restartable process: the same command line (and so the
// same data directory and addresses) every start.
type component struct {
	name string
	bin  string
	args []string
	env  []string
	attr *syscall.SysProcAttr // nil, or a worker's group of its own
	d    *cluster.Daemon
}

// topology is the running cluster.
type topology struct {
	dir  string
	bins Binaries
	env  []string // AWS environment of coordinators, workers and versitygw

	mu    sync.Mutex // guards comps[*].d
	comps map[string]*component

	etcdClients []string // the members' own client addresses
	coordAPIs   map[string]string
	metrics     map[string]string // daemon name → its /metrics address (coordinators and workers)
	workers     []string          // worker ids
	kafkaAddr   string            // the broker's own address
	brokers     string            // the address clients use: its proxy
	storeURL    string            // through the store's proxy

	tp      *toxiproxy.ApiServer
	proxies map[string]*toxiproxy.Proxy // by name: "<client>-etcd<i>", "kafka", "store"

	// gids are the groups the workers run as, one each, when they can be
	// isolated (isolateErr says why not); disks the tmpfs data directories
	// mounted (diskErr says why none).
	gids       map[string]uint32
	isolateErr error
	disks      map[string]string
	diskErr    error

	etcd *clientv3.Client // the harness's own, straight to the members
	cli  cluster.Client
}

// Daemon names.
const (
	kafkaName = "kafka"
	storeName = "store"
)

func etcdName(i int) string { return fmt.Sprintf("e%d", i+1) }

// startTopology starts every process under dir and returns once both
// coordinators answer and every worker has registered. With smallDisks,
// each worker's data directory is a size-limited tmpfs of its own (see
// mountDisk), for the disk-full fault.
func startTopology(dir string, bins Binaries, workers, slots int, smallDisks bool) (_ *topology, err error) {
	t := &topology{dir: dir, bins: bins, comps: map[string]*component{}, coordAPIs: map[string]string{}, metrics: map[string]string{}, gids: map[string]uint32{}, disks: map[string]string{}, proxies: map[string]*toxiproxy.Proxy{}}
	defer func() {
		if err != nil {
			t.stop()
		}
	}()
	t.env = s3test.Env(filepath.Join(dir, "no-aws-config"))
	// Toxics log every interrupted link at trace level to zerolog's
	// global logger: keep the campaign's output readable.
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	t.tp = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	addrs, err := cluster.FreeAddrs(3*2 + 2 + 2*2 + 1 + workers)
	if err != nil {
		return nil, err
	}
	next := func() string { a := addrs[0]; addrs = addrs[1:]; return a }

	// etcd: three members.
	var peers, members []string
	for i := range 3 {
		t.etcdClients = append(t.etcdClients, next())
		peers = append(peers, next())
		members = append(members, fmt.Sprintf("%s=http://%s", etcdName(i), peers[i]))
	}
	for i := range 3 {
		t.add(etcdName(i), bins.Weir, nil, "etcd", "--name", etcdName(i), "--data-dir", filepath.Join(dir, etcdName(i)),
			"--client", t.etcdClients[i], "--peer", peers[i], "--initial-cluster", strings.Join(members, ","))
	}
	for i := range 3 {
		if err := t.start(etcdName(i)); err != nil {
			return nil, err
		}
	}
	if t.etcd, err = clientv3.New(etcdkeys.ClientConfig(t.etcdClients, nil)); err != nil {
		return nil, err
	}

	// The store: versitygw over a posix directory, behind a proxy.
	storeAddr := next()
	root := filepath.Join(dir, "s3")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	c := t.add(storeName, bins.Versitygw, nil, s3test.VersitygwArgs(storeAddr, root)...)
	c.env = []string{"HOME=" + root}
	if err := t.start(storeName); err != nil {
		return nil, err
	}
	if err := waitHTTP("http://"+storeAddr+"/", 20*time.Second); err != nil {
		return nil, fmt.Errorf("versitygw: %w", err)
	}
	if err := s3test.CreateBucket("http://"+storeAddr, s3test.Bucket); err != nil {
		return nil, fmt.Errorf("versitygw: create bucket: %w", err)
	}
	sp, err := t.proxy(storeName, storeAddr)
	if err != nil {
		return nil, err
	}
	t.storeURL = s3test.StoreURL("http://"+sp, s3test.Bucket)

	// The broker, advertising its proxy so that every client goes through it.
	t.kafkaAddr = next()
	if t.brokers, err = t.proxy(kafkaName, t.kafkaAddr); err != nil {
		return nil, err
	}
	t.add(kafkaName, bins.Weir, nil, "kafka", "--addr", t.kafkaAddr, "--advertise", t.brokers, "--data-dir", filepath.Join(dir, "kafka"))
	if err := t.start(kafkaName); err != nil {
		return nil, err
	}

	// Coordinators a (started first, so it leads) and b.
	var apis []string
	for _, id := range []string{"a", "b"} {
		api, httpAddr := next(), next()
		t.coordAPIs[id] = api
		t.metrics["coord-"+id] = httpAddr
		apis = append(apis, api)
		etcdFlag, err := t.etcdProxies("coord-" + id)
		if err != nil {
			return nil, err
		}
		t.add("coord-"+id, bins.Weir, t.env, "coordinator", "--etcd", etcdFlag, "--store", t.storeURL, "--api", api, "--http", httpAddr, "--id", id)
		if err := t.start("coord-" + id); err != nil {
			return nil, err
		}
		one := cluster.Client{Weir: bins.Weir, API: api}
		if err := waitFor(30*time.Second, func() bool { _, err := one.CLI(5*time.Second, "list"); return err == nil }); err != nil {
			return nil, fmt.Errorf("coordinator %s did not answer: %w", id, err)
		}
	}
	t.cli = cluster.Client{Weir: bins.Weir, API: strings.Join(apis, ",")}

	if !smallDisks {
		t.diskErr = errors.New("the campaign has no disk-full fault")
	}
	t.isolateErr = canIsolate()
	for i := range workers {
		id := fmt.Sprintf("w%d", i+1)
		data := filepath.Join(dir, id)
		if t.diskErr == nil {
			if t.diskErr = mountDisk(data); t.diskErr == nil {
				t.disks[id] = data
			}
		}
		t.workers = append(t.workers, id)
		etcdFlag, err := t.etcdProxies(id)
		if err != nil {
			return nil, err
		}
		t.metrics[id] = next()
		t.add(id, bins.Weir, t.env, "worker", "--etcd", etcdFlag, "--slots", fmt.Sprint(slots), "--data-dir", data, "--id", id,
			"--http", t.metrics[id])
		if t.isolateErr == nil {
			// A group of its own, which no other process here has, for the
			// isolate-worker fault's iptables rule; its job processes
			// inherit it.
			t.gids[id] = uint32(0x30000 + (os.Getpid()%0x4000)*4 + i)
			t.comps[id].attr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: t.gids[id], NoSetGroups: true}}
		}
		if err := t.start(id); err != nil {
			return nil, err
		}
	}
	if err := t.cli.WaitWorkers(workers, time.Minute); err != nil {
		return nil, err
	}
	return t, nil
}

// proxy starts a toxiproxy proxy named name to upstream and returns its
// listen address.
func (t *topology) proxy(name, upstream string) (string, error) {
	p := toxiproxy.NewProxy(t.tp, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return "", fmt.Errorf("proxy %s: %w", name, err)
	}
	t.proxies[name] = p
	return p.Listen, nil
}

// etcdProxies starts client's own proxy to each etcd member and returns
// the --etcd flag naming them.
func (t *topology) etcdProxies(client string) (string, error) {
	var ls []string
	for i, a := range t.etcdClients {
		l, err := t.proxy(fmt.Sprintf("%s-%s", client, etcdName(i)), a)
		if err != nil {
			return "", err
		}
		ls = append(ls, l)
	}
	return strings.Join(ls, ","), nil
}

// proxiesOf are the proxies whose name starts with prefix.
func (t *topology) proxiesOf(prefix string) []*toxiproxy.Proxy {
	var ps []*toxiproxy.Proxy
	for name, p := range t.proxies {
		if strings.HasPrefix(name, prefix) {
			ps = append(ps, p)
		}
	}
	return ps
}

func (t *topology) add(name, bin string, env []string, args ...string) *component {
	c := &component{name: name, bin: bin, args: args, env: env}
	t.comps[name] = c
	return c
}

// start starts component name (again), its output appended to name.log.
func (t *topology) start(name string) error {
	c := t.comps[name]
	env := append(os.Environ(), c.env...)
	if name == storeName {
		// Only its flags configure versitygw: no VGW_* or ROOT_* variables.
		env = append([]string{"PATH=" + os.Getenv("PATH")}, c.env...)
	}
	d, err := cluster.StartAttr(t.dir, name, env, c.attr, c.bin, c.args...)
	if err != nil {
		return err
	}
	t.mu.Lock()
	c.d = d
	t.mu.Unlock()
	return nil
}

// daemon is component name's current process.
func (t *topology) daemon(name string) *cluster.Daemon {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.comps[name].d
}

// daemons are the current processes of every component.
func (t *topology) daemons() map[string]*cluster.Daemon {
	t.mu.Lock()
	defer t.mu.Unlock()
	ds := map[string]*cluster.Daemon{}
	for n, c := range t.comps {
		if c.d != nil {
			ds[n] = c.d
		}
	}
	return ds
}

// leader is the id of the leading coordinator as etcd names it ("" when
// none leads or etcd does not answer).
func (t *topology) leader() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addr, err := etcdkeys.CurrentLeader(ctx, t.etcd, etcdkeys.Election)
	if err != nil {
		return ""
	}
	for id, a := range t.coordAPIs {
		if a == addr {
			return id
		}
	}
	return ""
}

// stop stops every process, workers first, then the proxies.
func (t *topology) stop() {
	order := append(append([]string{}, t.workers...), "coord-b", "coord-a", kafkaName, storeName, "e3", "e2", "e1")
	for _, n := range order {
		if c := t.comps[n]; c != nil && c.d != nil {
			c.d.Stop(10 * time.Second)
		}
	}
	for _, g := range t.gids {
		unisolate(g)
	}
	for _, d := range t.disks {
		unmountDisk(d)
	}
	for _, p := range t.proxies {
		p.Stop()
	}
	if t.etcd != nil {
		t.etcd.Close()
	}
}

func waitHTTP(url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	return waitFor(timeout, func() bool {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}
