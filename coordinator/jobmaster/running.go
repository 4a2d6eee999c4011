package jobmaster

import "time"

// stepRunning: every task of the attempt is running.
func (m *Machine) stepRunning(ev Event, now time.Time) []Action {
	if m.phase == phaseUnknown {
		return m.stepRecovered(ev)
	}
	if m.regionsLive() {
		if acts, ok := m.stepRegion(ev, now); ok {
			return acts
		}
	}
	switch ev := ev.(type) {
	case AllFinished:
		m.setState(finished)
		m.phase = phaseIdle
	case TaskFailed:
		return m.taskFailed(ev)
	case CancelRequested:
		return m.cancel()
	}
	return nil
}
