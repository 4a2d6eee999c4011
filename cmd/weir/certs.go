package main

import (
	"fmt"
	"os"
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
		dir        string
		valid      time.Duration
		keep       bool
		issue      []string
		issueValid time.Duration
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a cluster CA (ca.crt, ca.key) in a directory, and optionally certificates",
		Long: `Create a cluster CA (ca.crt, ca.key) in --dir. Each --issue ROLE:NAME[:HOSTS]
then issues a certificate as 'weir certs issue' does, so that one command
(a container's init step, which has no shell) sets a whole cluster up. With
--keep, a CA or certificate that exists already is kept, so running the
same command again changes nothing.`,
		Example: `  weir certs init --dir /certs --keep --issue etcd:etcd-1:etcd-1 --issue coordinator:coord-1:coord-1,10.0.0.1 --issue client:admin`,
		Args:    exactArgs(),
		RunE: markRan(func(cmd *cobra.Command, _ []string) error {
			reqs := make([]pki.IssueRequest, len(issue))
			for i, spec := range issue {
				var err error
				if reqs[i], err = parseIssueSpec(spec, issueValid); err != nil {
					return err
				}
			}
			if _, err := os.Stat(filepath.Join(dir, pki.CAFile)); keep && err == nil {
				fmt.Fprintf(s.stdout, "kept the cluster CA: %s\n", filepath.Join(dir, pki.CAFile))
			} else {
				if err := pki.InitCA(dir, valid, time.Now()); err != nil {
					return err
				}
				fmt.Fprintf(s.stdout, "created the cluster CA: %s (key %s, keep it safe)\n",
					filepath.Join(dir, pki.CAFile), filepath.Join(dir, pki.CAKeyFile))
			}
			for _, r := range reqs {
				if _, err := os.Stat(pki.CertFile(dir, r.Identity.Name)); keep && err == nil {
					fmt.Fprintf(s.stdout, "kept %s\n", pki.CertFile(dir, r.Identity.Name))
					continue
				}
				if err := issueCert(s, dir, r); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", "", "directory for the CA's files (required)")
	fl.DurationVar(&valid, "valid", 10*8760*time.Hour, "how long the CA is valid")
	fl.BoolVar(&keep, "keep", false, "keep a CA and certificates that exist already instead of failing")
	fl.StringArrayVar(&issue, "issue", nil, "also issue ROLE:NAME[:HOST,...] (repeatable; roles and hosts as in weir certs issue)")
	fl.DurationVar(&issueValid, "issue-valid", 8760*time.Hour, "how long the --issue certificates are valid")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

// parseIssueSpec reads a --issue value, ROLE:NAME[:HOST,...].
func parseIssueSpec(spec string, valid time.Duration) (pki.IssueRequest, error) {
	role, rest, ok := strings.Cut(spec, ":")
	name, hosts, _ := strings.Cut(rest, ":")
	if !ok {
		return pki.IssueRequest{}, usageErrorf("--issue %q: want ROLE:NAME[:HOST,...]", spec)
	}
	var hostList []string
	if hosts != "" {
		hostList = strings.Split(hosts, ",")
	}
	r, err := issueRequest(role, name, hostList, valid)
	if err != nil {
		return r, usageErrorf("--issue %q: %v", spec, err)
	}
	return r, nil
}

// issueRequest checks a certificate's role, name and validity.
func issueRequest(role, name string, hosts []string, valid time.Duration) (pki.IssueRequest, error) {
	r, err := pki.ParseRole(role)
	if err != nil {
		return pki.IssueRequest{}, usageErrorf("--role: %v", err)
	}
	if err := pki.CheckName(name); err != nil {
		return pki.IssueRequest{}, usageErrorf("--name: %v", err)
	}
	if valid <= 0 {
		return pki.IssueRequest{}, usageErrorf("--valid must be positive, got %v", valid)
	}
	return pki.IssueRequest{Identity: pki.Identity{Role: r, Name: name}, Hosts: hosts, Valid: valid}, nil
}

// issueCert issues r's certificate into dir and says so.
func issueCert(s streams, dir string, r pki.IssueRequest) error {
	if err := pki.Issue(dir, r, time.Now()); err != nil {
		return err
	}
	_, err := fmt.Fprintf(s.stdout, "issued %s: %s, key %s\n", r.Identity, pki.CertFile(dir, r.Identity.Name), pki.KeyFile(dir, r.Identity.Name))
	return err
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
			var hostList []string
			if hosts != "" {
				hostList = strings.Split(hosts, ",")
			}
			r, err := issueRequest(role, name, hostList, valid)
			if err != nil {
				return err
			}
			return issueCert(s, dir, r)
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
