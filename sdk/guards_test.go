package sdk

import (
	"context"
	"strings"
	"testing"
)

type hiddenAcc struct {
	Sum int64
	n   int64
}

type hiddenKey struct{ name string }

// Types the JSON fallback would silently corrupt are refused at build time.
func TestUnexportedFieldsAreRefused(t *testing.T) {
	for name, build := range map[string]func(p *Pipeline){
		"stream": func(p *Pipeline) {
			Map(genSeq(p, 3), func(i int64) hiddenAcc { return hiddenAcc{Sum: i} })
		},
		"key": func(p *Pipeline) {
			KeyBy(genSeq(p, 3), func(i int64) hiddenKey { return hiddenKey{} })
		},
		"accumulator": func(p *Pipeline) {
			Aggregate(KeyBy(genSeq(p, 3), func(i int64) int64 { return i }), AggregateFunc[int64, hiddenAcc, int64]{
				Init: func() hiddenAcc { return hiddenAcc{} }, Add: func(a hiddenAcc, v int64) hiddenAcc { return a },
				Result: func(a hiddenAcc) int64 { return a.Sum },
			})
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := NewPipeline("guard", 1)
			build(p)
			if err := p.Err(); err == nil || !strings.Contains(err.Error(), "unexported field") {
				t.Fatalf("Err() = %v, want an unexported-field error", err)
			}
		})
	}
	// Registering a codec makes such a type usable.
	RegisterCodec[hiddenKey](keyCodecForTest{})
	p := NewPipeline("guard", 1)
	KeyBy(genSeq(p, 3), func(i int64) hiddenKey { return hiddenKey{} })
	if err := p.Err(); err != nil {
		t.Fatalf("with a registered codec: %v", err)
	}
}

type withChan struct {
	Name string
	Done chan bool
}

type pointKey struct{ X, Y int }

// Types encoding/json cannot encode at all are refused at build time too,
// instead of failing on the first record, restart after restart.
func TestUnencodableTypesAreRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		build func(p *Pipeline)
		want  string
	}{
		"channel field": {func(p *Pipeline) {
			Map(genSeq(p, 3), func(i int64) withChan { return withChan{} })
		}, "sdk: type sdk.withChan has a part of type chan bool, which encoding/json cannot encode (field withChan.Done)"},
		"struct map key": {func(p *Pipeline) {
			Map(genSeq(p, 3), func(i int64) map[pointKey]int { return nil })
		}, "sdk: type map[sdk.pointKey]int has a map keyed by sdk.pointKey, which encoding/json cannot encode"},
		"complex": {func(p *Pipeline) {
			Map(genSeq(p, 3), func(i int64) []complex128 { return nil })
		}, "sdk: type []complex128 has a part of type complex128, which encoding/json cannot encode"},
	} {
		t.Run(name, func(t *testing.T) {
			p := NewPipeline("guard", 1)
			tc.build(p)
			if err := p.Err(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Err() = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// Maps keyed by strings and integers encode.
	p := NewPipeline("guard", 1)
	Map(genSeq(p, 3), func(i int64) map[int]map[string]bool { return nil })
	if err := p.Err(); err != nil {
		t.Fatalf("map[int]map[string]bool: %v", err)
	}
}

type keyCodecForTest struct{}

func (keyCodecForTest) Append(dst []byte, k hiddenKey) []byte { return append(dst, k.name...) }
func (keyCodecForTest) Decode(b []byte) (hiddenKey, error)    { return hiddenKey{string(b)}, nil }

// A panic while opening a sink fails the job instead of crashing the process.
func TestPanicInOpenFailsTheTask(t *testing.T) {
	p := NewPipeline("panics", 2)
	NewSink(genSeq(p, 10), "Boom", func(TaskInfo) (SinkWriter[int64], error) { panic("cannot open") })
	err := runPipeline(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "panic: cannot open") || !strings.Contains(err.Error(), "Boom") {
		t.Fatalf("err = %v", err)
	}
}

func TestMaxParallelismBounds(t *testing.T) {
	for _, maxP := range []int{2, 40000} {
		p := NewPipeline("bounds", 4)
		Print(genSeq(p, 1))
		p.SetMaxParallelism(maxP)
		if _, err := p.compile(); err == nil || !strings.Contains(err.Error(), "max parallelism") {
			t.Fatalf("max parallelism %d: err = %v", maxP, err)
		}
	}
}
