package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-run/weir/internal/pki"
)

func newCertsCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Create the cluster CA and issue certificates",
		Long: `Create a cluster CA and issue the certificates its processes and users
present. A certificate carries its holder's role and name (as the URI SAN
weir://ROLE/NAME); the cluster reads identities from certificates alone.

  weir certs init  --dir certs
  weir certs issue --dir certs --role coordinator --name coord-1 --hosts 10.0.0.1,coord-1.internal
  weir certs issue --dir certs --role worker --name worker-1 --hosts 10.0.0.2
  weir certs issue --dir certs --role client --name alice
  weir certs issue --dir certs --role viewer --name dashboards

Keep ca.key off the cluster machines; give each process ca.crt and its own
NAME.crt and NAME.key. Issuing a name again replaces its files: running
processes pick the new certificate up without a restart.`,
	}
	cmd.AddCommand(newCertsInitCmd(s), newCertsIssueCmd(s))
	return cmd
}

func newCertsInitCmd(s streams) *cobra.Command {
	var (
		dir   string
		valid time.Duration
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a cluster CA (ca.crt, ca.key) in a directory",
		Args:  exactArgs(),
		RunE: markRan(func(cmd *cobra.Command, _ []string) error {
			if err := pki.InitCA(dir, valid, time.Now()); err != nil {
				return err
			}
			_, err := fmt.Fprintf(s.stdout, "created the cluster CA: %s (key %s, keep it safe)\n",
				filepath.Join(dir, pki.CAFile), filepath.Join(dir, pki.CAKeyFile))
			return err
		}),
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory for the CA's files (required)")
	cmd.Flags().DurationVar(&valid, "valid", 10*8760*time.Hour, "how long the CA is valid")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

func newCertsIssueCmd(s streams) *cobra.Command {
	var (
		dir, role, name, hosts string
		valid                  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a certificate for a coordinator, worker, etcd member, person or script",
		Args:  exactArgs(),
		RunE: markRan(func(cmd *cobra.Command, _ []string) error {
			r, err := pki.ParseRole(role)
			if err != nil {
				return usageErrorf("--role: %v", err)
			}
			if err := pki.CheckName(name); err != nil {
				return usageErrorf("--name: %v", err)
			}
			if valid <= 0 {
				return usageErrorf("--valid must be positive, got %v", valid)
			}
			var hostList []string
			if hosts != "" {
				hostList = strings.Split(hosts, ",")
			}
			id := pki.Identity{Role: r, Name: name}
			if err := pki.Issue(dir, pki.IssueRequest{Identity: id, Hosts: hostList, Valid: valid}, time.Now()); err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.stdout, "issued %s: %s, key %s\n", id, pki.CertFile(dir, name), pki.KeyFile(dir, name))
			return err
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", "", "directory holding the CA, where the certificate is written (required)")
	fl.StringVar(&role, "role", "", "coordinator, worker or etcd for the cluster's processes; viewer, operator, submitter or admin (client: every right) for people and scripts (required)")
	fl.StringVar(&name, "name", "", "the holder's name, unique per role; also the file name (required)")
	fl.StringVar(&hosts, "hosts", "", "comma-separated DNS names and IPs the holder serves on (localhost and 127.0.0.1 are always added for daemons)")
	fl.DurationVar(&valid, "valid", 8760*time.Hour, "how long the certificate is valid")
	for _, f := range []string{"dir", "role", "name"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}
