package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// healthcheckURLEnv is the default URL of `weir healthcheck`, so that one
// HEALTHCHECK line in the image serves every role (deploy/image).
const healthcheckURLEnv = "WEIR_HEALTHCHECK_URL"

func newHealthcheckCmd(s streams) *cobra.Command {
	var (
		tf      tlsFlags
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck [URL]",
		Short: "GET a daemon's health endpoint: exit 0 if it answers 2xx, 1 otherwise",
		Long: `GET URL (default $` + healthcheckURLEnv + `) and exit 0 if it answers with a
2xx status within --timeout, 1 otherwise, printing the status and the start
of the body. It is the image's HEALTHCHECK (there is no curl in it).

For https, the server must present a certificate of the cluster CA
(--tls-ca) and this command presents --tls-cert (both default to
$WEIR_TLS_*, as the daemon itself has them): etcd admits only certificates
of the cluster's daemons. Without --tls-ca the system's CAs are used.`,
		Example: `  weir healthcheck http://127.0.0.1:8080/healthz
  weir healthcheck https://127.0.0.1:2379/health   # an etcd member, with $WEIR_TLS_* set`,
		Args: cobra.MaximumNArgs(1),
		RunE: markRan(func(cmd *cobra.Command, args []string) error {
			url := s.getenv(healthcheckURLEnv)
			if len(args) == 1 {
				url = args[0]
			}
			if url == "" {
				return usageErrorf("weir healthcheck needs a URL (or $%s)", healthcheckURLEnv)
			}
			if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
				return usageErrorf("healthcheck URL must start with http:// or https://, got %q", url)
			}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.Proxy = nil // a probe goes straight to the daemon
			src, err := tf.source()
			if err != nil {
				return err
			}
			if src != nil {
				tr.TLSClientConfig = src.ClientConfig() // any role of the cluster CA
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return usageErrorf("%v", err)
			}
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				return fmt.Errorf("%s: %v", url, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
			line := fmt.Sprintf("%s: %s %s", url, resp.Status, oneLine(string(body)))
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("%s", line)
			}
			_, err = fmt.Fprintln(s.stdout, line)
			return err
		}),
	}
	tf.register(cmd.Flags(), s)
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}
