package sdk

import (
	"fmt"
	"regexp"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
	"github.com/weir-run/weir/sdk/internal/runtime"
)

// Pipeline is the graph of a job under construction. The job's build function
// creates streams on it; sdk.Main then describes it, runs it locally or runs
// the subtasks a worker assigns. The build function runs in every process of
// the job, so it must build the same graph from the same arguments.
type Pipeline struct {
	name           string
	parallelism    int
	maxParallelism int
	nodes          []*node
	uids           map[string]*node
	// implicit counts the operators the SDK added on its own (combiners):
	// default uids skip them, so adding one moves no other operator's.
	implicit      int
	bufferTimeout time.Duration
	err           error // first construction error; reported by Main
}

// NewPipeline returns an empty pipeline whose operators default to
// parallelism p. Jobs normally get theirs from Main.
func NewPipeline(name string, p int) *Pipeline {
	return &Pipeline{name: name, parallelism: max(p, 1), uids: make(map[string]*node)}
}

// Name is the job's name.
func (p *Pipeline) Name() string { return p.name }

// SetName renames the job.
func (p *Pipeline) SetName(name string) { p.name = name }

// Parallelism is the default parallelism of operators that set none.
func (p *Pipeline) Parallelism() int { return p.parallelism }

// SetBufferTimeout sets how long a subtask's output may hold records that
// fill no batch while the subtask keeps busy, or while its source waits for
// less than that (Flink's buffer timeout): the most a record or watermark
// waits at each exchange before it is sent. A subtask fed by other
// subtasks still sends what it holds as soon as its input runs dry. The
// default, 5 ms, keeps latency low; a longer one lets a slow source send
// fuller frames, for less CPU per record. It must be positive.
func (p *Pipeline) SetBufferTimeout(d time.Duration) {
	if d <= 0 {
		p.fail(fmt.Errorf("sdk: buffer timeout %v: it must be positive", d))
		return
	}
	p.bufferTimeout = d
}

// SetMaxParallelism fixes the number of key groups (the upper bound of any
// future rescale). It defaults to Flink's rule from the largest parallelism.
func (p *Pipeline) SetMaxParallelism(n int) { p.maxParallelism = n }

// Err is the first error met while building the graph, if any.
func (p *Pipeline) Err() error { return p.err }

// Fail records a configuration error found while building, such as a
// connector's invalid settings: the job is refused at submit with it.
func (p *Pipeline) Fail(err error) { p.fail(err) }

func (p *Pipeline) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

// node is one logical operator: what the runtime runs (its typed behaviour
// lives in the factories made by the generic constructor that knew its
// input and output types), and where it sits in the pipeline.
type node struct {
	*runtime.Operator
	id          int
	parallelism int // 0 until resolved: the pipeline default
	startChain  bool
	inputs      []*link
	outputs     []*link
	// stateless marks a per-record operator without state, timers or
	// watermark handling (Map, Filter, FlatMap), which a fan-out may fuse
	// into its producer's chain (fuseFanOuts).
	stateless bool
	// tee makes one func(T) over the node's main output type that calls
	// every func(T) in ins: the In of a fused fan-out.
	tee func(ins []any) any
}

// link is an edge between logical operators.
type link struct {
	from, to *node
	part     weirv1.Partitioning // UNSPECIFIED: forward or rebalance, decided by parallelism
	// keyHash makes, for HASH links, a func(T) uint64 hashing the key of the
	// link's record type T; one per subtask.
	keyHash func() any
	// side is the producer's output the link leaves from: 0 its main
	// output, i its side output i-1.
	side int
	// input is the consumer's input the link feeds: 0, or 1 for the second
	// input of a two-input operator.
	input int
}

// Stream is a stream of records of type T produced by one operator.
type Stream[T any] struct {
	p     *Pipeline
	n     *node
	codec Codec[T]
	part  weirv1.Partitioning
	side  int // which output of n the stream is (see link.side)
	// ts gives a record's event time (unix ms) once AssignTimestamps or a
	// window has set it; nil otherwise.
	ts func(T) int64
}

// Pipeline returns the pipeline the stream belongs to.
func (s Stream[T]) Pipeline() *Pipeline { return s.p }

// Option configures an operator.
type Option interface{ apply(*opConfig) }

type opConfig struct {
	uid, name   string
	parallelism int
	startChain  bool
	codec       any // Codec[U] for the operator's output
	rate        float64
	txnTimeout  time.Duration
}

type optionFunc func(*opConfig)

func (f optionFunc) apply(c *opConfig) { f(c) }

// WithUID sets the operator's stable id. State in checkpoints and savepoints
// is mapped to operators by uid, so set it on every stateful operator of a
// job you will upgrade. The default is derived from the name and position.
func WithUID(uid string) Option { return optionFunc(func(c *opConfig) { c.uid = uid }) }

// WithName sets the operator's display name.
func WithName(name string) Option { return optionFunc(func(c *opConfig) { c.name = name }) }

// WithParallelism sets the operator's parallelism.
func WithParallelism(n int) Option { return optionFunc(func(c *opConfig) { c.parallelism = n }) }

// StartNewChain keeps the operator out of its predecessor's chain.
func StartNewChain() Option { return optionFunc(func(c *opConfig) { c.startChain = true }) }

// WithCodec sets the codec of the operator's output stream.
func WithCodec[T any](c Codec[T]) Option { return optionFunc(func(o *opConfig) { o.codec = c }) }

// WithRate caps a generator source at n records per second for the whole
// job (shared evenly by its subtasks). 0 means as fast as possible.
func WithRate(n float64) Option { return optionFunc(func(c *opConfig) { c.rate = n }) }

// WithTransactionTimeout declares that the operator keeps external
// transactions open from one checkpoint until the next completes, and that
// the external system aborts them after d. The coordinator refuses to run a
// job whose checkpoint interval, checkpoint timeout and restart delay add up
// to d or more, because an aborted transaction is lost output. Connectors
// with two-phase commit sinks set it; jobs rarely need to.
func WithTransactionTimeout(d time.Duration) Option {
	return optionFunc(func(c *opConfig) { c.txnTimeout = d })
}

func config(opts []Option) opConfig {
	var c opConfig
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

var uidPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// addNode registers an operator producing T (out is nil for sinks).
func addNode[T any](p *Pipeline, kind, defaultName string, cfg opConfig, produces bool) (*node, Codec[T]) {
	n := &node{Operator: &runtime.Operator{Kind: kind, Name: cfg.name, UID: cfg.uid, TxnTimeout: cfg.txnTimeout},
		id: len(p.nodes), parallelism: cfg.parallelism, startChain: cfg.startChain}
	if n.Name == "" {
		n.Name = defaultName
	}
	if n.UID == "" {
		// Position-derived: stable while the graph's shape is.
		n.UID = fmt.Sprintf("%s-%d", kind, n.id-p.implicit)
	}
	switch {
	case !uidPattern.MatchString(n.UID):
		p.fail(fmt.Errorf("sdk: operator %q: uid %q must be 1-128 characters of A-Z a-z 0-9 . _ -", n.Name, n.UID))
	case p.uids[n.UID] != nil:
		p.fail(fmt.Errorf("sdk: operators %q and %q share uid %q; uids must be unique", p.uids[n.UID].Name, n.Name, n.UID))
	case cfg.parallelism < 0:
		p.fail(fmt.Errorf("sdk: operator %q: parallelism %d is below 1", n.Name, cfg.parallelism))
	}
	p.uids[n.UID] = n
	p.nodes = append(p.nodes, n)
	var codec Codec[T]
	if produces {
		n.tee = tee[T]
		codec = CodecFor[T]()
		if cfg.codec != nil {
			c, ok := cfg.codec.(Codec[T])
			if !ok {
				p.fail(fmt.Errorf("sdk: operator %q: WithCodec gives %T, but the operator emits %T", n.Name, cfg.codec, *new(T)))
			} else {
				codec = c
			}
		}
		if err := checkJSONSafe(codec); err != nil {
			p.fail(fmt.Errorf("operator %q: %w", n.Name, err))
		}
		n.Out = runtime.Records(codec)
	}
	return n, codec
}

// tee is node.tee for records of type T.
func tee[T any](ins []any) any {
	fs := make([]func(T), len(ins))
	for i, in := range ins {
		fs[i] = in.(func(T))
	}
	return func(v T) {
		for _, f := range fs {
			f(v)
		}
	}
}

// connect adds the link from s's operator to n.
func connect[T any](s Stream[T], n *node) {
	l := &link{from: s.n, to: n, part: s.part, side: s.side}
	s.n.outputs = append(s.n.outputs, l)
	n.inputs = append(n.inputs, l)
}

func newStream[T any](p *Pipeline, n *node, c Codec[T]) Stream[T] {
	return Stream[T]{p: p, n: n, codec: c}
}

// Rebalance distributes the stream's records round robin over the next
// operator's subtasks.
func Rebalance[T any](s Stream[T]) Stream[T] {
	s.part = weirv1.Partitioning_PARTITIONING_REBALANCE
	return s
}

// Broadcast sends every record to every subtask of the next operator.
func Broadcast[T any](s Stream[T]) Stream[T] {
	s.part = weirv1.Partitioning_PARTITIONING_BROADCAST
	return s
}
