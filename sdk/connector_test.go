package sdk_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/weir-run/weir/sdk"
	"github.com/weir-run/weir/sdk/connector/file"
)

// These tests run the file connectors end to end through the runtime.

type lineBag struct {
	mu    sync.Mutex
	lines []string
}

func (b *lineBag) Write(l string) error {
	b.mu.Lock()
	b.lines = append(b.lines, l)
	b.mu.Unlock()
	return nil
}
func (b *lineBag) Finish() error { return nil }
func (b *lineBag) Close() error  { return nil }

func collectLines(s sdk.Stream[string], b *lineBag) {
	sdk.NewSink(s, "Collect", func(sdk.TaskInfo) (sdk.SinkWriter[string], error) { return b, nil })
}

func write(t interface{ Fatal(...any) }, path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantLines mirrors the Lines contract: split at "\n", no trailing "\r", no
// empty line after a final newline.
func wantLines(content string) []string {
	if content == "" {
		return nil
	}
	lines := strings.Split(content, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

func TestFileLinesThroughRuntime(t *testing.T) {
	base := t.TempDir()
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		content := string(rapid.SliceOfN(rapid.SampledFrom([]byte("xy\n\n\r")), 0, 400).Draw(rt, "content"))
		p := rapid.IntRange(1, 7).Draw(rt, "parallelism")
		n++
		path := filepath.Join(base, strconv.Itoa(n))
		write(rt, path, content)
		pipe := sdk.NewPipeline("lines", p)
		var b lineBag
		collectLines(file.Lines(pipe, path), &b)
		if err := sdk.RunLocal(rt.Context(), pipe); err != nil {
			rt.Fatal(err)
		}
		got, want := slices.Clone(b.lines), wantLines(content)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			rt.Fatalf("p%d read %q, want %q", p, got, want)
		}
	})
}

// readOutput returns the visible files of dir and their lines.
func readOutput(t *testing.T, dir string) (names, lines []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		names = append(names, e.Name())
		if strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, wantLines(string(b))...)
	}
	return names, lines
}

func TestFileWordCount(t *testing.T) {
	in := t.TempDir()
	texts := map[string]string{
		"a.txt":   "the quick brown fox\njumps over the lazy dog\n",
		"b.txt":   "the dog sleeps\r\n\r\nthe end",
		".hidden": "secret words\n",
		"c.txt":   strings.Repeat("fox dog\n", 500),
	}
	want := make(map[string]int)
	for name, text := range texts {
		write(t, filepath.Join(in, name), text)
		if !strings.HasPrefix(name, ".") {
			for _, w := range strings.Fields(text) {
				want[w]++
			}
		}
	}
	for _, p := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("p%d", p), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			pipe := sdk.NewPipeline("wordcount", p)
			words := sdk.FlatMap(file.Lines(pipe, in), func(line string, emit func(string)) {
				for _, w := range strings.Fields(line) {
					emit(w)
				}
			})
			counts := sdk.Aggregate(sdk.KeyBy(words, func(w string) string { return w }), sdk.Count[string](), sdk.EmitFinal())
			file.Sink(counts, out, func(kv sdk.KV[string, int64]) string { return kv.Key + "\t" + strconv.FormatInt(kv.Value, 10) })
			if err := sdk.RunLocal(t.Context(), pipe); err != nil {
				t.Fatal(err)
			}
			names, lines := readOutput(t, out)
			var wantNames []string
			for s := range p {
				wantNames = append(wantNames, fmt.Sprintf("part-%05d-end", s))
			}
			if !slices.Equal(names, wantNames) {
				t.Errorf("output files %v, want %v", names, wantNames)
			}
			got := make(map[string]int)
			for _, l := range lines {
				w, c, ok := strings.Cut(l, "\t")
				n, err := strconv.Atoi(c)
				if !ok || err != nil || got[w] != 0 {
					t.Fatalf("bad or repeated output line %q", l)
				}
				got[w] = n
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("counts %v, want %v", got, want)
			}
		})
	}
}

// gatedSource emits n records, then waits until release is closed.
type gatedSource struct {
	next, n int
	release chan struct{}
}

func (g *gatedSource) Poll(emit func(int)) (sdk.Poll, error) {
	for ; g.next < g.n; g.next++ {
		emit(g.next)
	}
	select {
	case <-g.release:
		return sdk.Poll{Done: true}, nil
	default:
		return sdk.Poll{Wait: time.Millisecond}, nil
	}
}

func (g *gatedSource) Close() error { return nil }

func TestFileSinkPublishesOnFinish(t *testing.T) {
	out := t.TempDir()
	// Leftovers of earlier attempts of subtasks 0 and 1, and another job's
	// marker that must stay.
	for _, name := range []string{".part-00000-a0-1.inprogress", ".part-00001-3.pending", "_SUCCESS"} {
		write(t, filepath.Join(out, name), "stale\n")
	}
	release := make(chan struct{})
	pipe := sdk.NewPipeline("sink", 2)
	src := sdk.NewSource(pipe, "Gated", func(ti sdk.TaskInfo) (sdk.SourceReader[int], error) {
		return &gatedSource{n: 1000, release: release}, nil
	})
	file.Sink(sdk.Map(src, func(v int) int { return v }, sdk.StartNewChain()), out, strconv.Itoa)
	done := make(chan error, 1)
	go func() { done <- sdk.RunLocal(t.Context(), pipe) }()

	inProgress := []string{".part-00000-a1-1.inprogress", ".part-00001-a1-1.inprogress", "_SUCCESS"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		names, _ := readOutput(t, out)
		if slices.Equal(names, inProgress) {
			break // stale files gone, nothing visible but the marker
		}
		if time.Now().After(deadline) {
			close(release)
			<-done
			t.Fatalf("while running: %v, want %v", names, inProgress)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	names, lines := readOutput(t, out)
	if want := []string{"_SUCCESS", "part-00000-end", "part-00001-end"}; !slices.Equal(names, want) {
		t.Fatalf("after the job: %v, want %v", names, want)
	}
	var want []string
	for range 2 { // each source subtask emits 0..999
		for i := range 1000 {
			want = append(want, strconv.Itoa(i))
		}
	}
	slices.Sort(lines)
	slices.Sort(want)
	if !slices.Equal(lines, want) {
		t.Errorf("published %d lines, want %d", len(lines), len(want))
	}
}

func TestFileSinkFailedJobPublishesNothing(t *testing.T) {
	out := t.TempDir()
	write(t, filepath.Join(out, ".part-00000-a3-1.inprogress"), "stale\n")
	pipe := sdk.NewPipeline("fail", 1)
	s := sdk.Generate(pipe, 100_000, func(i int64) int64 {
		if i == 90_000 {
			panic("corrupt input")
		}
		return i
	})
	file.Sink(s, out, func(v int64) string { return strconv.FormatInt(v, 10) })
	err := sdk.RunLocal(t.Context(), pipe)
	if err == nil || !strings.Contains(err.Error(), "corrupt input") {
		t.Fatalf("job error %v", err)
	}
	if names, _ := readOutput(t, out); len(names) != 0 {
		t.Errorf("a failed job left %v", names)
	}
}

func TestFileLinesMissingInput(t *testing.T) {
	pipe := sdk.NewPipeline("missing", 2)
	var b lineBag
	collectLines(file.Lines(pipe, filepath.Join(t.TempDir(), "nope")), &b)
	err := sdk.RunLocal(t.Context(), pipe)
	if err == nil || !strings.Contains(err.Error(), `open source "Lines"`) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("job error %v", err)
	}
}
