package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func newKeysCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the encryption of state at rest (admins)",
		Long: `Rotating the key-encryption key (KEK): restart the coordinators with the new
KEK as --kek and the old one as --previous-kek, run 'weir keys rotate', and
once it reports no failure restart them without --previous-kek. Only the
wrapped keys in etcd are re-encrypted; no object in the store is touched.`,
	}
	rotate := clientCommand(s, &cobra.Command{
		Use:   "rotate",
		Short: "Re-encrypt every job data key and secret by the coordinators' current KEK",
		Args:  exactArgs(),
	}, func(ctx context.Context, c *client, format string, _ []string) error {
		resp, err := unary(ctx, c, c.jobs.RotateKeys, &weirv1.RotateKeysRequest{})
		if err != nil {
			return err
		}
		if format == formatJSON {
			return writeJSON(s.stdout, map[string]any{"job_keys": resp.GetJobKeys(), "secrets": resp.GetSecrets(), "failed": resp.GetFailed()})
		}
		fmt.Fprintf(s.stdout, "re-encrypted %d job keys and %d secrets by the current KEK\n", resp.GetJobKeys(), resp.GetSecrets())
		for _, f := range resp.GetFailed() {
			fmt.Fprintf(s.stdout, "not re-encrypted: %s\n", f)
		}
		if len(resp.GetFailed()) > 0 {
			return fmt.Errorf("%d keys were not re-encrypted: keep --previous-kek and run weir keys rotate again", len(resp.GetFailed()))
		}
		return nil
	})
	cmd.AddCommand(rotate)
	return cmd
}
