package etcdserver

import (
	"context"
	"log/slog"
	"sort"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger returns a zap logger that writes into h, for etcd, which only
// speaks zap. minLevel is applied before h's own Enabled, so a handler configured
// for debug output does not also turn on etcd's debug firehose. While
// stopping is set every entry is demoted to debug: etcd reports its own
// orderly shutdown as errors ("server closed", "use of closed network
// connection"), which are noise once we asked for the shutdown.
func newZapLogger(h slog.Handler, minLevel slog.Level, stopping *atomic.Bool) *zap.Logger {
	return zap.New(&slogCore{h: h, min: minLevel, stopping: stopping})
}

// slogCore is a zapcore.Core that forwards entries to a slog.Handler.
type slogCore struct {
	h        slog.Handler
	min      slog.Level
	stopping *atomic.Bool
}

var _ zapcore.Core = (*slogCore)(nil)

func (c *slogCore) level(l zapcore.Level) slog.Level {
	if c.stopping.Load() {
		return slog.LevelDebug
	}
	return slogLevel(l)
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	sl := c.level(l)
	return sl >= c.min && c.h.Enabled(context.Background(), sl)
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	if len(fields) == 0 {
		return c
	}
	return &slogCore{h: c.h.WithAttrs(attrs(fields)), min: c.min, stopping: c.stopping}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, c.level(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(attrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		// DPanic, Panic and Fatal are all errors to a slog reader; zap
		// itself still panics or exits after the write.
		return slog.LevelError
	}
}

// attrs renders zap fields through zap's own map encoder, so every field
// type (errors, stringers, arrays, objects) comes out as zap would print it.
func attrs(fields []zapcore.Field) []slog.Attr {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys) // map order is random; stable output is easier to read and test
	out := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		out = append(out, slog.Any(k, enc.Fields[k]))
	}
	return out
}
