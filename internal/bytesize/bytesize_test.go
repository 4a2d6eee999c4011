package bytesize

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"4096": 4096, "2GiB": 2 << 30, "2gib": 2 << 30, "512 MiB": 512 << 20, "1.5GB": 1_500_000_000,
		"1M": 1 << 20, "10B": 10, "0": 0, "1KB": 1000, "3TiB": 3 << 40,
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1MiB", "2 lots", "1e400", "NaN"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{
		512: "512 bytes", 3 << 20: "3.0 MiB", 1 << 20: "1.0 MiB", 2 << 30: "2.0 GiB", 1536: "1.5 KiB",
	} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}
