package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/weir-run/weir/internal/etcdtest"
)

func TestChannelSecrets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := etcdtest.Start(t)

	first, err := loadClusterSecret(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	again, err := loadClusterSecret(ctx, cli)
	if err != nil || string(again) != string(first) || len(first) != 32 {
		t.Fatalf("a second leader reads another cluster secret (%x, %v), want %x", again, err, first)
	}
	a, b := &leaderState{clusterSecret: first}, &leaderState{clusterSecret: again}
	if a.channelSecret("j1", 3) != b.channelSecret("j1", 3) {
		t.Error("two leaders derive different secrets for one attempt")
	}
	seen := map[string]bool{}
	for _, k := range []struct {
		job     string
		attempt int64
	}{{"j1", 3}, {"j1", 4}, {"j2", 3}, {"j13", 1}, {"j1", 31}} {
		s := a.channelSecret(k.job, k.attempt)
		if seen[s] || len(s) != 64 {
			t.Errorf("secret of %v repeats or is malformed: %q", k, s)
		}
		seen[s] = true
	}
	other := &leaderState{clusterSecret: make([]byte, 32)}
	if other.channelSecret("j1", 3) == a.channelSecret("j1", 3) {
		t.Error("another cluster derives the same secret")
	}
}
