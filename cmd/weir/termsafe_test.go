package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func TestTerminalSafe(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain ünïcode\ttab\n", "plain ünïcode\ttab\n"},
		{"job \x1b[2J\x1b]0;pwned\x07name", `job \u001b[2J\u001b]0;pwned\u0007name`},
		{"a\rb", `a\u000db`},
		{"del\x7f c1\u0085 csi\u009b", `del\u007f c1\u0085 csi\u009b`},
		{"bad \xff utf8", "bad \uFFFD utf8"},
	} {
		var b bytes.Buffer
		if _, err := newTerminalSafe(&b).Write([]byte(c.in)); err != nil {
			t.Fatal(err)
		}
		if b.String() != c.want {
			t.Errorf("%q → %q, want %q", c.in, b.String(), c.want)
		}
	}
}

func TestTerminalSafeRuneSplitAcrossWrites(t *testing.T) {
	var b bytes.Buffer
	w := newTerminalSafe(&b)
	in := []byte("é\u0085x") // 2-byte é, 2-byte C1 control
	for i := range in {
		w.Write(in[i : i+1])
	}
	if b.String() != `é\u0085x` {
		t.Errorf("byte-at-a-time writes gave %q", b.String())
	}
}

// JSON output keeps its meaning: the escapes are JSON's own.
func TestTerminalSafeKeepsJSON(t *testing.T) {
	v := map[string]string{"name": "x\u0085\u009b[31my"}
	raw, _ := json.Marshal(v)
	var b bytes.Buffer
	newTerminalSafe(&b).Write(raw)
	if bytes.ContainsRune(b.Bytes(), 0x85) {
		t.Fatalf("a C1 control reached the terminal: %q", b.String())
	}
	var back map[string]string
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back["name"] != v["name"] {
		t.Errorf("JSON changed meaning: %q → %v, %v", b.String(), back, err)
	}
}

// A job named with escapes, failing with one, reaches weir list, status and
// the error line as visible text, never as escapes.
func TestCLIEscapesWhatTheClusterSays(t *testing.T) {
	evil := "\x1b[2J\x1b]0;pwned\x07"
	addr := serveFake(t, &fakeJobs{jobs: map[string]*weirv1.JobStatus{
		"j1": {Id: "j1", Name: evil, State: weirv1.JobState_JOB_STATE_FAILED, Error: "boom " + evil},
	}})
	for _, args := range [][]string{{"list"}, {"status", "j1"}, {"status", "nope"}, {"list", "-o", "json"}} {
		_, out, errs := weir(context.Background(), append(args, "--coordinator", addr)...)
		if strings.ContainsAny(out+errs, "\x1b\x07") {
			t.Errorf("weir %v wrote raw escapes: %q %q", args, out, errs)
		}
	}
	_, out, _ := weir(context.Background(), "list", "--coordinator", addr)
	if !strings.Contains(out, `\u001b[2J`) {
		t.Errorf("weir list does not show the name's escapes as text: %q", out)
	}
}
