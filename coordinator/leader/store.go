package leader

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// listPage bounds one List round trip, keeping responses well under gRPC's
// message limits however large a prefix grows.
var listPage int64 = 1000 // a var so tests can make pages small

// Store reads and writes cluster metadata. Every write is one etcd
// transaction conditioned on the leader key still existing with the create
// revision this Elector won it with, so it commits only while this process
// leads; otherwise it fails with an error wrapping ErrFenced and changes
// nothing. A refused write also ends the term (Leading is closed).
//
// The Store follows its Elector: writes are fenced by whatever term the
// Elector holds at the time, so a Store taken before Campaign works once it
// returns. Keys are absolute etcd keys. Any error other than ErrFenced from
// a write leaves its outcome unknown: etcd may have applied it.
//
// Reads are not fenced: followers may use them, and they are linearizable.
type Store struct {
	e *Elector
}

// Store returns the Elector's fenced metadata store.
func (e *Elector) Store() *Store { return &Store{e: e} }

// fence returns the current term and the comparison that holds only while
// it lasts, or ErrFenced without a round trip if there is none.
func (s *Store) fence() (*term, clientv3.Cmp, error) {
	t := s.e.currentTerm()
	if t == nil {
		return nil, clientv3.Cmp{}, ErrFenced
	}
	return t, clientv3.Compare(clientv3.CreateRevision(t.key), "=", t.rev), nil
}

// commit runs ops if and only if the term t still holds.
func (s *Store) commit(ctx context.Context, t *term, cmp clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	resp, err := s.e.cli.Txn(ctx).If(cmp).Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		s.e.lose(t, "write refused: leader key gone or replaced")
		return nil, ErrFenced
	}
	return resp, nil
}

// Put sets key to val while this process leads.
func (s *Store) Put(ctx context.Context, key string, val []byte) error {
	t, cmp, err := s.fence()
	if err == nil {
		_, err = s.commit(ctx, t, cmp, clientv3.OpPut(key, string(val)))
	}
	if err != nil {
		return fmt.Errorf("leader: put %q: %w", key, err)
	}
	return nil
}

// Delete removes key, if present, while this process leads.
func (s *Store) Delete(ctx context.Context, key string) error {
	t, cmp, err := s.fence()
	if err == nil {
		_, err = s.commit(ctx, t, cmp, clientv3.OpDelete(key))
	}
	if err != nil {
		return fmt.Errorf("leader: delete %q: %w", key, err)
	}
	return nil
}

// DeleteAll removes keys and everything under prefixes in one transaction,
// while this process leads.
func (s *Store) DeleteAll(ctx context.Context, keys, prefixes []string) error {
	var ops []clientv3.Op
	for _, k := range keys {
		ops = append(ops, clientv3.OpDelete(k))
	}
	for _, p := range prefixes {
		ops = append(ops, clientv3.OpDelete(p, clientv3.WithPrefix()))
	}
	t, cmp, err := s.fence()
	if err == nil {
		_, err = s.commit(ctx, t, cmp, ops...)
	}
	if err != nil {
		return fmt.Errorf("leader: delete %q and under %q: %w", keys, prefixes, err)
	}
	return nil
}

// PutIfAbsent sets key to val unless it exists, while this process leads,
// and reports whether it did. Both conditions are checked in one
// transaction (the inner one nested in the fenced one), so a refusal is
// never mistaken for an existing key.
func (s *Store) PutIfAbsent(ctx context.Context, key string, val []byte) (bool, error) {
	t, cmp, err := s.fence()
	if err != nil {
		return false, fmt.Errorf("leader: put if absent %q: %w", key, err)
	}
	resp, err := s.commit(ctx, t, cmp, clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
		[]clientv3.Op{clientv3.OpPut(key, string(val))},
		nil,
	))
	if err != nil {
		return false, fmt.Errorf("leader: put if absent %q: %w", key, err)
	}
	return resp.Responses[0].GetResponseTxn().Succeeded, nil
}

// Swap sets key to val if it still holds old, while this process leads,
// and reports whether it did: a rewrite that a concurrent change must win.
func (s *Store) Swap(ctx context.Context, key string, old, val []byte) (bool, error) {
	t, cmp, err := s.fence()
	if err != nil {
		return false, fmt.Errorf("leader: swap %q: %w", key, err)
	}
	resp, err := s.commit(ctx, t, cmp, clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", string(old))},
		[]clientv3.Op{clientv3.OpPut(key, string(val))},
		nil,
	))
	if err != nil {
		return false, fmt.Errorf("leader: swap %q: %w", key, err)
	}
	return resp.Responses[0].GetResponseTxn().Succeeded, nil
}

// NextID increments the decimal counter at counterKey (absent is 0) and
// returns the new value, while this process leads. Values are strictly
// increasing across calls, concurrent callers and leaders, because each
// increment is a compare-and-swap on the key's mod revision and the counter
// lives in etcd, not in the leader. The first value is 1.
func (s *Store) NextID(ctx context.Context, counterKey string) (int64, error) {
	t, cmp, err := s.fence()
	if err != nil {
		return 0, fmt.Errorf("leader: next id %q: %w", counterKey, err)
	}
	got, err := s.e.cli.Get(ctx, counterKey)
	if err != nil {
		return 0, fmt.Errorf("leader: next id %q: %w", counterKey, err)
	}
	cur, mod, err := parseCounter(got.Kvs)
	for err == nil {
		if cur == math.MaxInt64 {
			return 0, fmt.Errorf("leader: next id %q: counter exhausted", counterKey)
		}
		next := cur + 1
		var resp *clientv3.TxnResponse
		resp, err = s.commit(ctx, t, cmp, clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(counterKey), "=", mod)},
			[]clientv3.Op{clientv3.OpPut(counterKey, strconv.FormatInt(next, 10))},
			// On contention, read the winner's value in the same round trip.
			[]clientv3.Op{clientv3.OpGet(counterKey)},
		))
		if err != nil {
			break
		}
		inner := resp.Responses[0].GetResponseTxn()
		if inner.Succeeded {
			return next, nil
		}
		cur, mod, err = parseCounter(inner.Responses[0].GetResponseRange().Kvs)
	}
	return 0, fmt.Errorf("leader: next id %q: %w", counterKey, err)
}

// parseCounter returns the counter's value and mod revision, 0 and 0 for an
// absent key (a ModRevision comparison treats an absent key as 0 too).
func parseCounter(kvs []*mvccpb.KeyValue) (int64, int64, error) {
	if len(kvs) == 0 {
		return 0, 0, nil
	}
	n, err := strconv.ParseInt(string(kvs[0].Value), 10, 64)
	if err != nil || n < 0 {
		return 0, 0, fmt.Errorf("counter holds %q, not a non-negative integer", kvs[0].Value)
	}
	return n, kvs[0].ModRevision, nil
}

// Get returns key's value and whether it exists. The caller owns the slice.
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	resp, err := s.e.cli.Get(ctx, key)
	if err != nil {
		return nil, false, fmt.Errorf("leader: get %q: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	return resp.Kvs[0].Value, true, nil
}

// List returns every key under prefix with its value, keyed by full key, as
// of one revision even when it takes several round trips. The caller owns
// the map. An empty prefix lists everything.
func (s *Store) List(ctx context.Context, prefix string) (map[string][]byte, error) {
	start, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	if prefix == "" {
		start, end = "\x00", "\x00" // etcd's spelling of "every key"
	}
	out := make(map[string][]byte)
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.e.cli.Get(ctx, start, opts...)
		if err != nil {
			return nil, fmt.Errorf("leader: list %q: %w", prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			out[string(kv.Key)] = kv.Value
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
