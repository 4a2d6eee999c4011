// Package jobmaster owns one job's lifecycle: the JobState it is in, which
// attempt is deployed, how many restarts its policy has left, and what the
// coordinator must do next. It mirrors Flink's JobMaster with a restart
// strategy of exponential delay.
//
// Machine is a pure state machine in the style of etcd-io/raft: the driver
// feeds it Events with the current time and performs the Actions it returns,
// in order. It does no I/O, starts no goroutines and reads no clock; when it
// needs time to pass it says so through NextWake, and the driver sends a Tick.
// Every state change is one of the transitions declared in Transitions.
//
// One file per state holds that state's reaction to each event; events that
// make no sense in a state are ignored (no action, no transition) rather than
// treated as errors, because a driver that talks to many workers sees
// reordered and duplicated reports as a matter of course.
//
// The driver's side of the contract:
//   - Perform actions in the order returned. Persist comes first whenever the
//     job record (Snapshot) changed, so the record is written before the
//     effects it describes: a new leader never reuses a deployed attempt
//     number and never forgets a cancel.
//   - Deploy{N}: place slots and deploy attempt N; reply Scheduled once the
//     slots are placed (processes may still be starting), or NoSlots if
//     placement failed, in which case nothing of attempt N may exist.
//   - StopAttempt{N}: make sure no process of attempt N is left, aborting a
//     deployment still in flight, then reply AttemptStopped.
//   - Send AllRunning, AllFinished and TaskFailed only for the current
//     Attempt(); drop reports about older attempts.
//   - After a leader change, Restore the last persisted Snapshot and send
//     Reattached if every task of the restored attempt was found running,
//     else Start. A job that may have processes left by the old leader has its
//     attempt stopped and a fresh attempt deployed; this recovery does not
//     consume the restart budget.
package jobmaster
