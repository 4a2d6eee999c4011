package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// retryBackoff spaces retries of coordinator requests the broker answers
// with a retriable error (loading, moving, concurrent transactions).
const retryBackoff = 100 * time.Millisecond

// recommit commits a transaction a checkpoint recorded, with the producer
// id and epoch it was opened with. Kafka answers a repeated commit of a
// completed transaction with success, or, once the id's epoch has moved on
// (our next transaction on the slot, or a later recovery, re-initialised
// it), with a fencing error: neither happens before the commit was done,
// because slots are reused and fenced only after their transaction
// committed. An abort (the transaction timed out, or a broker that cannot
// resume transactions after a crash lost it) means lost records; that is
// logged, since failing the job cannot bring them back.
func recommit(ctx context.Context, cl *kgo.Client, p pending, logger *slog.Logger) error {
	for {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID = p.ID
		req.ProducerID = p.ProducerID
		req.ProducerEpoch = p.Epoch
		req.Commit = true
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("kafka sink: recommit transaction %s of checkpoint %d: %w", p.ID, p.Checkpoint, err)
		}
		err = kerr.ErrorForCode(resp.ErrorCode)
		switch {
		case err == nil:
			logger.Info("kafka sink: committed the transaction of the restored checkpoint", "transaction", p.ID, "checkpoint", p.Checkpoint)
			return nil
		case errors.Is(err, kerr.ProducerFenced), errors.Is(err, kerr.InvalidProducerEpoch):
			logger.Info("kafka sink: the restored checkpoint's transaction was already committed", "transaction", p.ID, "checkpoint", p.Checkpoint)
			return nil
		case errors.Is(err, kerr.InvalidTxnState), errors.Is(err, kerr.InvalidProducerIDMapping):
			logger.Error("kafka sink: the restored checkpoint's transaction was aborted by the broker, because it outlived "+
				"the transaction timeout or the broker lost it in a crash; its records are lost",
				"transaction", p.ID, "checkpoint", p.Checkpoint, "err", err)
			return nil
		case kerr.IsRetriable(err) || errors.Is(err, kerr.ConcurrentTransactions):
			if err := sleep(ctx, retryBackoff); err != nil {
				return fmt.Errorf("kafka sink: recommit transaction %s: %w", p.ID, err)
			}
		default:
			return fmt.Errorf("kafka sink: recommit transaction %s of checkpoint %d: %w", p.ID, p.Checkpoint, err)
		}
	}
}

// fenceID initialises a transactional id afresh: the broker aborts its open
// transaction, if any, and bumps its epoch, so a zombie producer using it
// can no longer write or commit.
func fenceID(ctx context.Context, cl *kgo.Client, id string, timeout time.Duration) error {
	for {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID = kmsg.StringPtr(id)
		req.TransactionTimeoutMillis = int32(timeout.Milliseconds())
		req.ProducerID, req.ProducerEpoch = -1, -1
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("kafka sink: fence transactional id %s: %w", id, err)
		}
		err = kerr.ErrorForCode(resp.ErrorCode)
		switch {
		case err == nil:
			return nil
		case kerr.IsRetriable(err) || errors.Is(err, kerr.ConcurrentTransactions):
			if err := sleep(ctx, retryBackoff); err != nil {
				return fmt.Errorf("kafka sink: fence transactional id %s: %w", id, err)
			}
		default:
			return fmt.Errorf("kafka sink: fence transactional id %s: %w", id, err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
