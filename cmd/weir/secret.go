package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// maxSecretInput bounds what weir secret set reads; the coordinator refuses
// more than 64 KiB anyway.
const maxSecretInput = 1 << 20

func newSecretCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Set, list and delete secrets for jobs (submitters and admins)",
		Long: `A secret is a named value (a password, a key, a certificate) that jobs
submitted with --secret NAME read with sdk.Secret, for example the Kafka
credentials of kafka.SASLFromSecret. The coordinator keeps it encrypted by
the cluster's key-encryption key (--kek) and hands it to the job's processes
only, in memory: it never appears in the job's arguments, environment,
spec, status or logs, and the API never returns it.

  weir secret set kafka-creds < creds.json
  weir run --secret kafka-creds ./myjob -- ...`,
	}
	var from string
	set := clientCommand(s, &cobra.Command{
		Use:   "set NAME",
		Short: "Set a secret from standard input (or --from-file), never from an argument",
		Args:  exactArgs("NAME"),
	}, func(ctx context.Context, c *client, format string, args []string) error {
		in := s.stdin
		if from != "" {
			f, err := os.Open(from)
			if err != nil {
				return usageErrorf("--from-file: %v", unwrapPathError(err))
			}
			defer f.Close()
			in = f
		}
		value, err := io.ReadAll(io.LimitReader(in, maxSecretInput))
		if err != nil {
			return fmt.Errorf("read the secret: %v", err)
		}
		resp, err := unary(ctx, c, c.jobs.SetSecret, &weirv1.SetSecretRequest{Name: args[0], Value: value})
		if err != nil {
			return err
		}
		verb := "set"
		if resp.GetReplaced() {
			verb = "replaced (running jobs keep the value they started with)"
		}
		if format == formatJSON {
			return writeJSON(s.stdout, map[string]any{"name": args[0], "replaced": resp.GetReplaced()})
		}
		_, err = fmt.Fprintf(s.stdout, "secret %s %s\n", args[0], verb)
		return err
	})
	set.Flags().StringVar(&from, "from-file", "", "read the value from this file instead of standard input")

	list := clientCommand(s, &cobra.Command{
		Use:   "list",
		Short: "List the secrets' names (never their values)",
		Args:  exactArgs(),
	}, func(ctx context.Context, c *client, format string, _ []string) error {
		resp, err := unary(ctx, c, c.jobs.ListSecrets, &weirv1.ListSecretsRequest{})
		if err != nil {
			return err
		}
		if format == formatJSON {
			type view struct {
				Name    string `json:"name"`
				Updated string `json:"updated"`
				By      string `json:"updated_by"`
				Size    int64  `json:"size_bytes"`
			}
			out := make([]view, 0, len(resp.GetSecrets()))
			for _, v := range resp.GetSecrets() {
				out = append(out, view{v.GetName(), rfc3339(v.GetUpdatedUnixMs()), v.GetUpdatedBy(), v.GetSizeBytes()})
			}
			return writeJSON(s.stdout, out)
		}
		tw := newTable(s.stdout)
		fmt.Fprintln(tw, "NAME\tUPDATED\tBY\tSIZE")
		for _, v := range resp.GetSecrets() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d B\n", v.GetName(), localTime(v.GetUpdatedUnixMs()), v.GetUpdatedBy(), v.GetSizeBytes())
		}
		return tw.Flush()
	})

	del := clientCommand(s, &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a secret (jobs that run keep their value; new ones cannot use it)",
		Args:  exactArgs("NAME"),
	}, func(ctx context.Context, c *client, _ string, args []string) error {
		if _, err := unary(ctx, c, c.jobs.DeleteSecret, &weirv1.DeleteSecretRequest{Name: args[0]}); err != nil {
			return err
		}
		_, err := fmt.Fprintf(s.stdout, "secret %s deleted\n", args[0])
		return err
	})
	cmd.AddCommand(set, list, del)
	return cmd
}
