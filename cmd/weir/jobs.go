package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// markRan wraps a RunE so that execute can tell the command's own errors
// from cobra's usage errors, which come before RunE (see commandRan).
func markRan(run func(cmd *cobra.Command, args []string) error) func(cmd *cobra.Command, args []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if cmd.Annotations == nil {
			cmd.Annotations = map[string]string{}
		}
		cmd.Annotations[ranAnnotation] = "1"
		return run(cmd, args)
	}
}

// exactArgs checks that a command got exactly the named arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == len(names):
			return nil
		case len(names) == 0:
			return usageErrorf("%s takes no arguments, got %q (see '%s --help')", cmd.CommandPath(), args[0], cmd.CommandPath())
		case len(args) < len(names):
			return usageErrorf("%s needs %s (see '%s --help')", cmd.CommandPath(), strings.Join(names[len(args):], " "), cmd.CommandPath())
		}
		return usageErrorf("%s takes only %s, got %d arguments (see '%s --help')", cmd.CommandPath(), strings.Join(names, " "), len(args), cmd.CommandPath())
	}
}

// clientCommand completes cmd as a command that talks to the coordinator:
// it takes --coordinator and -o, and run gets a connected client and the
// output format.
func clientCommand(s streams, cmd *cobra.Command, run func(ctx context.Context, c *client, format string, args []string) error) *cobra.Command {
	var cf clientFlags
	var of outputFlag
	cmd.RunE = markRan(func(cmd *cobra.Command, args []string) error {
		if err := of.validate(); err != nil {
			return err
		}
		c, err := cf.dial(s)
		if err != nil {
			return err
		}
		defer c.Close()
		return run(cmd.Context(), c, of.format, args)
	})
	cf.register(cmd, s)
	of.register(cmd)
	return cmd
}

func newListCmd(s streams) *cobra.Command {
	return clientCommand(s, &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List jobs",
		Args:    exactArgs(),
	}, func(ctx context.Context, c *client, format string, _ []string) error {
		resp, err := unary(ctx, c, c.jobs.ListJobs, &weirv1.ListJobsRequest{})
		if err != nil {
			return err
		}
		return printJobs(s.stdout, format, resp.GetJobs())
	})
}

func newStatusCmd(s streams) *cobra.Command {
	return clientCommand(s, &cobra.Command{
		Use:   "status JOB-ID",
		Short: "Show a job and its tasks",
		Args:  exactArgs("JOB-ID"),
	}, func(ctx context.Context, c *client, format string, args []string) error {
		id := args[0]
		j, err := unaryJob(ctx, c, id, c.jobs.GetJob, &weirv1.GetJobRequest{JobId: id})
		if err != nil {
			return err
		}
		return printJob(s.stdout, format, j)
	})
}

func newCancelCmd(s streams) *cobra.Command {
	return clientCommand(s, &cobra.Command{
		Use:   "cancel JOB-ID",
		Short: "Cancel a job",
		Long: `Cancel a job. The coordinator stops the job's processes; the printed state
is CANCELING until they have stopped, then CANCELED. Cancelling a job that
already ended prints its final state.`,
		Args: exactArgs("JOB-ID"),
	}, func(ctx context.Context, c *client, format string, args []string) error {
		id := args[0]
		resp, err := unaryJob(ctx, c, id, c.jobs.CancelJob, &weirv1.CancelJobRequest{JobId: id})
		if err != nil {
			return err
		}
		if format == formatJSON {
			return writeJSON(s.stdout, map[string]string{"id": id, "state": jobState(resp.GetState())})
		}
		_, err = fmt.Fprintf(s.stdout, "job %s: %s\n", id, jobState(resp.GetState()))
		return err
	})
}

func newDeleteCmd(s streams) *cobra.Command {
	var withSavepoints bool
	cmd := clientCommand(s, &cobra.Command{
		Use:   "delete JOB-ID",
		Short: "Delete a job that ended, with its checkpoints",
		Long: `Delete a FINISHED, FAILED or CANCELED job: it leaves 'weir list', its
record leaves etcd and its checkpoints leave the object store. Its
savepoints are kept (their locations stay valid) unless --with-savepoints.
A job that has not ended is refused: cancel it first.`,
		Args: exactArgs("JOB-ID"),
	}, func(ctx context.Context, c *client, format string, args []string) error {
		id := args[0]
		resp, err := unaryJob(ctx, c, id, c.jobs.DeleteJob, &weirv1.DeleteJobRequest{JobId: id, WithSavepoints: withSavepoints})
		if err != nil {
			return err
		}
		if format == formatJSON {
			return writeJSON(s.stdout, map[string]any{"id": id, "deleted_objects": resp.GetDeletedObjects()})
		}
		_, err = fmt.Fprintf(s.stdout, "job %s deleted (%d objects removed from the store)\n", id, resp.GetDeletedObjects())
		return err
	})
	cmd.Flags().BoolVar(&withSavepoints, "with-savepoints", false, "delete the job's savepoints too")
	return cmd
}

func newWorkersCmd(s streams) *cobra.Command {
	return clientCommand(s, &cobra.Command{
		Use:   "workers",
		Short: "List the workers registered with the coordinator",
		Args:  exactArgs(),
	}, func(ctx context.Context, c *client, format string, _ []string) error {
		resp, err := unary(ctx, c, c.jobs.ListWorkers, &weirv1.ListWorkersRequest{})
		if err != nil {
			return err
		}
		return printWorkers(s.stdout, format, resp.GetWorkers(), time.Now())
	})
}
