package describe

import (
	"os"
	"runtime"
	"testing"
)

func TestELFPlatform(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	want := ""
	if runtime.GOOS == "linux" {
		want = "linux/" + runtime.GOARCH
	}
	if got := ELFPlatform(b[:HeaderLen]); got != want {
		t.Errorf("the test binary's platform: %q, want %q", got, want)
	}
	arm := append([]byte{}, b[:HeaderLen]...)
	arm[0], arm[1], arm[2], arm[3] = 0x7f, 'E', 'L', 'F'
	arm[4], arm[5], arm[7], arm[18], arm[19] = 2, 1, 0, 0xb7, 0 // 64-bit, little-endian, SYSV, EM_AARCH64
	if got := ELFPlatform(arm); got != "linux/arm64" {
		t.Errorf("an arm64 header: %q", got)
	}
	arm[7] = 9 // FreeBSD
	for name, head := range map[string][]byte{"freebsd": arm, "script": []byte("#!/bin/sh\necho hello\n"), "short": []byte("\x7fELF")} {
		if got := ELFPlatform(head); got != "" {
			t.Errorf("%s: %q, want none", name, got)
		}
	}
}
