package file

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/weir-run/weir/sdk"
)

// Sink writes one line per record, format(record), into dir. Each subtask
// writes a hidden in-progress file and renames it to part-<subtask> when its
// input ends, so the visible output is always complete. A restarted attempt
// removes the in-progress files earlier attempts of its subtask left and
// overwrites the same part name, so output is never duplicated.
func Sink[T any](s sdk.Stream[T], dir string, format func(T) string, opts ...sdk.Option) {
	sdk.NewSink(s, "FileSink", func(t sdk.TaskInfo) (sdk.SinkWriter[T], error) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		final := filepath.Join(dir, fmt.Sprintf("part-%05d", t.Subtask()))
		prefix := fmt.Sprintf(".part-%05d.", t.Subtask())
		if err := removeStale(dir, prefix); err != nil {
			return nil, err
		}
		tmp := filepath.Join(dir, fmt.Sprintf("%sattempt-%d.inprogress", prefix, t.Attempt()))
		f, err := os.Create(tmp)
		if err != nil {
			return nil, err
		}
		return &sinkWriter[T]{f: f, w: bufio.NewWriterSize(f, 256<<10), tmp: tmp, final: final, format: format}, nil
	}, append([]sdk.Option{sdk.WithName("FileSink")}, opts...)...)
}

func removeStale(dir, prefix string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}

type sinkWriter[T any] struct {
	f          *os.File
	w          *bufio.Writer
	tmp, final string
	format     func(T) string
	done       bool
}

func (s *sinkWriter[T]) Write(v T) error {
	if _, err := s.w.WriteString(s.format(v)); err != nil {
		return err
	}
	return s.w.WriteByte('\n')
}

// Finish makes the file durable, then visible: rename is atomic, so a reader
// sees all of it or none.
func (s *sinkWriter[T]) Finish() error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	if err := s.f.Close(); err != nil {
		return err
	}
	s.done = true
	if err := os.Rename(s.tmp, s.final); err != nil {
		return err
	}
	// Persist the rename itself.
	if d, err := os.Open(filepath.Dir(s.final)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Close abandons unfinished output.
func (s *sinkWriter[T]) Close() error {
	if s.done {
		return nil
	}
	s.f.Close()
	return os.Remove(s.tmp)
}
