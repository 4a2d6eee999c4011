package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/credentials"

	"github.com/weir-run/weir/coordinator"
	"github.com/weir-run/weir/internal/etcdserver"
	"github.com/weir-run/weir/internal/pki"
	"github.com/weir-run/weir/internal/sealing"
	"github.com/weir-run/weir/internal/telemetry"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
	"github.com/weir-run/weir/worker"
)

// localReadyPoll is how often `weir local` checks whether its coordinator
// answers, to print the banner once it does.
const localReadyPoll = 100 * time.Millisecond

type localFlags struct {
	log        logFlags
	dataDir    string
	api        string
	http       string
	httpHosts  []string
	tls        bool
	workers    int
	slots      int
	etcdClient string
	etcdPeer   string
	kafka      bool
	kafkaAddr  string
	kafkaUsers string
	kek        string
}

func newLocalCmd(s streams) *cobra.Command {
	var f localFlags
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run a whole cluster in one process",
		Long: `Run a whole cluster in one process: an embedded etcd, a coordinator and
workers, with binaries and checkpoints stored under --data-dir. It needs no
configuration; submit jobs to it with 'weir run'. Stop it with Ctrl-C.`,
		Args: exactArgs(),
		RunE: markRan(func(cmd *cobra.Command, _ []string) error {
			logger, err := f.log.logger(s.stderr)
			if err != nil {
				return err
			}
			return runLocal(cmd.Context(), s, f, logger)
		}),
	}
	f.log.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "./weir-data", "directory for etcd, the object store and the workers' data")
	fl.StringVar(&f.api, "api", defaultCoordinator, "job API (gRPC) listen address (port 0 picks a free port)")
	fl.StringVar(&f.http, "http", "127.0.0.1:8080", "web page listen address (port 0 picks a free port)")
	fl.StringSliceVar(&f.httpHosts, "http-host", nil, httpHostUsage)
	fl.BoolVar(&f.tls, "tls", false, "run everything with TLS from a throwaway CA made in --data-dir/certs (prints how to use it)")
	fl.StringVar(&f.kek, "kek", "auto", "key-encryption key for state at rest: auto (a key file made in --data-dir), none, or as for weir coordinator --kek")
	fl.IntVar(&f.workers, "workers", 2, "number of workers")
	fl.IntVar(&f.slots, "slots", 4, "task slots per worker")
	fl.StringVar(&f.etcdClient, "etcd-client", "127.0.0.1:0", "embedded etcd client address (port 0 picks a free port)")
	fl.StringVar(&f.etcdPeer, "etcd-peer", "127.0.0.1:0", "embedded etcd peer address (port 0 picks a free port)")
	fl.BoolVar(&f.kafka, "kafka", false, "also run an embedded Kafka broker (kfake), its data under --data-dir")
	fl.StringVar(&f.kafkaUsers, "kafka-sasl-users", "", "with --kafka, "+kafkaUsersUsage)
	fl.StringVar(&f.kafkaAddr, "kafka-addr", "127.0.0.1:9092", "embedded Kafka listen address, with --kafka (keep it across restarts: jobs name it)")
	return cmd
}

// localPart is one goroutine of `weir local` and how it ended.
type localPart struct {
	name string
	err  error
}

func runLocal(ctx context.Context, s streams, f localFlags, logger *slog.Logger) error {
	if f.workers < 1 {
		return usageErrorf("--workers must be at least 1, got %d", f.workers)
	}
	if f.slots < 1 {
		return usageErrorf("--slots must be at least 1, got %d", f.slots)
	}
	dir, err := filepath.Abs(f.dataDir)
	if err != nil {
		return fmt.Errorf("data dir %s: %v", f.dataDir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create data dir: %v", unwrapPathError(err))
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	// The coordinator's ports are bound before etcd, the broker and the
	// workers start, so that none of them takes one (a port 0 they bind, or
	// one picked for etcd, could be the port given here); the coordinator
	// serves on these listeners. Port 0 picks a free port, shown in the
	// banner.
	apiLis, err := net.Listen("tcp", f.api)
	if err != nil {
		return usageErrorf("--api %s: %v", f.api, err)
	}
	defer apiLis.Close()
	httpLis, err := net.Listen("tcp", f.http)
	if err != nil {
		return usageErrorf("--http %s: %v", f.http, err)
	}
	defer httpLis.Close()
	api, httpAddr := apiLis.Addr().String(), httpLis.Addr().String()

	etcdCfg := etcdserver.Config{
		Name: "local", DataDir: filepath.Join(dir, "etcd"),
		ClientURL: f.etcdClient, PeerURL: f.etcdPeer, Logger: logger,
	}
	if err := etcdCfg.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	kek := f.kek
	if kek == "auto" {
		path := filepath.Join(dir, "kek")
		if err := sealing.GenerateKEKFile(path); err != nil {
			return fmt.Errorf("make the local key-encryption key: %v", unwrapPathError(err))
		}
		kek = "file:" + path
	}
	coordCfg := coordinator.Config{
		ID: "local-coordinator", Store: "file://" + filepath.ToSlash(filepath.Join(dir, "store")),
		API: api, HTTP: httpAddr, APIListener: apiLis, HTTPListener: httpLis, HTTPHosts: f.httpHosts, KEK: kek,
	}
	workerCfgs := make([]worker.Config, f.workers)
	// The workers share the machine: half its memory between them.
	memory := worker.DefaultMemory() / int64(f.workers)
	for i := range workerCfgs {
		id := fmt.Sprintf("worker-%d", i+1)
		workerCfgs[i] = worker.Config{ID: id, Slots: f.slots, DataDir: filepath.Join(dir, id), Host: "127.0.0.1", LogFormat: f.log.format,
			Memory: memory}
	}

	var certs localCerts
	userSec := security{}
	if f.tls {
		ids := make([]string, len(workerCfgs))
		for i := range workerCfgs {
			ids[i] = workerCfgs[i].ID
		}
		if certs, err = ensureLocalCerts(dir, ids); err != nil {
			return err
		}
		ef := certs.files(localEtcdCert)
		etcdCfg.TLS = &ef
		if coordCfg.TLS, err = certs.source(localCoordCert); err != nil {
			return err
		}
		for i := range workerCfgs {
			if workerCfgs[i].TLS, err = certs.source(workerCfgs[i].ID); err != nil {
				return err
			}
		}
		user, err := certs.source(localUserCert)
		if err != nil {
			return err
		}
		userSec.creds = credentials.NewTLS(user.ClientConfig(pki.RoleCoordinator))
	}

	kafkaAddr := ""
	if f.kafka {
		users, err := readKafkaUsers(f.kafkaUsers)
		if err != nil {
			return err
		}
		k, err := startKafka(f.kafkaAddr, "", filepath.Join(dir, "kafka"), users, logger)
		if err != nil {
			return err
		}
		defer k.Close()
		kafkaAddr = k.ListenAddrs()[0]
	}

	srv, err := etcdserver.Start(ctx, etcdCfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer srv.Close()
	endpoints := srv.ClientEndpoints()
	coordCfg.Etcd = endpoints
	if err := coordCfg.Validate(); err != nil {
		return err
	}
	for i := range workerCfgs {
		workerCfgs[i].Etcd = endpoints
		if err := workerCfgs[i].Validate(); err != nil {
			return fmt.Errorf("%s: %w", workerCfgs[i].ID, err)
		}
	}

	tel, err := telemetry.New(ctx, "weir-local", s.getenv)
	if err != nil {
		return err
	}
	defer tel.Shutdown(context.WithoutCancel(ctx))
	coordCfg.Meter, coordCfg.Tracer, coordCfg.Metrics = tel.Meter, tel.Tracer, tel.Handler
	// The workers share the coordinator's /metrics: one process, one page.
	for i := range workerCfgs {
		workerCfgs[i].Meter = tel.Meter
	}

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan localPart, 1+len(workerCfgs))
	start := func(name string, run func(context.Context) error) {
		go func() { done <- localPart{name, run(pctx)} }()
	}
	start("coordinator", func(ctx context.Context) error { return coordinator.Run(ctx, coordCfg, logger) })
	for _, wc := range workerCfgs {
		start(wc.ID, func(ctx context.Context) error { return worker.Run(ctx, wc, logger) })
	}
	running := 1 + len(workerCfgs)

	ready := make(chan struct{})
	go func() {
		if waitAnswering(pctx, api, userSec) {
			close(ready)
		}
	}()

	var failure error
	for failure == nil && ctx.Err() == nil {
		select {
		case <-ready:
			printBanner(s.stderr, dir, api, httpAddr, endpoints, kafkaAddr, f.workers, f.slots, certs)
			ready = nil
		case p := <-done:
			running--
			if p.err == nil || errors.Is(p.err, context.Canceled) {
				p.err = errors.New("stopped unexpectedly")
			}
			failure = p.err
			if !strings.HasPrefix(p.err.Error(), p.name+":") {
				failure = fmt.Errorf("%s: %w", p.name, p.err)
			}
		case <-ctx.Done():
		}
	}

	logger.Info("shutting down")
	cancel()
	timeout := time.NewTimer(shutdownTimeout)
	defer timeout.Stop()
	for running > 0 {
		select {
		case p := <-done:
			running--
			if p.err != nil && !errors.Is(p.err, context.Canceled) {
				logger.Warn("stopped with error", "part", p.name, "err", p.err)
			}
		case <-timeout.C:
			logger.Warn("shutdown timed out, stopping etcd anyway", "waiting_for", running)
			running = 0
		}
	}
	srv.Close()
	return failure
}

// waitAnswering polls the coordinator at api until it answers ListJobs,
// which is what `weir list` needs. It reports false if ctx ended first.
func waitAnswering(ctx context.Context, api string, sec security) bool {
	c, err := dial(api, sec)
	if err != nil {
		return false
	}
	defer c.Close()
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.jobs.ListJobs(cctx, &weirv1.ListJobsRequest{})
		cancel()
		if err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(localReadyPoll):
		}
	}
}

// dialable is addr with an unspecified host replaced by loopback, for
// addresses printed for the user to connect to.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func printBanner(w io.Writer, dir, api, httpAddr string, etcd []string, kafka string, workers, slots int, certs localCerts) {
	a := dialable(api)
	flag := " --coordinator " + a
	if kafka != "" {
		kafka = "\n  kafka:    " + kafka + " (jobs take --brokers " + kafka + ")"
	}
	web, secure := "http", ""
	if certs.dir != "" {
		user := certs.files(localUserCert)
		web = "https"
		secure = fmt.Sprintf("\nTLS everywhere, from the CA in %s. Use it as the cluster's admin:\n  export WEIR_TLS_CA=%s WEIR_TLS_CERT=%s WEIR_TLS_KEY=%s",
			certs.dir, user.CA, user.Cert, user.Key)
	}
	fmt.Fprintf(w, `
weir local is running (data in %s)
  job API:  %s
  web:      %s://%s/
  etcd:     %s%s
  workers:  %d x %d slots%s
Submit a job:
  weir run%s -p 2 ./wordcount -- --input F --output O
List jobs:
  weir list%s
Stop with Ctrl-C.

`, dir, a, web, dialable(httpAddr), strings.Join(etcd, ","), kafka, workers, slots, secure, flag, flag)
}
