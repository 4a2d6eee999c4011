package pki

import (
	"strings"
	"testing"
)

func TestCheckListen(t *testing.T) {
	for _, c := range []struct {
		addr            string
		tlsOn, insecure bool
		ok              bool
	}{
		{"127.0.0.1:9090", false, false, true},
		{"127.0.0.7:9090", false, false, true},
		{"localhost:0", false, false, true},
		{"[::1]:9090", false, false, true},
		{"http://127.0.0.1:2379", false, false, true},
		{"127.0.0.1", false, false, true},
		{":9090", false, false, false},
		{"0.0.0.0:9090", false, false, false},
		{"[::]:9090", false, false, false},
		{"10.0.0.1:9090", false, false, false},
		{"http://10.0.0.1:2380", false, false, false},
		{"coord.example:9090", false, false, false},
		{"localhost.example.com:9090", false, false, false},
		{"10.0.0.1:9090", true, false, true},
		{"10.0.0.1:9090", false, true, true},
	} {
		err := CheckListen("--listen", c.addr, c.tlsOn, c.insecure)
		if (err == nil) != c.ok {
			t.Errorf("CheckListen(%q, tls=%v, insecure=%v) = %v, want ok=%v", c.addr, c.tlsOn, c.insecure, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--insecure-plaintext") {
			t.Errorf("the refusal does not say how to accept plaintext: %v", err)
		}
	}
}
