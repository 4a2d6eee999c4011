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
// failed. Err is the cause as the user should read it.
type TaskFailed struct{ Err string }

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

func (Deploy) isAction()      {}
func (StopAttempt) isAction() {}
func (Persist) isAction()     {}
