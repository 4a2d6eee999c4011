package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weir-run/weir/internal/pki"
)

// localKafkaPartitions is the partition count of topics the embedded broker
// creates on first use: enough for the parallelism of a local cluster.
const localKafkaPartitions = 4

// startKafka runs franz-go's in-process Kafka broker on addr, keeping its
// log in dir so that topics, offsets and committed transactions survive a
// restart, and open transactions a clean one or a crash (see repairCrash:
// one open at a kill -9 stays committable by its producer until its
// timeout, as on Kafka). Clients are told to connect to
// advertise (host:port; empty: the listening address), which must be set
// when addr is a wildcard such as 0.0.0.0:9092.
//
// With users the broker requires SASL: every client authenticates as one
// of them (all superusers).
func startKafka(addr, advertise, dir string, users []kafkaUser, logger *slog.Logger) (*kafkaBroker, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usageErrorf("--kafka-addr %s: %v", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, usageErrorf("--kafka-addr %s: bad port", addr)
	}
	if port == 0 {
		// kfake picks ports itself; find a free one so the address can be
		// printed and reused.
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("kafka: %v", err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var auth []kfake.Opt
	var self []kgo.Opt // the broker's own client's
	if len(users) > 0 {
		auth = append(auth, kfake.EnableSASL())
		for _, u := range users {
			auth = append(auth, kfake.Superuser(u.mechanism, u.user, u.password))
		}
		self = append(self, kgo.SASL(users[0].sasl()))
	}
	// Before anyone can write: a private start on the data repairs what a
	// crash left, and a clean shutdown keeps the repair.
	kept, expired, err := repairCrash(dir, auth, self)
	if err != nil {
		return nil, fmt.Errorf("kafka: recover %s: %v", dir, err)
	}
	for _, o := range kept {
		logger.Info("kafka: a transaction open when the broker was killed is kept open for its producer to commit or abort, until its timeout",
			"transaction", o.String(), "timeout", time.Duration(o.Timeout)*time.Millisecond)
	}
	for _, o := range expired {
		logger.Warn("kafka: aborted a transaction open when the broker was killed: its timeout passed before the broker came back "+
			"(if an exactly-once sink had pre-committed it for a checkpoint, its records are lost output)",
			"transaction", o.String(), "timeout", time.Duration(o.Timeout)*time.Millisecond)
	}
	// kfake serves as soon as it is created, but the control functions
	// that end the transactions a crash left open (recoverOpenTxns) can
	// only be added then: until they are, a producer's EndTxn would get
	// kfake's own answer, an error (the chaos campaign lost a
	// transaction so). The listener accepts no connection before.
	serving := make(chan struct{})
	defer close(serving)
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			l, err := net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				return nil, err
			}
			l = gatedListener{l, serving}
			if advertise == "" {
				return l, nil
			}
			// kfake advertises its listener's address in metadata.
			return advertisedListener{l, advertisedAddr(advertise)}, nil
		}),
		kfake.DataDir(dir),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(localKafkaPartitions),
	}
	c, err := kfake.NewCluster(append(opts, auth...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka on %s: %v", addr, err)
	}
	if err := dropSnapshots(dir); err != nil {
		c.Close()
		return nil, fmt.Errorf("kafka: %s: %v", dir, err)
	}
	if err := persistAutoCreated(c, self...); err != nil {
		c.Close()
		return nil, fmt.Errorf("kafka on %s: %v", addr, err)
	}
	rec, err := recoverOpenTxns(c, dir, self, logger)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("kafka: recover %s: %v", dir, err)
	}
	return &kafkaBroker{c, rec}, nil
}

// kafkaBroker is the embedded broker, and what ends the transactions a
// crash left open.
type kafkaBroker struct {
	*kfake.Cluster
	txns *txnRecovery // nil: none
}

// Close shuts the broker down cleanly: its open transactions, recovered
// ones included, stay open for the next start.
func (b *kafkaBroker) Close() {
	b.Cluster.Close()
	b.txns.Close()
}

// gatedListener accepts connections only once open is closed; clients
// that connect earlier wait in the listen backlog.
type gatedListener struct {
	net.Listener
	open <-chan struct{}
}

func (l gatedListener) Accept() (net.Conn, error) {
	<-l.open
	return l.Listener.Accept()
}

// advertisedListener is a listener that reports another address, the one
// the broker tells clients to connect to.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

func (l advertisedListener) Addr() net.Addr { return l.addr }

// advertisedAddr is a host:port as a net.Addr.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// newKafkaCmd runs the embedded broker alone, as a cluster role (the
// compose layout's Kafka).
func newKafkaCmd(s streams) *cobra.Command {
	var (
		lf                    logFlags
		dataDir, addr, advert string
		insecure              bool
		usersFile             string
	)
	cmd := &cobra.Command{
		Use:   "kafka",
		Short: "Run the embedded Kafka broker (kfake) alone, for tests and demos",
		Long: `Run franz-go's in-process Kafka broker (kfake), as 'weir local --kafka' does,
as a process of its own: one broker, topics created on first use with 4
partitions, its log under --data-dir. It has no TLS and no authentication:
With --sasl-users it requires SASL (PLAIN or SCRAM); it never has TLS:
it is for tests and demos, not for production data.`,
		Example: `  weir kafka --data-dir /data/kafka --addr 0.0.0.0:9092 --advertise kafka:9092 --insecure-plaintext`,
		Args:    exactArgs(),
		RunE: markRan(func(cmd *cobra.Command, _ []string) error {
			logger, err := lf.logger(s.stderr)
			if err != nil {
				return err
			}
			if !pki.IsLoopback(addr) && !insecure {
				return usageErrorf("--addr %s is beyond loopback and the broker has no TLS; pass --insecure-plaintext to serve it anyway", addr)
			}
			if advert != "" {
				if _, _, err := net.SplitHostPort(advert); err != nil {
					return usageErrorf("--advertise %s: %v", advert, err)
				}
			}
			if err := os.MkdirAll(dataDir, 0o755); err != nil {
				return fmt.Errorf("cannot create data dir: %v", unwrapPathError(err))
			}
			users, err := readKafkaUsers(usersFile)
			if err != nil {
				return err
			}
			c, err := startKafka(addr, advert, dataDir, users, logger)
			if err != nil {
				return err
			}
			defer c.Close()
			if insecure {
				logger.Warn("INSECURE: the broker serves plaintext without authentication beyond loopback", "addr", addr)
			}
			fmt.Fprintf(s.stderr, "kafka ready at %s\n", strings.Join(c.ListenAddrs(), ","))
			<-cmd.Context().Done()
			logger.Info("shutting down kafka")
			return nil
		}),
	}
	lf.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&dataDir, "data-dir", "", "directory for the broker's log (required)")
	fl.StringVar(&addr, "addr", "127.0.0.1:9092", "listen address host:port")
	fl.StringVar(&advert, "advertise", "", "host:port clients are told to connect to (default: --addr; set it when --addr is 0.0.0.0)")
	fl.BoolVar(&insecure, "insecure-plaintext", false, "serve beyond loopback although the broker has no TLS and no authentication")
	fl.StringVar(&usersFile, "sasl-users", "", kafkaUsersUsage)
	_ = cmd.MarkFlagRequired("data-dir")
	return cmd
}

const kafkaUsersUsage = "require SASL: a file (mode 0600) of lines MECHANISM USER PASSWORD (SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN)"

// kafkaUser is a SASL user of the embedded broker.
type kafkaUser struct{ mechanism, user, password string }

func (u kafkaUser) sasl() sasl.Mechanism {
	switch u.mechanism {
	case "PLAIN":
		return plain.Auth{User: u.user, Pass: u.password}.AsMechanism()
	case "SCRAM-SHA-256":
		return scram.Auth{User: u.user, Pass: u.password}.AsSha256Mechanism()
	}
	return scram.Auth{User: u.user, Pass: u.password}.AsSha512Mechanism()
}

// readKafkaUsers reads --sasl-users: passwords come from a private file,
// never from the command line. "" is no SASL.
func readKafkaUsers(path string) ([]kafkaUser, error) {
	if path == "" {
		return nil, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, usageErrorf("--sasl-users: %v", unwrapPathError(err))
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, usageErrorf("--sasl-users %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErrorf("--sasl-users: %v", unwrapPathError(err))
	}
	var users []kafkaUser
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, usageErrorf("--sasl-users %s line %d: want MECHANISM USER PASSWORD", path, i+1)
		}
		switch f[0] {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return nil, usageErrorf("--sasl-users %s line %d: mechanism %q: want SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN", path, i+1, f[0])
		}
		users = append(users, kafkaUser{f[0], f[1], f[2]})
	}
	if len(users) == 0 {
		return nil, usageErrorf("--sasl-users %s names no user", path)
	}
	return users, nil
}

// persistAutoCreated makes topics the broker creates on first use durable
// at once. kfake writes its topic list on CreateTopics and on config
// changes, but keeps a topic a metadata request created in memory until a
// clean shutdown, so a crash of `weir local` would lose it and its records.
// After each metadata request that may create topics, a config change that
// changes nothing (cleanup.policy=delete, the default) of each new topic
// makes the broker write the list. It stops when the cluster closes.
func persistAutoCreated(c *kfake.Cluster, opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		return err
	}
	asked := make(chan []string, 256)
	c.ControlKey(int16(kmsg.Metadata), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if m := req.(*kmsg.MetadataRequest); m.AllowAutoTopicCreation {
			var names []string
			for _, t := range m.Topics {
				if t.Topic != nil {
					names = append(names, *t.Topic)
				}
			}
			if len(names) > 0 {
				select {
				case asked <- names:
				default: // a burst; a later request names them again
				}
			}
		}
		return nil, nil, false // the broker handles it as usual
	})
	go func() {
		defer cl.Close()
		persisted := map[string]bool{}
		for {
			var names []string
			select {
			case names = <-asked:
			case <-time.After(time.Second):
				// The cluster is gone once its own client cannot reach it.
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
				cancel()
				if err != nil {
					return
				}
				continue
			}
			req := kmsg.NewPtrIncrementalAlterConfigsRequest()
			for _, n := range names {
				if persisted[n] {
					continue
				}
				r := kmsg.NewIncrementalAlterConfigsRequestResource()
				r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, n
				cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
				cfg.Name, cfg.Op, cfg.Value = "cleanup.policy", kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr("delete")
				r.Configs = append(r.Configs, cfg)
				req.Resources = append(req.Resources, r)
			}
			if len(req.Resources) == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := req.RequestWith(ctx, cl)
			cancel()
			if err != nil {
				continue
			}
			for _, r := range resp.Resources {
				if kerr.ErrorForCode(r.ErrorCode) == nil {
					persisted[r.ResourceName] = true
				}
			}
		}
	}()
	return nil
}
