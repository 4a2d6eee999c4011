package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func newTokenCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke bearer tokens (admins)",
		Long: `Bearer tokens let people and scripts without a client certificate use the
cluster with a role: viewer, operator, submitter or admin. The coordinator
keeps only a hash; the token is printed once, at creation. Clients pass it
in $WEIR_TOKEN or with --token-file, over TLS only.

  weir token create --name ci --role submitter > ci.token
  WEIR_TOKEN=$(cat ci.token) weir list --tls-ca certs/ca.crt`,
	}
	var name, role string
	var maxJobs, maxSlots int32
	create := clientCommand(s, &cobra.Command{
		Use:   "create",
		Short: "Create a token and print it (once)",
		Args:  exactArgs(),
	}, func(ctx context.Context, c *client, format string, _ []string) error {
		resp, err := unary(ctx, c, c.jobs.CreateToken, &weirv1.CreateTokenRequest{Name: name, Role: role, MaxJobs: maxJobs, MaxSlots: maxSlots})
		if err != nil {
			return err
		}
		if format == formatJSON {
			return writeJSON(s.stdout, map[string]string{"name": name, "role": role, "token": resp.GetToken()})
		}
		_, err = fmt.Fprintln(s.stdout, resp.GetToken())
		return err
	})
	create.Flags().StringVar(&name, "name", "", "who the token is for (required)")
	create.Flags().StringVar(&role, "role", "", "viewer, operator, submitter or admin (required)")
	create.Flags().Int32Var(&maxJobs, "max-jobs", 0, "at most this many of the holder's jobs that have not ended (0: no limit)")
	create.Flags().Int32Var(&maxSlots, "max-slots", 0, "at most this many task slots over the holder's jobs that have not ended (0: no limit)")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("role")

	list := clientCommand(s, &cobra.Command{
		Use:   "list",
		Short: "List the tokens' names and roles",
		Args:  exactArgs(),
	}, func(ctx context.Context, c *client, format string, _ []string) error {
		resp, err := unary(ctx, c, c.jobs.ListTokens, &weirv1.ListTokensRequest{})
		if err != nil {
			return err
		}
		if format == formatJSON {
			type view struct {
				Name     string `json:"name"`
				Role     string `json:"role"`
				Created  string `json:"created"`
				MaxJobs  int32  `json:"max_jobs,omitempty"`
				MaxSlots int32  `json:"max_slots,omitempty"`
			}
			out := make([]view, 0, len(resp.GetTokens()))
			for _, t := range resp.GetTokens() {
				out = append(out, view{t.GetName(), t.GetRole(), rfc3339(t.GetCreatedUnixMs()), t.GetMaxJobs(), t.GetMaxSlots()})
			}
			return writeJSON(s.stdout, out)
		}
		tw := newTable(s.stdout)
		fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tMAX JOBS\tMAX SLOTS")
		limit := func(n int32) string {
			if n == 0 {
				return "-"
			}
			return fmt.Sprint(n)
		}
		for _, t := range resp.GetTokens() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.GetName(), t.GetRole(), localTime(t.GetCreatedUnixMs()), limit(t.GetMaxJobs()), limit(t.GetMaxSlots()))
		}
		return tw.Flush()
	})

	revoke := clientCommand(s, &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a name's token (it stops working within 5 s)",
		Args:  exactArgs("NAME"),
	}, func(ctx context.Context, c *client, _ string, args []string) error {
		if _, err := unary(ctx, c, c.jobs.RevokeToken, &weirv1.RevokeTokenRequest{Name: args[0]}); err != nil {
			return err
		}
		_, err := fmt.Fprintf(s.stdout, "revoked the token of %s\n", args[0])
		return err
	})
	cmd.AddCommand(create, list, revoke)
	return cmd
}
