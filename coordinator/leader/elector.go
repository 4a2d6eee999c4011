package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

var (
	// ErrFenced is returned for a write refused because this process no
	// longer holds leadership. It is the fenced class: the caller must stop
	// acting as leader, and retrying the write can never succeed.
	ErrFenced = errors.New("leader: not the leader (fenced)")
	// ErrClosed is returned by Campaign once the Elector is closed.
	ErrClosed = errors.New("leader: elector closed")
)

// DefaultTTL is the session TTL NewElector uses for a zero ttl: a crashed
// leader is replaced within about this long. 2 s is etcd's minimum lease TTL
// with its default election timeout (1.5 election timeouts, rounded up), so
// a shorter TTL would be silently raised to it; measured failover with it is
// about 2.5 s.
const DefaultTTL = 2 * time.Second

// retryDelay spaces out new candidacies after a session died mid-campaign,
// so a flapping etcd is not hammered with lease grants.
const retryDelay = 250 * time.Millisecond

// closedCh is what Leading returns when there is no term to watch.
var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Elector campaigns for leadership under a prefix and, once leading, fences
// writes through its Store.
//
// Keys follow concurrency.Election's layout (prefix/<lease id in hex>, the
// oldest create revision leads, the value is the leader's address), so
// `etcdctl elect` and concurrency.Election observers see the same election.
// Campaign is not concurrency.Election.Campaign, whose clean-up after a
// cancelled campaign uses the client's context with no deadline and so hangs
// a coordinator's shutdown while etcd is unreachable.
//
// Each candidacy gets its own session (lease), released when the candidacy
// or the term ends. An Elector can campaign again after losing a term.
type Elector struct {
	cli     *clientv3.Client
	prefix  string // no trailing slash; keys are prefix + "/" + lease
	id      string
	address string
	ttl     int // seconds, as etcd leases count
	logger  *slog.Logger

	// closing is cancelled at the start of Close to interrupt a Campaign
	// and stop the term watcher.
	closing context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // term watchers

	mu struct {
		sync.Mutex
		closed      bool
		campaigning bool
		queued      bool  // a candidate key of a live session is in the election
		term        *term // the current term; nil when not leading
	}
}

// term is one stretch of leadership: one leader key under one session.
type term struct {
	session *concurrency.Session
	key     string
	rev     int64 // the key's create revision: the fencing token
	lost    chan struct{}
	once    sync.Once
}

// end closes lost and reports whether this call did so.
func (t *term) end() bool {
	first := false
	t.once.Do(func() { close(t.lost); first = true })
	return first
}

func (t *term) ended() bool {
	select {
	case <-t.lost:
		return true
	default:
		return false
	}
}

// NewElector returns an Elector that campaigns under prefix (for example
// "/weir/leader") with address as the election value. id names this process
// in logs and defaults to address. ttl is the session TTL, rounded up to
// whole seconds; 0 means DefaultTTL. A nil logger discards.
//
// The prefix must hold nothing but candidate keys: the oldest key under it
// is the leader, whatever wrote it. Keep metadata elsewhere ("/weir/leader"
// for the election, "/weir/jobs/..." for jobs).
func NewElector(cli *clientv3.Client, prefix string, id string, address string, ttl time.Duration, logger *slog.Logger) (*Elector, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	switch {
	case cli == nil:
		return nil, errors.New("leader: new elector: nil etcd client")
	case prefix == "":
		return nil, errors.New("leader: new elector: empty prefix")
	case address == "":
		// An empty value would read as "no leader" to Watch.
		return nil, errors.New("leader: new elector: empty address")
	case ttl < 0:
		return nil, fmt.Errorf("leader: new elector: negative ttl %v", ttl)
	}
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if id == "" {
		id = address
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Elector{
		cli:     cli,
		prefix:  prefix,
		id:      id,
		address: address,
		ttl:     max(1, int(math.Ceil(ttl.Seconds()))),
		logger:  logger.With("elector", id, "prefix", prefix),
	}
	e.closing, e.cancel = context.WithCancel(context.Background())
	return e, nil
}

// Campaign blocks until this process leads, ctx is done, or the Elector is
// closed. A standby waits in line behind older candidates. It returns nil at
// once if already leading. Errors other than ErrClosed and ctx's are etcd's
// and retryable; a session that dies while waiting is replaced without
// returning. Only one Campaign may run at a time.
func (e *Elector) Campaign(ctx context.Context) error {
	e.mu.Lock()
	switch {
	case e.mu.closed:
		e.mu.Unlock()
		return ErrClosed
	case e.mu.campaigning:
		e.mu.Unlock()
		return errors.New("leader: campaign: another Campaign is in progress")
	case e.mu.term != nil && !e.mu.term.ended():
		e.mu.Unlock()
		return nil
	}
	e.mu.campaigning = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.mu.campaigning = false
		e.mu.Unlock()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(e.closing, cancel)
	defer stop()

	for {
		err := e.campaignOnce(ctx)
		switch {
		case err == nil:
			return nil
		case e.closing.Err() != nil:
			return ErrClosed
		case ctx.Err() != nil:
			return fmt.Errorf("leader: campaign: %w", ctx.Err())
		case !errors.Is(err, errSessionLost):
			return err
		}
		e.logger.Info("session lost while campaigning; campaigning again")
		select {
		case <-time.After(retryDelay):
		case <-ctx.Done():
		}
	}
}

var errSessionLost = errors.New("leader: session lost during campaign")

// campaignOnce runs one candidacy under a fresh session. On any failure it
// releases the session, so no candidate key is left behind to be mistaken
// for a leader once the keys ahead of it are gone.
func (e *Elector) campaignOnce(ctx context.Context) error {
	// The lease is granted under the caller's ctx, so a dead etcd cannot
	// hold Campaign past its deadline, but kept alive under the client's,
	// so the session outlives this call.
	grant, err := e.cli.Grant(ctx, int64(e.ttl))
	if err != nil {
		return fmt.Errorf("leader: campaign: grant lease: %w", err)
	}
	s, err := concurrency.NewSession(e.cli, concurrency.WithLease(grant.ID), concurrency.WithTTL(e.ttl))
	if err != nil {
		e.revoke(grant.ID)
		return fmt.Errorf("leader: campaign: keep lease alive: %w", err)
	}

	// Waiting ends early if the session dies: our key died with it.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.Ctx(), cancel)
	defer stop()

	key := fmt.Sprintf("%s/%x", e.prefix, s.Lease())
	resp, err := e.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, e.address, clientv3.WithLease(s.Lease()))).
		Commit()
	if err == nil && !resp.Succeeded {
		err = fmt.Errorf("candidate key %s already exists", key) // cannot happen: the lease is new
	}
	if err == nil {
		e.setQueued(true)
		defer e.setQueued(false)
		err = e.waitPredecessors(cctx, resp.Header.Revision-1)
	}
	if err != nil {
		lost := s.Ctx().Err() != nil && ctx.Err() == nil
		e.release(s)
		if lost {
			return errSessionLost
		}
		return fmt.Errorf("leader: campaign: %w", err)
	}
	rev := resp.Header.Revision

	// Nobody older is left; make sure our own key did not go meanwhile.
	got, err := e.cli.Get(ctx, key)
	if err != nil {
		e.release(s)
		return fmt.Errorf("leader: campaign: confirm leadership: %w", err)
	}
	if len(got.Kvs) == 0 || got.Kvs[0].CreateRevision != rev || s.Ctx().Err() != nil {
		e.release(s)
		return errSessionLost
	}

	t := &term{session: s, key: key, rev: rev, lost: make(chan struct{})}
	e.mu.Lock()
	if e.mu.closed {
		e.mu.Unlock()
		e.release(s)
		return ErrClosed
	}
	e.mu.term = t
	e.wg.Add(1)
	e.mu.Unlock()
	go e.watchTerm(t, got.Header.Revision)
	e.logger.Info("leading", "address", e.address, "rev", rev)
	return nil
}

// waitPredecessors waits until no candidate key created at or before maxRev
// remains, watching only the newest of them at a time so that one leader's
// exit wakes one standby rather than the whole herd.
func (e *Elector) waitPredecessors(ctx context.Context, maxRev int64) error {
	opts := append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(maxRev))
	for {
		resp, err := e.cli.Get(ctx, e.prefix+"/", opts...)
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		if err := waitDelete(ctx, e.cli, string(resp.Kvs[0].Key), resp.Header.Revision); err != nil {
			return err
		}
	}
}

func waitDelete(ctx context.Context, cli *clientv3.Client, key string, rev int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range cli.Watch(wctx, key, clientv3.WithRev(rev), clientv3.WithFilterPut()) {
		if err := wr.Err(); err != nil {
			return err
		}
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.DELETE {
				return nil
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("watch ended before the key was deleted")
}

// watchTerm ends t when its session dies or its key is deleted, and stops
// keeping the lease alive once t has ended for any reason.
func (e *Elector) watchTerm(t *term, fromRev int64) {
	defer e.wg.Done()
	defer t.session.Orphan()
	ctx, cancel := context.WithCancel(e.closing)
	defer cancel()
	// The key is deleted the moment its lease is revoked, while the session
	// notices only at its next keep-alive, up to a third of the TTL later.
	wch := e.cli.Watch(ctx, t.key, clientv3.WithRev(fromRev+1), clientv3.WithFilterPut())
	for {
		select {
		case <-t.lost:
			return // Resign, Close or a fenced write ended it
		case <-ctx.Done():
			return // Close
		case <-t.session.Done():
			e.lose(t, "session expired")
			return
		case wr, ok := <-wch:
			if !ok {
				wch = nil // compacted or cancelled: rely on the session alone
				continue
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					e.lose(t, "leader key deleted")
					return
				}
			}
		}
	}
}

// lose ends t because leadership was lost rather than given up. It does no
// I/O: it may run from a Store method.
func (e *Elector) lose(t *term, reason string) {
	if !t.end() {
		return
	}
	e.mu.Lock()
	if e.mu.term == t {
		e.mu.term = nil
	}
	e.mu.Unlock()
	e.logger.Warn("lost leadership", "reason", reason, "rev", t.rev)
}

// Leading returns a channel closed when this process stops leading: its
// session expired, its key was deleted, a fenced write was refused, or it
// resigned or closed. Call it after Campaign returns nil; when not leading
// it returns a closed channel.
func (e *Elector) Leading() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.term == nil {
		return closedCh
	}
	return e.mu.term.lost
}

// Candidate reports whether this process can take over at once when the
// leader goes: it leads, or its candidate key, under a live session, waits
// in line. A standby that lost etcd (its session expired, or it is still
// reconnecting) is not a candidate until it has queued again.
func (e *Elector) Candidate() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mu.queued || (e.mu.term != nil && !e.mu.term.ended())
}

func (e *Elector) setQueued(q bool) {
	e.mu.Lock()
	e.mu.queued = q
	e.mu.Unlock()
}

// Rev returns the leader key's create revision, the fencing token of the
// current term, or 0 when not leading.
func (e *Elector) Rev() int64 {
	t := e.currentTerm()
	if t == nil {
		return 0
	}
	return t.rev
}

func (e *Elector) currentTerm() *term {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.mu.term; t != nil && !t.ended() {
		return t
	}
	return nil
}

// Resign gives up leadership: Leading is closed first, so this process
// stops acting as leader before a successor can start, then the session's
// lease is revoked, deleting the key. If the revoke fails the key still
// goes when the lease expires, within the TTL. Resign is a no-op when not
// leading; it does not stop a Campaign in progress (cancel its ctx).
func (e *Elector) Resign(ctx context.Context) error {
	e.mu.Lock()
	t := e.mu.term
	e.mu.term = nil
	e.mu.Unlock()
	if t == nil {
		return nil
	}
	t.end()
	e.logger.Info("resigning", "rev", t.rev)
	return e.revokeTerm(ctx, t)
}

// Close resigns if leading, interrupts a Campaign, and releases the
// Elector's resources. It does not close the etcd client.
func (e *Elector) Close() error {
	e.mu.Lock()
	if e.mu.closed {
		e.mu.Unlock()
		return nil
	}
	e.mu.closed = true
	t := e.mu.term
	e.mu.term = nil
	e.mu.Unlock()

	e.cancel()
	var err error
	if t != nil {
		t.end()
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(e.ttl)*time.Second)
		err = e.revokeTerm(ctx, t)
		cancel()
	}
	e.wg.Wait()
	return err
}

func (e *Elector) revokeTerm(ctx context.Context, t *term) error {
	t.session.Orphan()
	_, err := e.cli.Revoke(ctx, t.session.Lease())
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("leader: revoke lease %x (the key expires within %ds): %w", t.session.Lease(), e.ttl, err)
	}
	return nil
}

// release ends a session that never became a term. If the revoke fails,
// the lease expires on its own since nothing keeps it alive any more.
func (e *Elector) release(s *concurrency.Session) {
	s.Orphan()
	e.revoke(s.Lease())
}

func (e *Elector) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(e.ttl)*time.Second)
	defer cancel()
	if _, err := e.cli.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		e.logger.Warn("revoke candidate lease failed; it expires on its own", "lease", fmt.Sprintf("%x", id), "err", err)
	}
}
