package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// savepointTimeout bounds `weir savepoint`: a savepoint of large state takes
// as long as its upload.
const savepointTimeout = 10 * time.Minute

func newCheckpointsCmd(s streams) *cobra.Command {
	return clientCommand(s, &cobra.Command{
		Use:   "checkpoints JOB-ID",
		Short: "List a job's checkpoints",
		Long: `List a job's recent checkpoints, newest first: id, status, trigger time,
duration, total size, bytes uploaded for it (the increment), the longest
barrier alignment, and for completed ones where the manifest is.`,
		Args: exactArgs("JOB-ID"),
	}, func(ctx context.Context, c *client, format string, args []string) error {
		resp, err := unaryJob(ctx, c, args[0], c.jobs.ListCheckpoints, &weirv1.ListCheckpointsRequest{JobId: args[0]})
		if err != nil {
			return err
		}
		return printCheckpoints(s, format, resp.GetCheckpoints())
	})
}

type checkpointView struct {
	ID          int64  `json:"id"`
	Status      string `json:"status"`
	Savepoint   bool   `json:"savepoint"`
	Trigger     string `json:"trigger_time"`
	DurationMs  int64  `json:"duration_ms"`
	SizeBytes   int64  `json:"size_bytes"`
	Incremental int64  `json:"incremental_bytes"`
	AlignmentMs int64  `json:"alignment_ms"`
	// Unaligned: some subtask snapshotted unaligned, storing InFlight
	// bytes of in-flight records.
	Unaligned bool   `json:"unaligned"`
	InFlight  int64  `json:"in_flight_bytes"`
	Location  string `json:"location,omitempty"`
	Failure   string `json:"failure,omitempty"`
}

func printCheckpoints(s streams, format string, cps []*weirv1.CheckpointInfo) error {
	views := make([]checkpointView, 0, len(cps))
	for _, c := range cps {
		views = append(views, checkpointView{
			ID: c.Id, Status: checkpointStatus(c.Status), Savepoint: c.Savepoint, Trigger: rfc3339(c.TriggerUnixMs),
			DurationMs: c.DurationMs, SizeBytes: c.SizeBytes, Incremental: c.IncrementalBytes, AlignmentMs: c.AlignmentMs,
			Unaligned: c.Unaligned, InFlight: c.InFlightBytes, Location: c.Location, Failure: c.Failure,
		})
	}
	if format == formatJSON {
		return writeJSON(s.stdout, views)
	}
	tw := newTable(s.stdout)
	fmt.Fprintln(tw, "ID\tSTATUS\tTRIGGERED\tDURATION\tSIZE\tINCREMENT\tALIGNMENT\tNOTE")
	for _, v := range views {
		note := v.Failure
		if v.Unaligned {
			note = fmt.Sprintf("unaligned, %s in flight %s", bytesIEC(v.InFlight), note)
		}
		if v.Savepoint {
			note = "savepoint " + note
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%dms\t%s\t%s\t%dms\t%s\n", v.ID, v.Status, v.Trigger, v.DurationMs,
			bytesIEC(v.SizeBytes), bytesIEC(v.Incremental), v.AlignmentMs, cell(note, 60))
	}
	return tw.Flush()
}

func checkpointStatus(s weirv1.CheckpointStatus) string {
	switch s {
	case weirv1.CheckpointStatus_CHECKPOINT_STATUS_PENDING:
		return "PENDING"
	case weirv1.CheckpointStatus_CHECKPOINT_STATUS_COMPLETED:
		return "COMPLETED"
	case weirv1.CheckpointStatus_CHECKPOINT_STATUS_FAILED:
		return "FAILED"
	}
	return "UNKNOWN"
}

// newSavepointCmd is `weir savepoint ID` or, with stop, `weir stop
// --savepoint ID`. Both print the savepoint's location on stdout, as the
// only line there.
func newSavepointCmd(s streams, stop bool) *cobra.Command {
	var cf clientFlags
	var withSavepoint bool
	cmd := &cobra.Command{
		Use:   "savepoint JOB-ID",
		Short: "Take a savepoint of a running job",
		Long: `Take a savepoint of a running job: a full, self-contained snapshot of its
state. The last line printed is its location, for 'weir run --from-savepoint'
(at any parallelism).

When the savepoint fails (a task failed during it, say), nothing was taken:
the command says what the job does now (a job whose task failed restarts and
keeps running) and exits with code 3.`,
		Args: exactArgs("JOB-ID"),
	}
	if stop {
		cmd.Use = "stop --savepoint JOB-ID"
		cmd.Short = "Stop a job with a savepoint"
		cmd.Long = `Stop a job after taking a savepoint, so it can be resumed later with
'weir run --from-savepoint LOCATION', at any parallelism. The savepoint's
location is printed on stdout as soon as it is taken; "stopped" is printed
once the job really is.

Exit codes: 0 the savepoint was taken and the job stopped; 3 the savepoint
failed, so the job was not stopped (the message says what it does now: a job
whose task failed during the savepoint restarts and keeps running); 4 the
savepoint was taken but the job did not stop (it failed, or is still
stopping when the command gives up).`
		cmd.Flags().BoolVar(&withSavepoint, "savepoint", false, "take a savepoint before stopping (required)")
	}
	cmd.RunE = markRan(func(cmd *cobra.Command, args []string) error {
		if stop && !withSavepoint {
			return usageErrorf("weir stop needs --savepoint (to stop without one, use 'weir cancel')")
		}
		c, err := cf.dial(s)
		if err != nil {
			return err
		}
		defer c.Close()
		id := args[0]
		ctx, cancel := context.WithTimeout(cmd.Context(), savepointTimeout)
		defer cancel()
		fmt.Fprintf(s.stderr, "taking a savepoint of job %s\n", id)
		resp, err := c.jobs.TriggerSavepoint(ctx, &weirv1.TriggerSavepointRequest{JobId: id, Stop: stop})
		switch status.Code(err) {
		case codes.Aborted:
			// The coordinator says which savepoint failed, why, and what
			// the job does now.
			return &exitError{code: exitNoSavepoint, err: errors.New(status.Convert(err).Message())}
		case codes.FailedPrecondition:
			// Refused: the job is not running (restarting, say), or
			// another savepoint is under way. The job is left as it is.
			return &exitError{code: exitNoSavepoint, err: fmt.Errorf("%s; no savepoint was taken", status.Convert(err).Message())}
		}
		if err != nil {
			return c.rpcError(cmd.Context(), err)
		}
		if _, err := fmt.Fprintln(s.stdout, resp.GetLocation()); err != nil {
			return err
		}
		if !stop {
			return nil
		}
		fmt.Fprintf(s.stderr, "savepoint %d taken; job %s stopping\n", resp.GetCheckpointId(), id)
		state, err := waitStopped(ctx, c, id)
		switch {
		case err != nil:
			return &exitError{code: exitNotStopped, err: fmt.Errorf("savepoint %d was taken, but whether job %s stopped is unknown: %w", resp.GetCheckpointId(), id, err)}
		case state == weirv1.JobState_JOB_STATE_CANCELED || state == weirv1.JobState_JOB_STATE_FINISHED:
			fmt.Fprintf(s.stderr, "job %s stopped\n", id)
			return nil
		case terminal(state):
			return &exitError{code: exitNotStopped, err: fmt.Errorf("savepoint %d was taken, but job %s did not stop: it is %s", resp.GetCheckpointId(), id, jobState(state))}
		}
		return &exitError{code: exitNotStopped, err: fmt.Errorf("savepoint %d was taken, but job %s has not stopped: it is still %s", resp.GetCheckpointId(), id, jobState(state))}
	})
	cf.register(cmd, s)
	if !stop {
		cmd.AddCommand(savepointKeyCmds(s)...)
	}
	return cmd
}

// waitStopped polls job id until it is in a terminal state or ctx ends, and
// returns the last state it saw. The coordinator being briefly unavailable
// (a leader change) is waited out.
func waitStopped(ctx context.Context, c *client, id string) (weirv1.JobState, error) {
	state := weirv1.JobState_JOB_STATE_UNSPECIFIED
	for {
		j, err := unaryRaw(ctx, c.jobs.GetJob, &weirv1.GetJobRequest{JobId: id})
		switch code := status.Code(err); {
		case err == nil:
			state = j.GetState()
			if terminal(state) {
				return state, nil
			}
		case ctx.Err() != nil:
			return state, nil
		case code != codes.Unavailable && code != codes.DeadlineExceeded:
			return state, c.rpcError(ctx, err)
		}
		select {
		case <-ctx.Done():
			return state, nil
		case <-time.After(stopPoll):
		}
	}
}

// stopPoll is how often 'weir stop' asks whether the job stopped.
const stopPoll = 100 * time.Millisecond
