package jobmaster

// Event is something the driver observed. Each event is its own type so a
// driver cannot send a malformed one.
type Event interface{ isEvent() }

// Start asks the machine to run the job: deploy its first attempt when it was
// just submitted, or recover it after a leader change.
type Start struct{}

// Scheduled replies to Deploy: the current attempt's slots are placed and its
// processes are being deployed.
type Scheduled struct{}

// NoSlots replies to Deploy: placement failed and nothing was deployed.
// Reason is shown to the user, e.g. the scheduler's error message.
type NoSlots struct{ Reason string }

// AllRunning reports that every subtask of the current attempt is RUNNING.
type AllRunning struct{}

// AllFinished reports that every subtask of the current attempt is FINISHED.
type AllFinished struct{}

// TaskFailed reports that a task, process or worker of the current attempt
// failed. Err is the cause as the user should read it. Permanent says the
// failure cannot succeed on retry (a savepoint that cannot be restored, an
// input that does not exist, a record type its codec cannot encode): the
// job fails once the attempt is gone, whatever its restart strategy, instead
// of spending its restarts and minutes of backoff on it.
type TaskFailed struct {
	Err       string
	Permanent bool
}

// CancelRequested is a user's request to cancel the job.
type CancelRequested struct{}

// AttemptStopped replies to StopAttempt: no process of that attempt is left.
type AttemptStopped struct{}

// Tick says time passed; the driver sends it at NextWake.
type Tick struct{}

// Reattached replaces Start for a job restored as SCHEDULED or RUNNING when
// the driver found every task of the restored attempt still running on the
// workers that reported after the leader change: the machine adopts the
// attempt (RUNNING, nothing redeployed) instead of replacing it. Sent in any
// other situation it is ignored, and the driver must then send Start.
type Reattached struct{}

// RegionFailed reports that a task or process of one pipelined region of a
// job with several regions failed, the region's processes being the only
// ones affected (a lost worker is a TaskFailed). While the attempt is
// deployed only that region restarts; anywhere else it counts as TaskFailed.
// The driver drops reports about a region's older attempts, as it does for
// the job's.
type RegionFailed struct {
	Region int32
	Err    string
	// Permanent: as TaskFailed's; the whole job fails.
	Permanent bool
}

// RegionStopped replies to StopRegion: no process of the region is left.
type RegionStopped struct{ Region int32 }

func (Start) isEvent()           {}
func (Scheduled) isEvent()       {}
func (NoSlots) isEvent()         {}
func (AllRunning) isEvent()      {}
func (AllFinished) isEvent()     {}
func (TaskFailed) isEvent()      {}
func (CancelRequested) isEvent() {}
func (AttemptStopped) isEvent()  {}
func (Tick) isEvent()            {}
func (Reattached) isEvent()      {}
func (RegionFailed) isEvent()    {}
func (RegionStopped) isEvent()   {}

// Action is something the driver must do, in the order returned.
type Action interface{ isAction() }

// Deploy asks the driver to place slots for and deploy attempt Attempt. The
// driver replies Scheduled or NoSlots. Attempt numbers only grow, so every
// event about an older attempt is stale.
type Deploy struct{ Attempt int64 }

// StopAttempt asks the driver to cancel every process of attempt Attempt.
// The driver replies AttemptStopped once none is left.
type StopAttempt struct{ Attempt int64 }

// Persist asks the driver to write the job record (Machine.Snapshot) before
// performing the actions that follow it.
type Persist struct{}

// StopRegion asks the driver to cancel the processes of one region (at the
// region's current attempt) and leave the other regions running. The driver
// replies RegionStopped once none is left. A StopAttempt that follows covers
// the region too, and no RegionStopped is then expected.
type StopRegion struct{ Region int32 }

// DeployRegion asks the driver to redeploy one region as attempt Attempt on
// the slots it held, restoring its subtasks from the latest completed
// checkpoint. The other regions keep their attempts. No reply is expected:
// the slots are the region's already, and a failure of the new processes is
// a RegionFailed like any other.
type DeployRegion struct {
	Region  int32
	Attempt int64
}

func (Deploy) isAction()       {}
func (StopAttempt) isAction()  {}
func (Persist) isAction()      {}
func (StopRegion) isAction()   {}
func (DeployRegion) isAction() {}
