package jobmaster

import (
	"fmt"
	"math"
	"slices"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// State is the job's lifecycle state as stored and shown.
type State = weirv1.JobState

const (
	created    = weirv1.JobState_JOB_STATE_CREATED
	scheduled  = weirv1.JobState_JOB_STATE_SCHEDULED
	running    = weirv1.JobState_JOB_STATE_RUNNING
	finished   = weirv1.JobState_JOB_STATE_FINISHED
	failed     = weirv1.JobState_JOB_STATE_FAILED
	canceling  = weirv1.JobState_JOB_STATE_CANCELING
	canceled   = weirv1.JobState_JOB_STATE_CANCELED
	restarting = weirv1.JobState_JOB_STATE_RESTARTING
)

// Transitions declares every state change Step may make; a state maps to the
// states it may move to. Terminal states map to nothing. Step panics rather
// than take an undeclared transition, and a property test drives random event
// sequences to show it never has to.
//
// CREATED may fail directly only when placement fails and the policy allows
// no restarts. FAILED is otherwise reached from RESTARTING, once the failed
// attempt is stopped and the budget is spent.
var Transitions = map[State][]State{
	created:    {scheduled, restarting, failed, canceling, canceled},
	scheduled:  {running, finished, restarting, canceling},
	running:    {finished, restarting, canceling},
	restarting: {scheduled, failed, canceling, canceled},
	canceling:  {canceled},
	finished:   {},
	failed:     {},
	canceled:   {},
}

// Terminal reports whether s is a state a job never leaves.
func Terminal(s State) bool {
	return s == finished || s == failed || s == canceled
}

// Snapshot is the job record the driver persists and a new leader restores.
// It is comparable: the machine emits Persist exactly when it changes.
type Snapshot struct {
	State State
	// Attempt is the last attempt number handed out by Deploy; 0 before the
	// first.
	Attempt int64
	// Restarts counts deploys made to recover from a failure or to retry
	// placement; it is what the restart policy's max_restarts bounds.
	Restarts int
	// Error says why the job failed; set only in FAILED.
	Error string
	// Message is a note on a non-terminal state, such as why the job is
	// restarting or what it waits for; cleared once it is scheduled again.
	Message string
}

// phase is what the machine is waiting for within its state. It is not
// persisted: a restored machine starts in phaseUnknown and finds out.
type phase int

const (
	// phaseIdle: nothing is deployed and nothing is outstanding.
	phaseIdle phase = iota
	// phaseUnknown: restored from a snapshot; processes of the attempt may
	// exist. Start recovers the job.
	phaseUnknown
	// phaseDeploying: Deploy{attempt} is out, awaiting Scheduled or NoSlots.
	phaseDeploying
	// phaseDeployed: the attempt is scheduled.
	phaseDeployed
	// phaseStopping: StopAttempt{attempt} is out, awaiting AttemptStopped.
	phaseStopping
	// phaseBackoff: nothing is deployed; the next attempt is due at wake.
	phaseBackoff
)

// Machine is one job's lifecycle. It is not safe for concurrent use: one
// driver goroutine owns it.
type Machine struct {
	pol  policy
	rand func() float64 // jitter source, [0, 1)

	state    State
	attempt  int64
	restarts int
	err      string
	message  string

	phase phase
	// wake is when the next attempt is due, in phaseBackoff.
	wake time.Time
	// failure is why the attempt being stopped failed, in phaseStopping. It
	// is empty when the attempt is stopped to recover after a leader change
	// or to cancel, which consume no restart.
	failure string

	// The restart strategy's memory. It is not persisted: a new leader
	// starts from the persisted Restarts (as the count since the last reset)
	// and an empty failure window, erring towards more restarts rather than
	// failing a job for failures another leader counted.
	sinceReset  int         // restarts since the exponential backoff was last reset
	lastFailure time.Time   // zero before the first failure
	failures    []time.Time // failure-rate: failures within the window, oldest first

	// regions holds the regions of the deployed attempt that are restarting
	// on their own (region.go). Not persisted: a new leader finds the
	// region's processes gone and restarts the job.
	regions map[int32]*regionRestart
	// spent is why the restart budget ran out, in phaseStopping after a
	// region failure found it spent: the job fails once the attempt is gone.
	spent string
}

// Option configures a Machine.
type Option func(*Machine)

// WithRand sets the source of the exponential strategy's jitter, which must
// return values in [0, 1). Without it the jitter factor is always 1, so a
// machine stays deterministic unless the driver asks otherwise.
func WithRand(f func() float64) Option {
	return func(m *Machine) { m.rand = f }
}

func (m *Machine) apply(opts []Option) *Machine {
	m.rand = func() float64 { return 0.5 }
	for _, o := range opts {
		o(m)
	}
	return m
}

// New returns the machine of a newly submitted job, in CREATED. A nil policy
// means DefaultPolicy(). now is taken so that time always enters through the
// caller; a job's lifecycle needs no deadline before its first event.
func New(policy *weirv1.RestartPolicy, now time.Time, opts ...Option) *Machine {
	return (&Machine{pol: newPolicy(policy), state: created, phase: phaseIdle}).apply(opts)
}

// Restore rebuilds a job's machine from its persisted record on a new leader.
// A terminal job stays as it was. A job that may have processes left by the
// previous leader waits for Start, which stops its attempt and deploys a
// fresh one. A record with an unknown state, or a non-terminal one with no
// attempt yet, is taken as CREATED.
func Restore(st Snapshot, policy *weirv1.RestartPolicy, opts ...Option) *Machine {
	m := &Machine{
		pol:      newPolicy(policy),
		state:    st.State,
		attempt:  max(st.Attempt, 0),
		restarts: max(st.Restarts, 0),
		err:      st.Error,
		message:  st.Message,
		phase:    phaseUnknown,
	}
	m.apply(opts)
	m.sinceReset = m.restarts
	if _, ok := Transitions[m.state]; !ok {
		m.state = created
	}
	if m.attempt == 0 && !Terminal(m.state) && m.state != canceling {
		// Nothing was ever deployed, whatever the record says.
		m.state = created
	}
	if Terminal(m.state) || (m.state == created && m.attempt == 0) {
		m.phase = phaseIdle
	}
	return m
}

// Step feeds one event observed at now and returns what the driver must do,
// in order. Events that make no sense in the current state are ignored.
func (m *Machine) Step(ev Event, now time.Time) []Action {
	before := m.Snapshot()
	if rf, ok := ev.(RegionFailed); ok && !m.regionsLive() {
		// Only a deployed attempt restarts a region alone.
		ev = TaskFailed{Err: rf.Err, Permanent: rf.Permanent}
	}
	var acts []Action
	switch m.state {
	case created:
		acts = m.stepCreated(ev, now)
	case scheduled:
		acts = m.stepScheduled(ev, now)
	case running:
		acts = m.stepRunning(ev, now)
	case restarting:
		acts = m.stepRestarting(ev, now)
	case canceling:
		acts = m.stepCanceling(ev, now)
	default:
		acts = m.stepTerminal(ev, now)
	}
	if m.Snapshot() != before {
		acts = append([]Action{Persist{}}, acts...)
	}
	return acts
}

// State is the job's lifecycle state.
func (m *Machine) State() State { return m.state }

// Attempt is the last attempt number handed out by Deploy; 0 before the first.
func (m *Machine) Attempt() int64 { return m.attempt }

// Restarts is how many restarts of the policy's budget are used.
func (m *Machine) Restarts() int { return m.restarts }

// Err says why the job failed; it is set only in FAILED.
func (m *Machine) Err() string { return m.err }

// Message is a note for the user on a non-terminal state, e.g. why the job is
// restarting or that it waits for slots.
func (m *Machine) Message() string { return m.message }

// Snapshot is the job record to persist.
func (m *Machine) Snapshot() Snapshot {
	return Snapshot{State: m.state, Attempt: m.attempt, Restarts: m.restarts, Error: m.err, Message: m.message}
}

// NextWake returns when the driver must send a Tick: while the job waits out
// a restart backoff, including a wait for slots. ok is false when no Tick is
// needed.
func (m *Machine) NextWake() (t time.Time, ok bool) {
	if m.regionsLive() {
		return m.regionWake()
	}
	if m.phase != phaseBackoff {
		return time.Time{}, false
	}
	return m.wake, true
}

// regionsLive reports whether regions can restart alone: the attempt is
// deployed and the job SCHEDULED or RUNNING.
func (m *Machine) regionsLive() bool {
	return m.phase == phaseDeployed && (m.state == scheduled || m.state == running)
}

// setState moves to s, which must be declared in Transitions.
func (m *Machine) setState(s State) {
	if s == m.state {
		return
	}
	if !slices.Contains(Transitions[m.state], s) {
		panic(fmt.Sprintf("jobmaster: undeclared transition %s -> %s", m.state, s))
	}
	m.state = s
}

// deploy hands out the next attempt number. Numbers are never reused, so the
// driver can drop every report about an older attempt.
func (m *Machine) deploy() []Action {
	m.attempt++
	m.phase = phaseDeploying
	return []Action{Deploy{Attempt: m.attempt}}
}

// stop tears down the current attempt; failure is why (empty for a cancel or
// a recovery).
func (m *Machine) stop(failure string) []Action {
	m.phase = phaseStopping
	m.failure = failure
	m.spent = ""
	// StopAttempt covers every region, restarting ones included.
	m.regions = nil
	return []Action{StopAttempt{Attempt: m.attempt}}
}

// scheduledOK records the driver's Scheduled reply.
func (m *Machine) scheduledOK() []Action {
	m.setState(scheduled)
	m.phase = phaseDeployed
	m.message = ""
	return nil
}

// taskFailed starts tearing down a failed attempt. Whether the job restarts
// is decided once the attempt is gone, so that a restart never overlaps the
// attempt it replaces.
func (m *Machine) taskFailed(ev TaskFailed) []Action {
	err := ev.Err
	if err == "" {
		err = "unknown error"
	}
	m.setState(restarting)
	m.message = "restarting after failure: " + err
	actions := m.stop(err)
	if ev.Permanent {
		m.message = "stopping after a failure that cannot succeed on retry: " + err
		m.spent = "it cannot succeed on retry"
	}
	return actions
}

// noSlots handles a failed placement. Waiting for slots consumes the restart
// budget like a failure does, so a job that can never be placed fails with a
// clear reason instead of waiting forever.
func (m *Machine) noSlots(reason string, now time.Time) []Action {
	if reason == "" {
		reason = "no reason given"
	}
	delay, spent := m.decide(now)
	if spent != "" {
		m.fail(fmt.Sprintf("not enough slots (%s): %s", spent, reason))
		return nil
	}
	m.setState(restarting)
	m.message = "waiting for slots: " + reason
	return m.backoff(now, delay)
}

// attemptGone continues a restart once the failed attempt is stopped.
func (m *Machine) attemptGone(now time.Time) []Action {
	if m.failure == "" {
		// Recovery after a leader change: the attempt did not fail, so
		// redeploy at once and without counting a restart.
		return m.deploy()
	}
	// A region failure may already have found the budget spent.
	delay, spent := time.Duration(0), m.spent
	if spent == "" {
		delay, spent = m.decide(now)
	}
	if spent != "" {
		m.fail(fmt.Sprintf("task failed (%s): %s", spent, m.failure))
		return nil
	}
	return m.backoff(now, delay)
}

// decide applies the restart strategy to a failure at now: the delay before
// the next attempt, or why the job must fail instead (spent non-empty).
func (m *Machine) decide(now time.Time) (delay time.Duration, spent string) {
	p := m.pol
	defer func() { m.lastFailure = now }()
	switch p.strategy {
	case weirv1.RestartStrategy_RESTART_STRATEGY_NONE:
		return 0, "restart strategy none"
	case weirv1.RestartStrategy_RESTART_STRATEGY_FIXED_DELAY:
		if m.restarts >= p.maxRestarts {
			return 0, fmt.Sprintf("restart %d of %d used", m.restarts, p.maxRestarts)
		}
		return p.delay, ""
	case weirv1.RestartStrategy_RESTART_STRATEGY_FAILURE_RATE:
		cut := now.Add(-p.failureInterval)
		i := 0
		for i < len(m.failures) && !m.failures[i].After(cut) {
			i++
		}
		m.failures = append(m.failures[i:], now)
		if len(m.failures) > p.maxRestarts {
			return 0, fmt.Sprintf("%d failures within %v, %d allowed", len(m.failures), p.failureInterval, p.maxRestarts)
		}
		return p.delay, ""
	}
	// Exponential delay.
	if p.resetThreshold > 0 && !m.lastFailure.IsZero() && now.Sub(m.lastFailure) >= p.resetThreshold {
		m.sinceReset = 0
	}
	if m.sinceReset >= p.maxRestarts {
		return 0, fmt.Sprintf("restart %d of %d used", m.sinceReset, p.maxRestarts)
	}
	return p.backoff(m.sinceReset, m.rand()), ""
}

func (m *Machine) fail(err string) {
	m.setState(failed)
	m.err = err
	m.message = ""
	m.phase = phaseIdle
	m.failure = ""
	m.spent = ""
}

// backoff schedules the next attempt after delay; the driver's Tick at
// NextWake deploys it. The delay is never zero (see newPolicy), so there is
// nothing to do now.
func (m *Machine) backoff(now time.Time, delay time.Duration) []Action {
	m.phase = phaseBackoff
	m.failure = ""
	m.wake = now.Add(delay)
	return nil
}

// tick deploys the next attempt once its backoff is over.
func (m *Machine) tick(now time.Time) []Action {
	if m.phase != phaseBackoff || now.Before(m.wake) {
		return nil
	}
	m.wake = time.Time{}
	m.restarts++
	m.sinceReset++
	return m.deploy()
}

// cancel handles CancelRequested in any non-terminal state.
func (m *Machine) cancel() []Action {
	m.message = ""
	switch m.phase {
	case phaseIdle, phaseBackoff:
		// Nothing is deployed, so there is nothing to wait for.
		m.setState(canceled)
		m.phase = phaseIdle
		m.wake = time.Time{}
		return nil
	case phaseStopping:
		// The StopAttempt already out will bring AttemptStopped.
		m.setState(canceling)
		m.failure = ""
		return nil
	case phaseUnknown:
		if m.attempt == 0 {
			m.setState(canceled)
			m.phase = phaseIdle
			return nil
		}
	}
	m.setState(canceling)
	return m.stop("")
}

// recoverAttempt takes over a job from a previous leader: whatever it left of
// the attempt is stopped before a fresh attempt is deployed, so two attempts
// never run side by side.
func (m *Machine) recoverAttempt() []Action {
	if m.attempt == 0 {
		return m.deploy()
	}
	return m.stop("")
}

// policy is a RestartPolicy with its defaults and bounds applied.
type policy struct {
	strategy        weirv1.RestartStrategy
	maxRestarts     int
	initial         time.Duration
	max             time.Duration
	multiplier      float64
	delay           time.Duration // fixed delay and failure rate
	jitter          float64       // exponential: in [0, 1]
	resetThreshold  time.Duration // exponential: 0 never resets (policy: negative)
	failureInterval time.Duration // failure rate
}

// DefaultPolicy is the policy of a job that set none: up to 10 restarts,
// waiting 1s, 2s, 4s, ... capped at 30s. It returns a new message each call.
func DefaultPolicy() *weirv1.RestartPolicy {
	return &weirv1.RestartPolicy{MaxRestarts: 10, InitialBackoffMs: 1000, MaxBackoffMs: 30000, Multiplier: 2}
}

// MaxRestartDelay is the longest wait before a restart under p (nil: the
// default policy), jitter included.
func MaxRestartDelay(p *weirv1.RestartPolicy) time.Duration {
	pol := newPolicy(p)
	switch pol.strategy {
	case weirv1.RestartStrategy_RESTART_STRATEGY_NONE:
		return 0
	case weirv1.RestartStrategy_RESTART_STRATEGY_FIXED_DELAY, weirv1.RestartStrategy_RESTART_STRATEGY_FAILURE_RATE:
		return pol.delay
	}
	return time.Duration(float64(pol.max) * (1 + pol.jitter))
}

// Defaults for the fields of the other strategies, after Flink's.
const (
	DefaultDelay           = time.Second // fixed delay and failure rate
	DefaultFailureInterval = time.Minute
	DefaultResetThreshold  = time.Hour // exponential delay
)

// newPolicy reads p leniently, since the policy comes from the user. Proto3
// cannot tell an unset field from zero, so a duration field that is zero (or
// negative) takes its default; max_restarts 0 is kept, and means no
// restarts, as the proto documents. A multiplier below 1 is 1 (no growth), a
// max backoff below the initial one is the initial one, and the jitter is
// clamped to [0, 1]. An unknown strategy is the default one.
func newPolicy(p *weirv1.RestartPolicy) policy {
	def := DefaultPolicy()
	if p == nil {
		p = def
	}
	ms := func(v int64, dflt time.Duration) time.Duration {
		if v <= 0 {
			return dflt
		}
		v = min(v, math.MaxInt64/int64(time.Millisecond))
		return time.Duration(v) * time.Millisecond
	}
	pol := policy{
		strategy:        p.GetStrategy(),
		maxRestarts:     max(int(p.GetMaxRestarts()), 0),
		initial:         ms(p.GetInitialBackoffMs(), time.Duration(def.GetInitialBackoffMs())*time.Millisecond),
		max:             ms(p.GetMaxBackoffMs(), time.Duration(def.GetMaxBackoffMs())*time.Millisecond),
		multiplier:      p.GetMultiplier(),
		delay:           ms(p.GetDelayMs(), DefaultDelay),
		jitter:          p.GetJitter(),
		failureInterval: ms(p.GetFailureIntervalMs(), DefaultFailureInterval),
	}
	// A job that ran stably for a while starts its backoff and its count
	// again, so early failures do not doom its later life.
	if p.GetResetThresholdMs() >= 0 {
		pol.resetThreshold = ms(p.GetResetThresholdMs(), DefaultResetThreshold)
	}
	if _, ok := weirv1.RestartStrategy_name[int32(pol.strategy)]; !ok {
		pol.strategy = weirv1.RestartStrategy_RESTART_STRATEGY_UNSPECIFIED
	}
	switch {
	case pol.multiplier == 0 || math.IsNaN(pol.multiplier):
		pol.multiplier = def.GetMultiplier()
	case pol.multiplier < 1:
		pol.multiplier = 1
	}
	if math.IsNaN(pol.jitter) {
		pol.jitter = 0
	}
	pol.jitter = min(max(pol.jitter, 0), 1)
	pol.max = max(pol.max, pol.initial)
	return pol
}

// backoff is the exponential wait before restart number n+1 since the last
// reset: initial * multiplier^n, capped at max, then scaled by the jitter
// factor 1 + jitter*(2r-1) for r in [0, 1). It is never below a millisecond,
// so a restart always waits for a Tick.
func (p policy) backoff(n int, r float64) time.Duration {
	d := p.max
	if f := float64(p.initial) * math.Pow(p.multiplier, float64(n)); !math.IsNaN(f) && f < float64(p.max) {
		d = time.Duration(f)
	}
	if p.jitter > 0 {
		f := float64(d) * (1 + p.jitter*(2*r-1))
		if f >= math.MaxInt64 {
			f = math.MaxInt64
		}
		d = time.Duration(f)
	}
	return max(d, time.Millisecond)
}
