package storelayout

import "testing"

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
