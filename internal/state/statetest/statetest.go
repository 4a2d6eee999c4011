// Package statetest holds the contract suite every state.Backend passes,
// run by each backend's own tests (memory here, Pebble in pebblestate), so
// one set of cases defines what a backend must do.
package statetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/weir-run/weir/internal/state"
)

// RunContract runs the contract suite against backends made by open.
func RunContract(t *testing.T, open func(t *testing.T) state.Backend) {
	b := open(t)
	key := []byte("\x00\x01op/count/k1")
	if _, ok, err := b.Get(key); ok || err != nil {
		t.Fatalf("Get on empty: ok=%v err=%v", ok, err)
	}
	buf := []byte("v1")
	if err := b.Set(key, buf); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'X' // Set must have copied
	if v, ok, _ := b.Get(key); !ok || string(v) != "v1" {
		t.Fatalf("Get = %q, %v; want v1", v, ok)
	}
	if err := b.Set(key, []byte("longer value")); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := b.Get(key); string(v) != "longer value" {
		t.Fatalf("overwrite: got %q", v)
	}
	for i := 5; i >= 0; i-- {
		b.Set([]byte(fmt.Sprintf("\x00\x02op/count/k%d", i)), []byte{byte(i)})
	}
	b.Set([]byte("\x00\x03op/count/other"), []byte("x"))
	var seen []string
	b.Scan([]byte("\x00\x02"), func(k, v []byte) error {
		if !bytes.HasPrefix(k, []byte("\x00\x02")) {
			t.Errorf("scan returned key %q outside prefix", k)
		}
		seen = append(seen, string(k[len(k)-2:]))
		return nil
	})
	if fmt.Sprint(seen) != "[k0 k1 k2 k3 k4 k5]" {
		t.Fatalf("scan order %v", seen)
	}
	stop := errors.New("stop")
	if err := b.Scan(nil, func(k, v []byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("scan error not propagated: %v", err)
	}
	b.Delete(key)
	if _, ok, _ := b.Get(key); ok {
		t.Fatal("deleted key still present")
	}
	b.Close()
	if _, _, err := b.Get(key); !errors.Is(err, state.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}
