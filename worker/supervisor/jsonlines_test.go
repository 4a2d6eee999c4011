package supervisor

import (
	"log/slog"
	"testing"
)

func TestParseJSONLine(t *testing.T) {
	lv, msg, attrs, ok := parseJSONLine(`{"time":"2026-01-01T00:00:00Z","level":"WARN","msg":"slow","job":"j","attempt":2,"vertex":1,"subtask":0}`)
	if !ok || lv != slog.LevelWarn || msg != "slow" || len(attrs) != 2 ||
		attrs[0].Key != "subtask" || attrs[0].Value.Float64() != 0 || attrs[1].Key != "vertex" || attrs[1].Value.Float64() != 1 {
		t.Fatalf("got %v %q %v %v", lv, msg, attrs, ok)
	}
	for _, line := range []string{"plain text", `{"no":"msg"}`, `{broken`} {
		if _, _, _, ok := parseJSONLine(line); ok {
			t.Errorf("%q parsed as a slog JSON line", line)
		}
	}
}
