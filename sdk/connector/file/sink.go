package file

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/weir-run/weir/sdk"
)

// Sink writes one line per record, format(record), into dir, exactly once.
//
// Each subtask writes a hidden in-progress file. When the job checkpoints,
// the barrier makes it pending (hidden, durable) and the completed checkpoint
// commits it by renaming it to part-<subtask>-<checkpoint>. When the input
// ends, the job's final checkpoint (FLIP-147) makes the last file pending
// and commits it on completion, as any other; without checkpoints,
// everything is committed at the end and the last file becomes
// part-<subtask>-end. Visible output is therefore always complete, and a
// restore from checkpoint m commits what m had pending and removes what was
// committed after m (it is about to be written again), so output is never
// duplicated. Without checkpoints a restarted job rewrites part-<subtask>-end.
func Sink[T any](s sdk.Stream[T], dir string, format func(T) string, opts ...sdk.Option) {
	sdk.NewSink(s, "FileSink", func(t sdk.TaskInfo) (sdk.SinkWriter[T], error) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		w := &sinkWriter[T]{dir: dir, subtask: t.Subtask(), attempt: t.Attempt(), format: format, final: t.Checkpointing()}
		if err := w.recover(t); err != nil {
			return nil, err
		}
		return w, nil
	}, append([]sdk.Option{sdk.WithName("FileSink")}, opts...)...)
}

// sinkState is one subtask's checkpointed state.
type sinkState struct {
	Subtask    int       `json:"subtask"`
	Checkpoint int64     `json:"checkpoint"`
	Pending    []pending `json:"pending"`
}

// pending is a durable hidden file awaiting its checkpoint's completion.
type pending struct {
	Checkpoint int64  `json:"checkpoint"`
	Path       string `json:"path"`
	Final      string `json:"final"`
}

type sinkWriter[T any] struct {
	dir     string
	subtask int
	attempt int64
	format  func(T) string
	seq     int
	f       *os.File
	w       *bufio.Writer
	tmp     string
	written int64
	pending []pending
	// final: the job checkpoints, so a final checkpoint follows Finish
	// and commits the last file.
	final bool
}

func (s *sinkWriter[T]) hiddenPrefix(subtask int) string  { return fmt.Sprintf(".part-%05d-", subtask) }
func (s *sinkWriter[T]) visiblePrefix(subtask int) string { return fmt.Sprintf("part-%05d-", subtask) }

// recover commits what the restored checkpoint had pending, removes output
// committed after it and hidden leftovers, for every subtask whose state this
// one received (its own at equal parallelism).
func (s *sinkWriter[T]) recover(t sdk.TaskInfo) error {
	items, restored := t.Restored()
	if !restored {
		// A restart from the beginning (no usable checkpoint) writes all
		// of its output again: drop what earlier attempts committed.
		after := int64(-1)
		if t.Attempt() > 1 {
			after = 0
		}
		return s.clean(s.subtask, nil, after)
	}
	for _, it := range items {
		var st sinkState
		if err := json.Unmarshal(it, &st); err != nil {
			return fmt.Errorf("file sink: corrupt state: %w", err)
		}
		for _, p := range st.Pending {
			if err := commit(p); err != nil {
				return err
			}
		}
		if err := s.clean(st.Subtask, st.Pending, st.Checkpoint); err != nil {
			return err
		}
	}
	return nil
}

// clean removes subtask's hidden files and, when after >= 0, its visible
// files committed after checkpoint after (and its end file); after 0 means
// all of them.
func (s *sinkWriter[T]) clean(subtask int, keep []pending, after int64) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	hidden, visible := s.hiddenPrefix(subtask), s.visiblePrefix(subtask)
	for _, e := range entries {
		name := e.Name()
		remove := strings.HasPrefix(name, hidden)
		if rest, ok := strings.CutPrefix(name, visible); ok && after >= 0 {
			id, err := strconv.ParseInt(rest, 10, 64)
			remove = rest == "end" || (err == nil && id > after)
		}
		if remove {
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}

// commit makes a pending file visible; done already is fine (idempotent).
func commit(p pending) error {
	err := os.Rename(p.Path, p.Final)
	if err != nil && os.IsNotExist(err) {
		if _, serr := os.Stat(p.Final); serr == nil {
			return nil
		}
		return fmt.Errorf("file sink: pending file %s is lost: %w", p.Path, err)
	}
	if err == nil {
		syncDir(filepath.Dir(p.Final))
	}
	return err
}

func (s *sinkWriter[T]) Write(v T) error {
	if s.f == nil {
		s.seq++
		s.tmp = filepath.Join(s.dir, fmt.Sprintf("%sa%d-%d.inprogress", s.hiddenPrefix(s.subtask), s.attempt, s.seq))
		f, err := os.Create(s.tmp)
		if err != nil {
			return err
		}
		s.f, s.w, s.written = f, bufio.NewWriterSize(f, 256<<10), 0
	}
	n, err := s.w.WriteString(s.format(v))
	s.written += int64(n) + 1
	if err != nil {
		return err
	}
	return s.w.WriteByte('\n')
}

// closeFile makes the in-progress file durable and renames it to path.
func (s *sinkWriter[T]) closeFile(path string) error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	if err := s.f.Close(); err != nil {
		return err
	}
	s.f = nil
	return os.Rename(s.tmp, path)
}

// PreCommit: on the barrier of checkpoint id, what was written becomes a
// durable pending file, and the state lists every uncommitted file.
func (s *sinkWriter[T]) PreCommit(id int64) ([][]byte, error) {
	if s.f != nil {
		p := pending{Checkpoint: id,
			Path:  filepath.Join(s.dir, fmt.Sprintf("%s%d.pending", s.hiddenPrefix(s.subtask), id)),
			Final: filepath.Join(s.dir, fmt.Sprintf("%s%d", s.visiblePrefix(s.subtask), id))}
		if err := s.closeFile(p.Path); err != nil {
			return nil, err
		}
		s.pending = append(s.pending, p)
	}
	b, err := json.Marshal(sinkState{Subtask: s.subtask, Checkpoint: id, Pending: s.pending})
	if err != nil {
		return nil, err
	}
	return [][]byte{b}, nil
}

// Commit: checkpoint id completed; its pending files and older ones become
// visible.
func (s *sinkWriter[T]) Commit(id int64) error {
	keep := s.pending[:0]
	for _, p := range s.pending {
		if p.Checkpoint > id {
			keep = append(keep, p)
			continue
		}
		if err := commit(p); err != nil {
			return err
		}
	}
	s.pending = keep
	return nil
}

// Finish: the input ended. With checkpoints the final one commits the
// rest (committing here would make visible what a restore from an earlier
// checkpoint writes again); without, commit everything, the rest as the
// end file.
func (s *sinkWriter[T]) Finish() error {
	if s.final {
		return nil
	}
	if err := s.Commit(1<<63 - 1); err != nil {
		return err
	}
	if s.f == nil {
		return nil
	}
	final := filepath.Join(s.dir, s.visiblePrefix(s.subtask)+"end")
	if err := s.closeFile(final); err != nil {
		return err
	}
	syncDir(s.dir)
	return nil
}

// Close abandons the in-progress file; pending files stay for a restore.
func (s *sinkWriter[T]) Close() error {
	if s.f == nil {
		return nil
	}
	s.f.Close()
	s.f = nil
	return errors.Join(os.Remove(s.tmp))
}

// syncDir persists renames in dir.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
