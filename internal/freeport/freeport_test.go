package freeport

import (
	"net"
	"testing"
)

// Ports are bindable and never repeat, even when the kernel offers a port
// again: here each one is released at once, as its owner has not bound it
// yet.
func TestPortsAreFreeAndNeverRepeat(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		a, err := Addr()
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
	}
	a, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("the port handed out is not free: %v", err)
	}
	l.Close()
	if _, err := Port("256.0.0.1"); err == nil {
		t.Fatal("a port on a host that is no address")
	}
}
