package chunkio

import (
	"errors"
	"io"
	"testing"
)

func chunks(cs [][]byte, end error) func() ([]byte, error) {
	i := 0
	return func() ([]byte, error) {
		if i == len(cs) {
			return nil, end
		}
		i++
		return cs[i-1], nil
	}
}

func TestReaderConcatenatesChunks(t *testing.T) {
	r := NewReader(chunks([][]byte{[]byte("ab"), {}, []byte("cde"), []byte("f")}, io.EOF))
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "abcdef" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
}

func TestReaderReturnsStreamError(t *testing.T) {
	boom := errors.New("stream broke")
	r := NewReader(chunks([][]byte{[]byte("ab")}, boom))
	got, err := io.ReadAll(r)
	if string(got) != "ab" || !errors.Is(err, boom) {
		t.Fatalf("ReadAll = %q, %v; want the data then the stream's error", got, err)
	}
}

// A small destination buffer reads a chunk in pieces without losing bytes.
func TestReaderSmallReads(t *testing.T) {
	r := NewReader(chunks([][]byte{[]byte("hello world")}, io.EOF))
	var out []byte
	p := make([]byte, 3)
	for {
		n, err := r.Read(p)
		out = append(out, p[:n]...)
		if err == io.EOF {
			break
		}
	}
	if string(out) != "hello world" {
		t.Fatalf("got %q", out)
	}
}
