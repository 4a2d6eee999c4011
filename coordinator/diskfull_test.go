package coordinator

import "testing"

// A restore that failed because the worker's disk is full is retried on
// the same checkpoint; any other restore failure may fall back to an
// older one.
func TestLocalDiskFull(t *testing.T) {
	for _, c := range []struct {
		err  string
		want bool
	}{
		{"Count -> KafkaSink (subtask 2/2): restore from checkpoint 489: snapshot: download checkpoints/j/shared/f.sst: write /w1/jobs/j-58-0/state/db-v1-s1/000987.sst: no space left on device", true},
		{"restore: write /data/x: disk quota exceeded", true},
		{"restore from checkpoint 7: snapshot: checkpoints/j/chk-7/_manifest: NoSuchKey", false},
		{"restore from checkpoint 7: state checksum mismatch", false},
	} {
		if got := localDiskFull(c.err); got != c.want {
			t.Errorf("localDiskFull(%q) = %v, want %v", c.err, got, c.want)
		}
	}
}
