package sdk

import (
	"fmt"

	"github.com/weir-run/weir/sdk/internal/runtime"
)

// Union merges streams of one type into one stream (Flink's union): every
// record of every input, in no particular order between inputs. Any number
// of streams of any parallelism may be merged; a stream given twice
// contributes its records twice.
//
// Union is an operator with one input fed by every stream, so the runtime
// aligns it like any operator with several input channels: its watermark is
// the minimum over the channels of all inputs (an idle input does not hold
// it back), and a checkpoint barrier is aligned over all of them, so a
// checkpoint covers the same prefix of every input. The output keeps the
// codec of the first stream, and its event time when every input has one
// (the first input's function reads it; the inputs must agree on it).
//
// Union of no stream panics: there is no pipeline to add it to. Union is
// stateless and runs at the pipeline's parallelism; an input of
// another parallelism is rebalanced into it, one of the same parallelism
// is forwarded (Rebalance or Broadcast on an input apply to its link).
func Union[T any](streams ...Stream[T]) Stream[T] {
	if len(streams) == 0 {
		panic("sdk: Union of no streams")
	}
	first := streams[0]
	out := transform(first, "union", "Union", nil, func(_ *runtime.Env, emit func(T)) (runtime.OpRun, error) {
		return runtime.OpRun{In: emit}, nil
	})
	out.ts = first.ts
	for _, s := range streams[1:] {
		if s.p != first.p {
			first.p.fail(fmt.Errorf("sdk: Union: the inputs belong to different pipelines"))
			return out
		}
		if s.ts == nil {
			out.ts = nil
		}
		connect(s, out.n)
	}
	return out
}

// UnionKeyed merges keyed streams of one key and record type into one keyed
// stream: the next keyed operator sees the records of every input,
// partitioned by key, so a key's records from all inputs meet in one
// subtask and share its keyed state. The result is keyed by the first
// input's key function and codec: every input must key a record as it does
// (KeyBy with the same function). Watermarks, barriers, codec and event time
// are Union's.
func UnionKeyed[K comparable, T any](streams ...KeyedStream[K, T]) KeyedStream[K, T] {
	if len(streams) == 0 {
		panic("sdk: UnionKeyed of no streams")
	}
	ss := make([]Stream[T], len(streams))
	for i, k := range streams {
		ss[i] = k.s
	}
	return KeyedStream[K, T]{s: Union(ss...), key: streams[0].key, keyCodec: streams[0].keyCodec}
}
