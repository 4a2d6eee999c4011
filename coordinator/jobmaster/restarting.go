package jobmaster

import "time"

// stepRestarting: the job is between attempts. It is stopping the failed
// attempt, waiting out the backoff (or for slots), or placing the next
// attempt.
func (m *Machine) stepRestarting(ev Event, now time.Time) []Action {
	if _, ok := ev.(CancelRequested); ok {
		return m.cancel()
	}
	switch m.phase {
	case phaseUnknown:
		switch ev := ev.(type) {
		case Start:
			m.message = "recovering after a coordinator change"
			return m.recoverAttempt()
		case TaskFailed:
			return m.taskFailed(ev)
		}
	case phaseStopping:
		// Further failures of an attempt being stopped add nothing: the first
		// one is the cause the user needs.
		if _, ok := ev.(AttemptStopped); ok {
			return m.attemptGone(now)
		}
	case phaseBackoff:
		if _, ok := ev.(Tick); ok {
			return m.tick(now)
		}
	case phaseDeploying:
		switch ev := ev.(type) {
		case Scheduled:
			return m.scheduledOK()
		case NoSlots:
			return m.noSlots(ev.Reason, now)
		case TaskFailed:
			return m.taskFailed(ev)
		}
	}
	return nil
}
