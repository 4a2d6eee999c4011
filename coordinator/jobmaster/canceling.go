package jobmaster

import "time"

// stepCanceling: a cancel was requested and the attempt is being stopped.
func (m *Machine) stepCanceling(ev Event, now time.Time) []Action {
	switch ev.(type) {
	case AttemptStopped:
		if m.phase == phaseStopping {
			m.setState(canceled)
			m.phase = phaseIdle
		}
	case Start, CancelRequested:
		// Restored while canceling: finish the cancel the previous leader
		// started.
		if m.phase == phaseUnknown {
			if m.attempt == 0 {
				m.setState(canceled)
				m.phase = phaseIdle
				return nil
			}
			return m.stop("")
		}
	}
	return nil
}
