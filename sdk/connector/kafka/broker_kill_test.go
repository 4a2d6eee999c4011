package kafka

import (
	"strings"
	"testing"

	"github.com/weir-run/weir/internal/kafkaproc"
)

// The exactly-once sink loses nothing when the embedded broker, `weir
// kafka`, is killed -9 between a checkpoint's pre-commit and its commit and
// restarted on its data dir (the chaos campaign's kill-broker): a subtask
// that lives on commits the checkpoint's transaction on the restarted
// broker, the restored job recommits the other subtask's, and the
// transaction no checkpoint covers, open at the kill, is aborted by the
// restored job's fence.
func TestSinkExactlyOnceAcrossBrokerKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs weir kafka")
	}
	bin := kafkaproc.BuildWeir(t)
	dir, addr := t.TempDir(), kafkaproc.Addr(t)
	b := kafkaproc.Start(t, bin, nil, dir, addr)
	brokers := []string{addr}
	j := &job{t: t, brokers: brokers, p: 2}
	ws := j.open(nil, false)
	write(t, ws[0], values("v", 0, 5)...)
	write(t, ws[1], values("v", 5, 10)...)
	preCommit(t, ws, 1)
	for _, w := range ws {
		if err := w.Commit(1); err != nil {
			t.Fatal(err)
		}
	}
	write(t, ws[0], values("v", 10, 15)...)
	write(t, ws[1], values("v", 15, 20)...)
	items2 := preCommit(t, ws, 2)
	write(t, ws[0], "after-2") // in a transaction no checkpoint covers

	b.Kill(t)
	b = kafkaproc.Start(t, bin, nil, dir, addr)
	// Checkpoint 2 completed: subtask 0 hears of it, subtask 1 fails
	// first, and the job restores checkpoint 2.
	if err := ws[0].Commit(2); err != nil {
		t.Fatalf("commit on the restarted broker: %v", err)
	}
	for _, w := range ws {
		crash(w)
	}
	ws = j.open(items2, true)
	for i, v := range values("v", 20, 30) {
		write(t, ws[i%len(ws)], v)
	}
	for _, w := range ws {
		finish(t, w, 3)
		w.Close()
	}
	if got, want := readCommitted(t, brokers, "out"), sorted(values("v", 0, 30)); !equal(got, want) {
		t.Fatalf("read_committed output has %d records: %v\nwant each of %d once\nbroker log:\n%s", len(got), got, len(want), b.Log())
	}
	if strings.Contains(b.Log(), "LOST") {
		t.Errorf("the broker lost a transaction:\n%s", b.Log())
	}
}
