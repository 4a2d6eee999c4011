// Package syncbuf owns Buffer, a bytes.Buffer safe for one writer
// goroutine or more and readers on others: the output of a child process that
// exec's copying goroutines write while a test or a helper reads it.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects writes under a mutex. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Len is how many bytes were written so far.
func (l *Buffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}
