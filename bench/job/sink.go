package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/weir-run/weir/bench/nexmark"
	"github.com/weir-run/weir/internal/uvarintframe"
	"github.com/weir-run/weir/sdk"
)

type sinkConfig struct {
	query string
	dir   string // where to write reports; "" logs only
}

// checksumSink ends every query: it hashes the outputs into a checkpointed
// nexmark.Checksum, so the checksum is exactly-once across restores, and
// records their latency when the events carry emit times.
func checksumSink[O nexmark.Output](s sdk.Stream[O], cfg sinkConfig) {
	sdk.NewSink(s, "Checksum", func(t sdk.TaskInfo) (sdk.SinkWriter[O], error) {
		w := &checksumWriter[O]{t: t, cfg: cfg, rep: nexmark.SinkReport{
			Query: cfg.query, Subtask: t.Subtask(), Attempt: t.Attempt(), PID: os.Getpid(), OpenNs: time.Now().UnixNano(),
		}}
		if items, ok := t.Restored(); ok {
			for _, it := range items {
				c, err := decodeChecksum(it)
				if err != nil {
					return nil, err
				}
				w.rep.Checksum.Merge(c)
			}
		}
		return w, nil
	}, sdk.WithName("Checksum"), sdk.WithUID("checksum"))
}

type checksumWriter[O nexmark.Output] struct {
	t   sdk.TaskInfo
	cfg sinkConfig
	rep nexmark.SinkReport
	buf []byte
}

func (w *checksumWriter[O]) Write(o O) error {
	if w.rep.FirstWriteNs == 0 {
		w.rep.FirstWriteNs = time.Now().UnixNano()
	}
	w.buf = nexmark.Add(&w.rep.Checksum, w.buf, o)
	if e := o.EmitTime(); e != 0 {
		w.rep.Latency.Record(time.Now().UnixNano() - e)
	}
	return nil
}

func (w *checksumWriter[O]) PreCommit(int64) ([][]byte, error) {
	return [][]byte{uvarintframe.AppendUvarints(nil, w.rep.Checksum.Count, w.rep.Checksum.Sum)}, nil
}

func (w *checksumWriter[O]) Commit(int64) error { return nil }

func decodeChecksum(b []byte) (nexmark.Checksum, error) {
	d := uvarintframe.NewReader(b)
	n, s := d.Uvarint(), d.Uvarint()
	if err := d.Done(); err != nil {
		return nexmark.Checksum{}, fmt.Errorf("nexmark: corrupt checksum state (%d bytes): %w", len(b), err)
	}
	return nexmark.Checksum{Count: n, Sum: s}, nil
}

func (w *checksumWriter[O]) Finish() error {
	w.rep.FinishNs = time.Now().UnixNano()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		w.rep.CPUNs = ru.Utime.Nano() + ru.Stime.Nano()
	}
	w.t.Logger().Info("nexmark output", "query", w.cfg.query, "checksum", w.rep.Checksum.String())
	if w.cfg.dir == "" {
		return nil
	}
	b, err := json.Marshal(w.rep)
	if err != nil {
		return err
	}
	// Write then rename, so the harness never reads half a report.
	name := filepath.Join(w.cfg.dir, fmt.Sprintf("sink-%d.json", w.t.Subtask()))
	if err := os.WriteFile(name+".tmp", b, 0o644); err != nil {
		return fmt.Errorf("nexmark: write report: %w", err)
	}
	return os.Rename(name+".tmp", name)
}

func (w *checksumWriter[O]) Close() error { return nil }
