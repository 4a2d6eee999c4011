package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func newPurgeCmd(s streams) *cobra.Command {
	return clientCommand(s, &cobra.Command{
		Use:   "purge JOB-ID",
		Short: "Crypto-shred an ended job: destroy its data key, then delete its state",
		Long: `Purge a finished, failed or cancelled job (admin role). The coordinator
destroys the job's data key in etcd, so that none of its checkpoints or
savepoints can be read again by anyone, from this store or any copy of it,
then deletes its objects from the store, best effort. It cannot be undone:
export a savepoint you still need before purging its job.`,
		Args: exactArgs("JOB-ID"),
	}, func(ctx context.Context, c *client, format string, args []string) error {
		id := args[0]
		resp, err := unaryJob(ctx, c, id, c.jobs.PurgeJob, &weirv1.PurgeJobRequest{JobId: id})
		if err != nil {
			return err
		}
		if format == formatJSON {
			return writeJSON(s.stdout, map[string]any{"id": id, "purged": time.UnixMilli(resp.PurgedUnixMs).UTC(),
				"key_destroyed": resp.KeyDestroyed, "objects_deleted": resp.ObjectsDeleted, "delete_error": resp.DeleteError})
		}
		what := "its data key is destroyed: no copy of its state can be read again"
		if !resp.KeyDestroyed {
			what = "it had no data key (the cluster had no KEK when it ran): its state is protected only by deletion"
		}
		fmt.Fprintf(s.stdout, "job %s purged: %s; %d objects deleted\n", id, what, resp.ObjectsDeleted)
		if resp.DeleteError != "" {
			fmt.Fprintf(s.stdout, "some objects were not deleted: %s\n", resp.DeleteError)
		}
		return nil
	})
}
