package pki

import (
	"fmt"
	"net"
	"strings"
)

// InsecureFlag is the flag an operator passes to accept plaintext beyond
// loopback.
const InsecureFlag = "--insecure-plaintext"

// CheckListen refuses to serve plaintext on anything but loopback unless
// the operator said so: a daemon on 0.0.0.0 or 10.0.0.x without TLS hands
// the cluster to anyone on the network. flag names the listen flag in the
// error. An address with no host ("":9090, ":0") listens everywhere.
func CheckListen(flag, addr string, tlsOn, insecurePlaintext bool) error {
	if tlsOn || insecurePlaintext || IsLoopback(addr) {
		return nil
	}
	return fmt.Errorf("%s %s is reachable beyond this machine and TLS is off: set --tls-ca, --tls-cert and --tls-key (see weir certs), or pass %s to accept plaintext", flag, addr, InsecureFlag)
}

// IsLoopback reports whether addr (host:port, a bare host, or a URL such as
// http://127.0.0.1:2379) can only be reached from this machine.
func IsLoopback(addr string) bool {
	if i := strings.Index(addr, "://"); i >= 0 {
		addr = addr[i+3:]
	}
	addr = strings.TrimSuffix(addr, "/")
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
