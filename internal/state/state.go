// Package state owns the keyed-state backend contract of one subtask and its
// in-memory implementation. The SDK builds typed state (ValueState and so on)
// on top of it; the Pebble backend (internal/pebblestate) implements the same
// contract, and one contract suite (statetest.RunContract) runs in every
// backend's tests.
//
// Keys are opaque to the backend. The SDK lays them out as
// keyGroup(2 bytes, big endian) | operator uid 0x00 | state name 0x00 |
// uvarint length of the user key | user key,
// so a prefix scan by key group finds exactly the state that moves on rescale.
package state

import (
	"bytes"
	"errors"
	"sort"
)

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("state: backend closed")

// Backend is the keyed state of one subtask.
//
// Contract:
//   - Get's returned slice is owned by the backend and valid only until the
//     next call on the backend; callers copy what they keep.
//   - Set copies key and value; callers may reuse their buffers.
//   - Scan visits keys with the prefix in ascending byte order; fn's slices are
//     valid only during the call, and fn must not modify the backend.
//   - A Backend is used by one goroutine (its subtask); it is not safe for
//     concurrent use.
type Backend interface {
	Get(key []byte) (val []byte, ok bool, err error)
	Set(key, val []byte) error
	Delete(key []byte) error
	Scan(prefix []byte, fn func(key, val []byte) error) error
	Close() error
}

// Memory is a Backend in a Go map, for jobs without durable state and for tests.
type Memory struct {
	m      map[string][]byte
	closed bool
}

// NewMemory returns an empty in-memory backend.
func NewMemory() *Memory { return &Memory{m: make(map[string][]byte)} }

func (b *Memory) Get(key []byte) ([]byte, bool, error) {
	if b.closed {
		return nil, false, ErrClosed
	}
	v, ok := b.m[string(key)]
	return v, ok, nil
}

func (b *Memory) Set(key, val []byte) error {
	if b.closed {
		return ErrClosed
	}
	// Reuse the stored slice when it fits: counters rewrite the same key
	// millions of times.
	if old, ok := b.m[string(key)]; ok && cap(old) >= len(val) {
		b.m[string(key)] = append(old[:0], val...)
		return nil
	}
	b.m[string(key)] = bytes.Clone(val)
	return nil
}

func (b *Memory) Delete(key []byte) error {
	if b.closed {
		return ErrClosed
	}
	delete(b.m, string(key))
	return nil
}

func (b *Memory) Scan(prefix []byte, fn func(key, val []byte) error) error {
	if b.closed {
		return ErrClosed
	}
	var keys []string
	for k := range b.m {
		if len(k) >= len(prefix) && k[:len(prefix)] == string(prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn([]byte(k), b.m[k]); err != nil {
			return err
		}
	}
	return nil
}

func (b *Memory) Close() error {
	b.closed = true
	b.m = nil
	return nil
}
