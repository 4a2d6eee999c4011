package runtime

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// The runtime's tests build graphs by hand from untyped operators, as the
// sdk compiles pipelines into them, so they depend on nothing but the
// runtime's own contract.

type stringCodec struct{}

func (stringCodec) Append(dst []byte, v string) []byte { return append(dst, v...) }
func (stringCodec) Decode(b []byte) (string, error)    { return string(b), nil }

type bytesCodec struct{}

func (bytesCodec) Append(dst []byte, v []byte) []byte { return append(dst, v...) }
func (bytesCodec) Decode(b []byte) ([]byte, error)    { return append([]byte(nil), b...), nil }

type varintCodec struct{}

func (varintCodec) Append(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }
func (varintCodec) Decode(b []byte) (int64, error) {
	v, n := binary.Varint(b)
	if n <= 0 || n != len(b) {
		return 0, fmt.Errorf("%w: bad varint (%d bytes)", ErrDecode, len(b))
	}
	return v, nil
}

func eqComparable[T comparable](a, b T) bool { return a == b }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// ints is the stream type of the test operators' records.
var ints = Records[int64](varintCodec{})

// graph assembles vertices and edges, numbering them as the sdk does.
type graph struct{ *Graph }

func newGraph(maxP int) graph { return graph{&Graph{Name: "test", MaxParallelism: maxP}} }

func (g graph) vertex(p int, ops ...*Operator) *Vertex {
	v := &Vertex{ID: len(g.Vertices), Operators: ops, Parallelism: p}
	g.Vertices = append(g.Vertices, v)
	return v
}

func (g graph) edge(from, to *Vertex, part weirv1.Partitioning) *Edge {
	e := &Edge{ID: len(g.Edges), From: from, To: to, Part: part}
	g.Edges = append(g.Edges, e)
	from.Out = append(from.Out, e)
	to.In = append(to.In, e)
	return e
}

// counter is a source of the records 0..n-1, dealt over its subtasks (the
// subtask i of p emits i, i+p, ...), a batch of up to batch records per
// poll, waiting wait after each. Its position is its checkpointed state: a
// restored subtask resumes where its own old subtask stopped.
func counter(uid string, n int64, batch int, wait time.Duration) *Operator {
	return &Operator{UID: uid, Name: "Counter", Kind: "source", Out: ints,
		NewSource: func(env *Env, emit any) (SourceRun, error) {
			e := emit.(func(int64))
			next, step := int64(env.Subtask()), int64(env.Parallelism())
			if items, ok := env.Restored(); ok && len(items) == 1 {
				v, k := binary.Varint(items[0])
				if k <= 0 {
					return SourceRun{}, fmt.Errorf("corrupt position %x", items[0])
				}
				next = v
			}
			return SourceRun{
				Poll: func() (Poll, error) {
					for range batch {
						if next >= n {
							return Poll{Done: true}, nil
						}
						e(next)
						next += step
					}
					return Poll{Wait: wait}, nil
				},
				Snapshot: func() ([][]byte, error) { return [][]byte{binary.AppendVarint(nil, next)}, nil },
			}, nil
		}}
}

// mapper applies f to every record.
func mapper(uid string, f func(int64) int64) *Operator {
	return &Operator{UID: uid, Name: "Map", Kind: "map", Out: ints,
		NewOp: func(_ *Env, emit any) (OpRun, error) {
			e := emit.(func(int64))
			return OpRun{In: func(v int64) { e(f(v)) }}, nil
		}}
}

// sink builds each subtask's instance with open, which gets the subtask's
// env; the instance's In must be a func(int64).
func sink(uid string, open func(env *Env) OpRun) *Operator {
	return &Operator{UID: uid, Name: "Sink", Kind: "sink",
		NewOp: func(env *Env, _ any) (OpRun, error) { return open(env), nil }}
}

// sumSink adds every record into total at the end of input.
func sumSink(uid string, total *atomic.Int64) *Operator {
	return sink(uid, func(*Env) OpRun {
		var sum int64
		return OpRun{In: func(v int64) { sum += v }, Finish: func() error { total.Add(sum); return nil }}
	})
}
