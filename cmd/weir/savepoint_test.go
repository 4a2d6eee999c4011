package main

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// weir stop --savepoint and weir savepoint say what happened: "stopped"
// only once the job is, a failed savepoint with exit code 3 and the
// coordinator's account of the job, a savepoint without a stop with 4.
func TestStopWithSavepointReportsTheTruth(t *testing.T) {
	const failed = "savepoint 12 failed: a task failed during it; the job is RESTARTING and keeps running; no savepoint was taken"
	st := func(s ...weirv1.JobState) []weirv1.JobState { return s }
	for _, tc := range []struct {
		name    string
		args    []string
		err     error
		states  []weirv1.JobState
		code    int
		stdout  string
		stderrs []string
		not     string
	}{
		{name: "stopped", args: []string{"stop", "--savepoint"},
			states: st(weirv1.JobState_JOB_STATE_RUNNING, weirv1.JobState_JOB_STATE_CANCELING, weirv1.JobState_JOB_STATE_CANCELED),
			code:   0, stdout: "file:///sp/12\n", stderrs: []string{"savepoint 12 taken; job job-1 stopping\n", "job job-1 stopped\n"}},
		{name: "savepoint failed", args: []string{"stop", "--savepoint"}, err: status.Error(codes.Aborted, failed),
			states: st(weirv1.JobState_JOB_STATE_RESTARTING),
			code:   exitNoSavepoint, stderrs: []string{"weir: " + failed + "\n"}, not: "stopp"},
		{name: "savepoint failed without stop", args: []string{"savepoint"}, err: status.Error(codes.Aborted, failed),
			code: exitNoSavepoint, stderrs: []string{"weir: " + failed + "\n"}},
		{name: "refused while restarting", args: []string{"stop", "--savepoint"},
			err:  status.Error(codes.FailedPrecondition, "a savepoint of job job-1 needs every task running: the job is RESTARTING and keeps running"),
			code: exitNoSavepoint, stderrs: []string{"weir: a savepoint of job job-1 needs every task running: the job is RESTARTING and keeps running; no savepoint was taken\n"}},
		{name: "taken but the job failed", args: []string{"stop", "--savepoint"},
			states: st(weirv1.JobState_JOB_STATE_CANCELING, weirv1.JobState_JOB_STATE_FAILED),
			code:   exitNotStopped, stdout: "file:///sp/12\n",
			stderrs: []string{"weir: savepoint 12 was taken, but job job-1 did not stop: it is FAILED\n"}, not: "stopped\n"},
		{name: "savepoint only", args: []string{"savepoint"}, code: 0, stdout: "file:///sp/12\n", not: "stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveFake(t, &fakeJobs{savepointErr: tc.err, states: tc.states})
			code, stdout, stderr := weir(t.Context(), append(tc.args, "--coordinator", addr, "job-1")...)
			if code != tc.code || stdout != tc.stdout {
				t.Errorf("exit %d, stdout %q; want %d, %q (stderr %q)", code, stdout, tc.code, tc.stdout, stderr)
			}
			for _, want := range tc.stderrs {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr %q lacks %q", stderr, want)
				}
			}
			if tc.not != "" && strings.Contains(stderr, tc.not) {
				t.Errorf("stderr %q says %q", stderr, tc.not)
			}
		})
	}
}
