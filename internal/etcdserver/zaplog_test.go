package etcdserver

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
)

func TestZapBridge(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	stopping := new(atomic.Bool)
	lg := newZapLogger(h, slog.LevelWarn, stopping).With(zap.String("member", "a"))

	lg.Info("routine", zap.Int("n", 1))
	lg.Warn("slow apply", zap.Duration("took", 0))
	lg.Error("bad", zap.Error(errors.New("boom")), zap.Strings("urls", []string{"u"}))
	stopping.Store(true)
	lg.Error("server closed")

	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="slow apply" member=a took=0s`,
		`level=ERROR msg=bad member=a error=boom urls=[u]`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"routine", "server closed"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("output has %q below the minimum level:\n%s", unwanted, out)
		}
	}
}
