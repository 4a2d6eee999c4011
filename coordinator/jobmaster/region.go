package jobmaster

import (
	"fmt"
	"slices"
	"time"
)

// Region failover. A job whose graph splits into several pipelined regions
// (jobgraph.Regions) restarts only the region that failed, as Flink's
// region failover strategy does: the job stays SCHEDULED or RUNNING, the
// other regions keep their processes, and the failed region is stopped,
// waits out the strategy's delay and is redeployed under a fresh attempt
// number. A region restart draws on the same budget as a job restart, so a
// region that keeps failing fails the job as a whole would.

// regionRestart is one region between its failure and its redeploy.
type regionRestart struct {
	// stopping: StopRegion is out, awaiting RegionStopped.
	stopping bool
	// wake is when the region may be redeployed.
	wake time.Time
}

// regionFailed handles RegionFailed while the attempt is deployed. The
// restart strategy decides at once: when its budget is spent the whole
// attempt is stopped and the job fails once it is gone, since the other
// regions must not outlive a FAILED job.
func (m *Machine) regionFailed(ev RegionFailed, now time.Time) []Action {
	if _, busy := m.regions[ev.Region]; busy {
		// The first failure of a region is the cause the user needs; its
		// other tasks fail as it is torn down.
		return nil
	}
	err := ev.Err
	if err == "" {
		err = "unknown error"
	}
	if ev.Permanent {
		return m.taskFailed(TaskFailed{Err: err, Permanent: true})
	}
	delay, spent := m.decide(now)
	if spent != "" {
		acts := m.taskFailed(TaskFailed{Err: err})
		m.spent = spent
		return acts
	}
	if m.regions == nil {
		m.regions = make(map[int32]*regionRestart)
	}
	m.regions[ev.Region] = &regionRestart{stopping: true, wake: now.Add(delay)}
	m.message = fmt.Sprintf("region %d restarting after failure: %s", ev.Region, err)
	return []Action{StopRegion{Region: ev.Region}}
}

// regionStopped handles RegionStopped: the region's processes are gone, and
// it is redeployed now if its delay already passed, else at its wake.
func (m *Machine) regionStopped(ev RegionStopped, now time.Time) []Action {
	r := m.regions[ev.Region]
	if r == nil || !r.stopping {
		return nil
	}
	r.stopping = false
	if now.Before(r.wake) {
		return nil
	}
	return m.deployRegion(ev.Region)
}

// regionTick redeploys the first region whose delay is over. One per step
// keeps one effect per step; NextWake stays due while others wait, so the
// driver's next Tick deploys them.
func (m *Machine) regionTick(now time.Time) []Action {
	for _, id := range m.sortedRegions() {
		if r := m.regions[id]; !r.stopping && !now.Before(r.wake) {
			return m.deployRegion(id)
		}
	}
	return nil
}

// deployRegion hands the region the next attempt number: attempts stay
// unique across the job, so a report names the region attempt it is about.
func (m *Machine) deployRegion(region int32) []Action {
	delete(m.regions, region)
	m.restarts++
	m.sinceReset++
	m.attempt++
	if len(m.regions) == 0 {
		m.message = ""
	}
	return []Action{DeployRegion{Region: region, Attempt: m.attempt}}
}

// regionWake is the earliest wake of a region waiting out its delay.
func (m *Machine) regionWake() (t time.Time, ok bool) {
	for _, id := range m.sortedRegions() {
		if r := m.regions[id]; !r.stopping && (!ok || r.wake.Before(t)) {
			t, ok = r.wake, true
		}
	}
	return t, ok
}

func (m *Machine) sortedRegions() []int32 {
	ids := make([]int32, 0, len(m.regions))
	for id := range m.regions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// stepRegion handles the region events of a deployed attempt (SCHEDULED or
// RUNNING); handled reports whether ev was one.
func (m *Machine) stepRegion(ev Event, now time.Time) (acts []Action, handled bool) {
	switch ev := ev.(type) {
	case RegionFailed:
		return m.regionFailed(ev, now), true
	case RegionStopped:
		return m.regionStopped(ev, now), true
	case Tick:
		return m.regionTick(now), true
	}
	return nil, false
}
