package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

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
	Location    string `json:"location,omitempty"`
	Failure     string `json:"failure,omitempty"`
}

func printCheckpoints(s streams, format string, cps []*weirv1.CheckpointInfo) error {
	views := make([]checkpointView, 0, len(cps))
	for _, c := range cps {
		views = append(views, checkpointView{
			ID: c.Id, Status: checkpointStatus(c.Status), Savepoint: c.Savepoint, Trigger: rfc3339(c.TriggerUnixMs),
			DurationMs: c.DurationMs, SizeBytes: c.SizeBytes, Incremental: c.IncrementalBytes, AlignmentMs: c.AlignmentMs,
			Location: c.Location, Failure: c.Failure,
		})
	}
	if format == formatJSON {
		return writeJSON(s.stdout, views)
	}
	tw := newTable(s.stdout)
	fmt.Fprintln(tw, "ID\tSTATUS\tTRIGGERED\tDURATION\tSIZE\tINCREMENT\tALIGNMENT\tNOTE")
	for _, v := range views {
		note := v.Failure
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
// --savepoint ID`. Both print the savepoint's location as their last line.
func newSavepointCmd(s streams, stop bool) *cobra.Command {
	var cf clientFlags
	var withSavepoint bool
	cmd := &cobra.Command{
		Use:   "savepoint JOB-ID",
		Short: "Take a savepoint of a running job",
		Long: `Take a savepoint of a running job: a full, self-contained snapshot of its
state. The last line printed is its location, for 'weir run --from-savepoint'
(at any parallelism).`,
		Args: exactArgs("JOB-ID"),
	}
	if stop {
		cmd.Use = "stop --savepoint JOB-ID"
		cmd.Short = "Stop a job with a savepoint"
		cmd.Long = `Stop a job after taking a savepoint, so it can be resumed later with
'weir run --from-savepoint LOCATION', at any parallelism. The last line
printed is the savepoint's location.`
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
		if err != nil {
			return c.rpcError(cmd.Context(), err)
		}
		if stop {
			fmt.Fprintf(s.stderr, "job %s stopping\n", id)
		}
		_, err = fmt.Fprintln(s.stdout, resp.GetLocation())
		return err
	})
	cf.register(cmd, s)
	return cmd
}
