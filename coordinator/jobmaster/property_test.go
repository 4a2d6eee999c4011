package jobmaster

import (
	"math"
	"slices"
	"testing"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
	"pgregory.net/rapid"
)

var allStates = []State{created, scheduled, running, finished, failed, canceling, canceled, restarting}

func TestTransitionsTable(t *testing.T) {
	for _, s := range allStates {
		to, ok := Transitions[s]
		if !ok {
			t.Errorf("%s is missing from Transitions", s)
		}
		if Terminal(s) != (len(to) == 0) {
			t.Errorf("%s: terminal=%v but declares %v", s, Terminal(s), to)
		}
		if slices.Contains(to, s) {
			t.Errorf("%s declares a transition to itself", s)
		}
	}
	if len(Transitions) != len(allStates) {
		t.Errorf("Transitions has %d states, want %d", len(Transitions), len(allStates))
	}
}

func TestPolicy(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *weirv1.RestartPolicy
		want []time.Duration // delays for restarts 0, 1, 2, ...
		max  int
	}{
		{"default", nil, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}, 10},
		{"zero fields take defaults", &weirv1.RestartPolicy{MaxRestarts: 3}, []time.Duration{time.Second, 2 * time.Second}, 3},
		{"no growth", &weirv1.RestartPolicy{MaxRestarts: 1, InitialBackoffMs: 500, MaxBackoffMs: 9000, Multiplier: 0.5}, []time.Duration{500 * time.Millisecond, 500 * time.Millisecond}, 1},
		{"max below initial", &weirv1.RestartPolicy{InitialBackoffMs: 5000, MaxBackoffMs: 1000, Multiplier: 3}, []time.Duration{5 * time.Second, 5 * time.Second}, 0},
		{"negative", &weirv1.RestartPolicy{MaxRestarts: -1, InitialBackoffMs: -5, MaxBackoffMs: -5, Multiplier: -2}, []time.Duration{time.Second, time.Second}, 0},
		{"huge", &weirv1.RestartPolicy{MaxRestarts: 1 << 30, InitialBackoffMs: 1 << 62, MaxBackoffMs: 1 << 62, Multiplier: 1e300}, []time.Duration{time.Duration(1<<63-1) / time.Millisecond * time.Millisecond}, 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol := newPolicy(tc.p)
			if pol.maxRestarts != tc.max {
				t.Errorf("maxRestarts = %d, want %d", pol.maxRestarts, tc.max)
			}
			for i, want := range tc.want {
				if got := pol.backoff(i, 0.5); got != want {
					t.Errorf("delay(%d) = %v, want %v", i, got, want)
				}
			}
			if d := pol.backoff(10000, 0.5); d > pol.max || d <= 0 {
				t.Errorf("delay(10000) = %v, want in (0, %v]", d, pol.max)
			}
		})
	}
	p := DefaultPolicy()
	p.MaxRestarts = 1
	if DefaultPolicy().GetMaxRestarts() != 10 {
		t.Error("DefaultPolicy returns a shared message")
	}
}

func TestMaxRestartDelay(t *testing.T) {
	for _, tc := range []struct {
		p    *weirv1.RestartPolicy
		want time.Duration
	}{
		{nil, 30 * time.Second},
		{&weirv1.RestartPolicy{Strategy: weirv1.RestartStrategy_RESTART_STRATEGY_NONE}, 0},
		{&weirv1.RestartPolicy{Strategy: weirv1.RestartStrategy_RESTART_STRATEGY_FIXED_DELAY, DelayMs: 4000, MaxBackoffMs: 60000}, 4 * time.Second},
		{&weirv1.RestartPolicy{Strategy: weirv1.RestartStrategy_RESTART_STRATEGY_FAILURE_RATE}, time.Second},
		{&weirv1.RestartPolicy{Strategy: weirv1.RestartStrategy_RESTART_STRATEGY_EXPONENTIAL_DELAY, MaxBackoffMs: 10000, Jitter: 0.5}, 15 * time.Second},
	} {
		if got := MaxRestartDelay(tc.p); got != tc.want {
			t.Errorf("MaxRestartDelay(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

// genPolicy draws small policies so that budgets run out within a test case.
func genPolicy(t *rapid.T) *weirv1.RestartPolicy {
	if rapid.Bool().Draw(t, "nilPolicy") {
		return nil
	}
	return &weirv1.RestartPolicy{
		MaxRestarts:       rapid.Int32Range(-1, 4).Draw(t, "maxRestarts"),
		InitialBackoffMs:  rapid.Int64Range(-1, 3000).Draw(t, "initialMs"),
		MaxBackoffMs:      rapid.Int64Range(0, 10000).Draw(t, "maxMs"),
		Multiplier:        rapid.SampledFrom([]float64{0, 0.5, 1, 2, 3}).Draw(t, "multiplier"),
		Strategy:          weirv1.RestartStrategy(rapid.Int32Range(0, 5).Draw(t, "strategy")),
		DelayMs:           rapid.Int64Range(-1, 3000).Draw(t, "delayMs"),
		Jitter:            rapid.SampledFrom([]float64{0, 0.1, 1, 2}).Draw(t, "jitter"),
		ResetThresholdMs:  rapid.Int64Range(0, 10000).Draw(t, "resetMs"),
		FailureIntervalMs: rapid.Int64Range(0, 10000).Draw(t, "intervalMs"),
	}
}

func genSnapshot(t *rapid.T) Snapshot {
	return Snapshot{
		State:    State(rapid.Int32Range(0, 9).Draw(t, "state")),
		Attempt:  rapid.Int64Range(0, 5).Draw(t, "attempt"),
		Restarts: rapid.IntRange(0, 5).Draw(t, "restarts"),
		Message:  rapid.SampledFrom([]string{"", "waiting for slots: x"}).Draw(t, "message"),
	}
}

var genEvent = rapid.SampledFrom([]Event{
	Start{}, Scheduled{}, NoSlots{Reason: "no room"}, AllRunning{}, AllFinished{},
	TaskFailed{Err: "boom"}, TaskFailed{}, TaskFailed{Err: "bad input", Permanent: true}, CancelRequested{}, AttemptStopped{}, Tick{}, Reattached{},
	RegionFailed{Region: 0, Err: "boom"}, RegionFailed{Region: 1}, RegionStopped{Region: 0}, RegionStopped{Region: 1},
})

// checkStep asserts what must hold for every step, whatever the event.
func checkStep(t *rapid.T, m *Machine, before Snapshot, acts []Action) {
	after := m.Snapshot()
	if after.State != before.State && !slices.Contains(Transitions[before.State], after.State) {
		t.Fatalf("undeclared transition %s -> %s", before.State, after.State)
	}
	if Terminal(before.State) && (after != before || len(acts) != 0) {
		t.Fatalf("terminal %s moved to %+v with %v", before.State, after, acts)
	}
	persists := 0
	for i, a := range acts {
		switch a := a.(type) {
		case Persist:
			persists++
			if i != 0 {
				t.Fatalf("Persist is not first: %v", acts)
			}
		case Deploy:
			if a.Attempt != before.Attempt+1 || a.Attempt != after.Attempt {
				t.Fatalf("Deploy %d after attempt %d (now %d)", a.Attempt, before.Attempt, after.Attempt)
			}
		case DeployRegion:
			if a.Attempt != before.Attempt+1 || a.Attempt != after.Attempt || after.Restarts != before.Restarts+1 {
				t.Fatalf("DeployRegion %d after %+v (now %+v)", a.Attempt, before, after)
			}
			if after.State != scheduled && after.State != running {
				t.Fatalf("DeployRegion in %s", after.State)
			}
		case StopRegion:
			if after.State != scheduled && after.State != running {
				t.Fatalf("StopRegion in %s", after.State)
			}
		case StopAttempt:
			if a.Attempt != after.Attempt || a.Attempt < 1 {
				t.Fatalf("StopAttempt %d while attempt is %d", a.Attempt, after.Attempt)
			}
		}
	}
	if want := after != before; (persists == 1) != want || persists > 1 {
		t.Fatalf("%d Persist for a change %v: %+v -> %+v", persists, want, before, after)
	}
	if len(acts)-persists > 1 {
		t.Fatalf("more than one effect in a step: %v", acts)
	}
	if after.Attempt < before.Attempt || after.Restarts < before.Restarts {
		t.Fatalf("counters went back: %+v -> %+v", before, after)
	}
	// Restarting regions wake a deployed attempt; otherwise only a job
	// restart waits.
	if _, ok := m.NextWake(); ok && after.State != restarting && after.State != scheduled && after.State != running {
		t.Fatalf("NextWake set in %s", after.State)
	}
}

// TestPropertyArbitraryEvents feeds any event at any time, including events a
// real driver would never send, and checks that the machine only takes
// declared transitions and keeps its bookkeeping straight.
func TestPropertyArbitraryEvents(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pol := genPolicy(t)
		now := epoch
		var m *Machine
		restored := rapid.Bool().Draw(t, "restored")
		jitter := WithRand(func() float64 { return rapid.Float64Range(0, 0.999).Draw(t, "rand") })
		if restored {
			m = Restore(genSnapshot(t), pol, jitter)
		} else {
			m = New(pol, now, jitter)
		}
		maxRestarts := max(totalBudget(newPolicy(pol)), m.Restarts())
		for range rapid.IntRange(0, 60).Draw(t, "steps") {
			ev := genEvent.Draw(t, "event")
			if w, ok := m.NextWake(); ok && rapid.Bool().Draw(t, "toWake") {
				now = w
			} else {
				now = now.Add(time.Duration(rapid.IntRange(0, 4000).Draw(t, "ms")) * time.Millisecond)
			}
			before := m.Snapshot()
			acts := m.Step(ev, now)
			checkStep(t, m, before, acts)
			if m.Restarts() > maxRestarts {
				t.Fatalf("restarts %d exceed the budget %d", m.Restarts(), maxRestarts)
			}
			if !restored && (m.Err() != "") != (m.State() == failed) {
				t.Fatalf("Err %q in %s", m.Err(), m.State())
			}
		}
	})
}

// totalBudget bounds the restarts a policy allows over a job's life: the
// budget for fixed delay and for exponential delay without a reset, none for
// the none strategy, unbounded when failures can age out (a reset threshold,
// a failure rate).
func totalBudget(p policy) int {
	switch {
	case p.strategy == weirv1.RestartStrategy_RESTART_STRATEGY_NONE:
		return 0
	case p.strategy == weirv1.RestartStrategy_RESTART_STRATEGY_FAILURE_RATE,
		p.strategy != weirv1.RestartStrategy_RESTART_STRATEGY_FIXED_DELAY && p.resetThreshold > 0:
		return math.MaxInt
	}
	return p.maxRestarts
}

// driver models an honest driver: it replies only to actions it was given,
// and reports tasks only of an attempt that may have processes.
type driver struct {
	// live holds attempts that may have processes.
	live map[int64]bool
	// deploying and stopping are the attempts of the outstanding Deploy
	// and StopAttempt, or 0.
	deploying, stopping int64
}

func (d *driver) apply(t *rapid.T, acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case Deploy:
			if len(d.live) != 0 {
				t.Fatalf("Deploy %d while attempts %v may still run", a.Attempt, d.live)
			}
			d.live[a.Attempt] = true
			d.deploying = a.Attempt
		case StopAttempt:
			if d.stopping != 0 {
				t.Fatalf("StopAttempt %d while stopping %d", a.Attempt, d.stopping)
			}
			d.stopping = a.Attempt
		}
	}
}

// TestPropertyHonestDriver checks safety and liveness against a driver that
// follows the contract: two attempts never overlap, and once the user
// cancels, the job reaches a terminal state after the driver answers what it
// was asked.
func TestPropertyHonestDriver(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pol := genPolicy(t)
		now := epoch
		d := &driver{live: map[int64]bool{}}
		var m *Machine
		restored := rapid.Bool().Draw(t, "restored")
		jitter := WithRand(func() float64 { return rapid.Float64Range(0, 0.999).Draw(t, "rand") })
		if restored {
			m = Restore(genSnapshot(t), pol, jitter)
			if !Terminal(m.State()) && m.Attempt() > 0 {
				d.live[m.Attempt()] = true
			}
		} else {
			m = New(pol, now, jitter)
		}
		step := func(ev Event) {
			before := m.Snapshot()
			acts := m.Step(ev, now)
			checkStep(t, m, before, acts)
			d.apply(t, acts)
		}

		for range rapid.IntRange(0, 60).Draw(t, "steps") {
			now = now.Add(time.Duration(rapid.IntRange(0, 2000).Draw(t, "ms")) * time.Millisecond)
			var choices []string
			choices = append(choices, "start", "cancel", "tick")
			if d.deploying != 0 {
				choices = append(choices, "scheduled", "no-slots")
			}
			if d.stopping != 0 {
				choices = append(choices, "stopped")
			}
			if d.live[m.Attempt()] {
				choices = append(choices, "running", "finished", "failed")
			}
			switch rapid.SampledFrom(choices).Draw(t, "event") {
			case "start":
				step(Start{})
			case "cancel":
				step(CancelRequested{})
			case "tick":
				if w, ok := m.NextWake(); ok && now.Before(w) {
					now = w
				}
				step(Tick{})
			case "scheduled":
				d.deploying = 0
				step(Scheduled{})
			case "no-slots":
				delete(d.live, d.deploying)
				d.deploying = 0
				step(NoSlots{Reason: "no room"})
			case "stopped":
				delete(d.live, d.stopping)
				if d.deploying == d.stopping {
					d.deploying = 0
				}
				d.stopping = 0
				step(AttemptStopped{})
			case "running":
				step(AllRunning{})
			case "finished":
				step(AllFinished{})
			case "failed":
				step(TaskFailed{Err: "boom"})
			}
		}

		// The user cancels; the driver answers until the job settles.
		for i := 0; !Terminal(m.State()); i++ {
			if i > 10 {
				t.Fatalf("job did not settle: %+v, driver %+v", m.Snapshot(), d)
			}
			switch {
			case d.stopping != 0:
				delete(d.live, d.stopping)
				d.deploying = 0
				d.stopping = 0
				step(AttemptStopped{})
			case d.deploying != 0:
				d.deploying = 0
				step(Scheduled{})
			case i == 0:
				step(Start{})
			default:
				step(CancelRequested{})
			}
		}
		switch m.State() {
		case canceled:
			if len(d.live) != 0 {
				t.Fatalf("canceled with attempts %v possibly running", d.live)
			}
		case failed:
			if len(d.live) != 0 {
				t.Fatalf("failed with attempts %v possibly running", d.live)
			}
			if m.Err() == "" && !restored {
				t.Fatalf("failed without an error")
			}
		}
	})
}
