package jobmaster

import "time"

// stepCreated: the job is submitted (or restored before its first Scheduled)
// and waits for Start, then for its first placement.
func (m *Machine) stepCreated(ev Event, now time.Time) []Action {
	switch ev := ev.(type) {
	case Start:
		switch m.phase {
		case phaseIdle:
			return m.deploy()
		case phaseUnknown:
			return m.recoverAttempt()
		}
	case Scheduled:
		if m.phase == phaseDeploying {
			return m.scheduledOK()
		}
	case NoSlots:
		if m.phase == phaseDeploying {
			return m.noSlots(ev.Reason, now)
		}
	case TaskFailed:
		// A failure before Scheduled means the deployment went wrong; the
		// attempt may be partly deployed, so stop it like any other.
		if m.phase == phaseDeploying || m.phase == phaseUnknown {
			return m.taskFailed(ev)
		}
	case AttemptStopped:
		// Only a recovery stops an attempt while CREATED.
		if m.phase == phaseStopping {
			return m.deploy()
		}
	case CancelRequested:
		return m.cancel()
	}
	return nil
}
