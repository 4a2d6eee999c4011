package jobgraph

import (
	"errors"
	"fmt"
	"strings"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// TransactionBounds are the settings that decide how long an operator's
// external transaction can stay open: it is opened after one checkpoint's
// barrier and committed when the next checkpoint completes, which can take
// the interval plus the checkpoint timeout, plus a restart's delay when the
// job fails in between and the restored job commits it.
type TransactionBounds struct {
	CheckpointInterval time.Duration // 0: no checkpoints, no transactions
	CheckpointTimeout  time.Duration
	MaxRestartDelay    time.Duration
}

// Longest is how long a transaction may have to stay open.
func (b TransactionBounds) Longest() time.Duration {
	return b.CheckpointInterval + b.CheckpointTimeout + b.MaxRestartDelay
}

// CheckTransactionTimeouts refuses a graph with an operator whose
// transactions the external system would abort before the checkpoint that
// commits them can complete: an aborted transaction is lost output (the
// classic Flink-with-Kafka data loss). Every offending operator is named.
func CheckTransactionTimeouts(g *weirv1.JobGraph, b TransactionBounds) error {
	if b.CheckpointInterval <= 0 {
		return nil
	}
	need := b.Longest()
	var bad []string
	for _, v := range g.GetVertices() {
		for _, op := range v.GetOperators() {
			t := time.Duration(op.GetTransactionTimeoutMs()) * time.Millisecond
			if t > 0 && t <= need {
				bad = append(bad, fmt.Sprintf("operator %q (uid %s) has transaction timeout %v", op.GetName(), op.GetUid(), t))
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s, but a transaction may have to stay open for %v "+
		"(checkpoint interval %v + checkpoint timeout %v + restart delay up to %v), "+
		"and the broker would abort it and lose its records: "+
		"raise the transaction timeout above %v (the broker caps it at transaction.max.timeout.ms), "+
		"or lower --checkpoint-interval, --checkpoint-timeout or the restart backoff",
		ErrTransactionTimeout, strings.Join(bad, "; "), need,
		b.CheckpointInterval, b.CheckpointTimeout, b.MaxRestartDelay, need)
}

// ErrTransactionTimeout is wrapped by CheckTransactionTimeouts' errors.
var ErrTransactionTimeout = errors.New("jobgraph: transaction timeout too short")
