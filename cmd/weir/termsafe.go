package main

import (
	"fmt"
	"io"
	"sync"
	"unicode"
	"unicode/utf8"
)

// terminalSafe wraps what the CLI writes for a person to read. Job names,
// error texts and tapped records come from the cluster and from jobs, so a
// name holding ANSI escapes could rewrite the terminal (move the cursor,
// hide a line, set the window title). Control characters other than newline
// and tab are written as \u00XX, the same escape JSON uses, so JSON output
// keeps its meaning; bytes that are not UTF-8 become U+FFFD.
type terminalSafe struct {
	w io.Writer

	// mu keeps it as safe for concurrent writers (daemon logs, progress
	// lines) as the *os.File it usually wraps.
	mu    sync.Mutex
	carry []byte // the start of a rune split across writes
}

func newTerminalSafe(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	return &terminalSafe{w: w}
}

func (t *terminalSafe) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	data := p
	if len(t.carry) > 0 {
		data = append(t.carry, p...)
		t.carry = nil
	}
	out := make([]byte, 0, len(data))
	for len(data) > 0 {
		if !utf8.FullRune(data) {
			t.carry = append([]byte(nil), data...)
			break
		}
		r, n := utf8.DecodeRune(data)
		data = data[n:]
		switch {
		case r == utf8.RuneError && n == 1:
			out = utf8.AppendRune(out, utf8.RuneError)
		case r == '\n' || r == '\t':
			out = append(out, byte(r))
		case unicode.IsControl(r):
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = utf8.AppendRune(out, r)
		}
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
