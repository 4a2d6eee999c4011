package jobmaster

import "time"

// stepScheduled: the attempt's slots are placed and its tasks are starting.
func (m *Machine) stepScheduled(ev Event, now time.Time) []Action {
	if m.phase == phaseUnknown {
		return m.stepRecovered(ev)
	}
	if m.regionsLive() {
		if acts, ok := m.stepRegion(ev, now); ok {
			return acts
		}
	}
	switch ev := ev.(type) {
	case AllRunning:
		m.setState(running)
	case AllFinished:
		// A short bounded job can finish before every task reported running.
		m.setState(finished)
		m.phase = phaseIdle
	case TaskFailed:
		return m.taskFailed(ev)
	case CancelRequested:
		return m.cancel()
	}
	return nil
}

// stepRecovered handles a job restored as SCHEDULED or RUNNING: the previous
// leader's attempt may or may not still run. If the driver vouches that
// every task of it runs (Reattached), the attempt is adopted; otherwise
// Start replaces it with a fresh attempt.
func (m *Machine) stepRecovered(ev Event) []Action {
	switch ev := ev.(type) {
	case Reattached:
		m.setState(running)
		m.phase = phaseDeployed
		m.message = ""
		return nil
	case Start:
		m.setState(restarting)
		m.message = "recovering after a coordinator change"
		return m.recoverAttempt()
	case TaskFailed:
		return m.taskFailed(ev)
	case CancelRequested:
		return m.cancel()
	}
	return nil
}
