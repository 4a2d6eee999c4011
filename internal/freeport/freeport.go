package freeport

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// tries bounds the search for a port not handed out yet: the kernel picks
// among thousands, so more than a few repeats means something is wrong.
const tries = 100

// Port returns a TCP port on host that was free a moment ago and that no
// earlier call in this process returned.
func Port(host string) (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range tries {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("pick a free port on %s: %w", host, err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut.ports[p] {
			handedOut.ports[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("pick a free port on %s: every port offered in %d tries was handed out before", host, tries)
}

// Addr is a Port on 127.0.0.1, as host:port.
func Addr() (string, error) {
	p, err := Port("127.0.0.1")
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}
