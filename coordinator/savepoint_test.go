package coordinator

import (
	"testing"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// A failed savepoint is told in the words of what happened to the job, and
// of what the job does now: a task failure restarts it and it keeps
// running; a cancel or an end does not.
func TestSavepointFailureWords(t *testing.T) {
	for _, tc := range []struct {
		reason string
		at     weirv1.JobState // when the savepoint was aborted
		now    weirv1.JobState // when the caller hears of it
		want   string
	}{
		{"job stopped: the attempt is stopping", weirv1.JobState_JOB_STATE_RESTARTING, weirv1.JobState_JOB_STATE_RESTARTING,
			"savepoint 12 failed: a task failed during it; the job is RESTARTING and keeps running; no savepoint was taken"},
		{"job stopped: the attempt is stopping", weirv1.JobState_JOB_STATE_RESTARTING, weirv1.JobState_JOB_STATE_RUNNING,
			"savepoint 12 failed: a task failed during it; the job is RUNNING and keeps running; no savepoint was taken"},
		{"job stopped: region 1 is restarting", weirv1.JobState_JOB_STATE_RUNNING, weirv1.JobState_JOB_STATE_RUNNING,
			"savepoint 12 failed: a task failed during it (region 1 is restarting); the job is RUNNING and keeps running; no savepoint was taken"},
		{"job stopped: the attempt is stopping", weirv1.JobState_JOB_STATE_CANCELING, weirv1.JobState_JOB_STATE_CANCELED,
			"savepoint 12 failed: the job was cancelled during it; the job is CANCELED; no savepoint was taken"},
		{"job stopped: the attempt is stopping", weirv1.JobState_JOB_STATE_FAILED, weirv1.JobState_JOB_STATE_FAILED,
			"savepoint 12 failed: a task failed during it; the job is FAILED; no savepoint was taken"},
		{"job not running", weirv1.JobState_JOB_STATE_RESTARTING, weirv1.JobState_JOB_STATE_RESTARTING,
			"savepoint 12 failed: a task failed during it; the job is RESTARTING and keeps running; no savepoint was taken"},
		{"expired after 10m0s", weirv1.JobState_JOB_STATE_RUNNING, weirv1.JobState_JOB_STATE_RUNNING,
			"savepoint 12 failed: expired after 10m0s; the job is RUNNING and keeps running; no savepoint was taken"},
	} {
		got := failedSavepoint(savepointFailure(12, tc.reason, tc.at), tc.now)
		if got != tc.want {
			t.Errorf("%q at %v, now %v:\n got %q\nwant %q", tc.reason, tc.at, tc.now, got, tc.want)
		}
	}
}
