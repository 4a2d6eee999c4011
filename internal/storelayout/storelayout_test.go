package storelayout

import (
	"strings"
	"testing"
)

func TestURLRoundTrip(t *testing.T) {
	for _, c := range []struct{ store, key string }{
		{"file:///data/store", "savepoints/j1/sp-3/_manifest"},
		{"file:///data/store/", "checkpoints/j1/chk-9/_manifest"},
		{"s3://bucket?endpoint=http://127.0.0.1:9000&use_path_style=true", "savepoints/j/sp-1/_manifest"},
	} {
		u := URL(c.store, c.key)
		store, key, err := Split(u)
		if err != nil || key != c.key || URL(store, key) != u {
			t.Errorf("Split(URL(%q, %q)) = %q, %q, %v", c.store, c.key, store, key, err)
		}
	}
	if _, _, err := Split("file:///tmp/nothing"); err == nil {
		t.Error("Split accepted a location without a savepoint")
	}
}

func TestLayout(t *testing.T) {
	if got := Manifest("j", 7, false); got != "checkpoints/j/chk-7/_manifest" {
		t.Error(got)
	}
	if got := Private("j", 7, true, 1, 2); got != "savepoints/j/sp-7/v1-s2/" {
		t.Error(got)
	}
	if got := Binary("ab12"); got != "binaries/ab12" {
		t.Error(got)
	}
	if got := SharedFile(Shared("j"), "ab12", ".sst"); got != "checkpoints/j/shared/ab12.sst" {
		t.Error(got)
	}
}

func TestOwns(t *testing.T) {
	for _, c := range []struct {
		key  string
		want bool
	}{
		{"checkpoints/j1/shared/ab.sst", true},
		{"checkpoints/j1/chk-3/v0-s1/MANIFEST-000001", true},
		{"savepoints/j1/sp-4/_manifest", true},
		{"checkpoints/j10/shared/ab.sst", false},
		{"savepoints/j2/sp-1/_manifest", false},
		{"binaries/" + strings.Repeat("a", 64), false},
		{"checkpoints/j1/../j2/chk-1/_manifest", false},
		{"/checkpoints/j1/x", false},
		{"checkpoints/j1", false},
	} {
		if got := Owns("j1", c.key); got != c.want {
			t.Errorf("Owns(j1, %q) = %v, want %v", c.key, got, c.want)
		}
	}
	if Owns("", "checkpoints//x") {
		t.Error("an empty job owns something")
	}
}

func TestJobOf(t *testing.T) {
	for key, want := range map[string]string{
		"savepoints/j1/sp-3/_manifest":          "j1",
		"checkpoints/j2/shared/ab.sst":          "j2",
		"checkpoints/j2/chk-1/v0-s0/MANIFEST-1": "j2",
		"binaries/abc":                          "",
		"savepoints//sp-1/_manifest":            "",
		"savepoints/j1":                         "",
		"checkpoints/../binaries/x":             "",
	} {
		if got := JobOf(key); got != want {
			t.Errorf("JobOf(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestJobPrefixes(t *testing.T) {
	got, err := JobPrefixes("ab12", true)
	if err != nil || strings.Join(got, " ") != "checkpoints/ab12/ savepoints/ab12/" {
		t.Fatalf("JobPrefixes(ab12, true) = %q, %v", got, err)
	}
	if got, _ := JobPrefixes("ab12", false); strings.Join(got, " ") != "checkpoints/ab12/" {
		t.Fatalf("JobPrefixes(ab12, false) = %q", got)
	}
	for _, p := range got {
		if !Owns("ab12", p+"x") || Owns("ab1", p+"x") {
			t.Fatalf("%s: not exactly the job's own", p)
		}
	}
	for _, bad := range []string{"", "a/b", "..", "../x"} {
		if _, err := JobPrefixes(bad, true); err == nil {
			t.Errorf("JobPrefixes(%q) accepted", bad)
		}
	}
}
