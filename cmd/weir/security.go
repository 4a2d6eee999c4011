package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weir-run/weir/internal/pki"
)

// The environment variables that set the TLS and token flags' defaults, so
// that a shell or a unit file configures every command at once.
const (
	tlsCAEnv   = "WEIR_TLS_CA"
	tlsCertEnv = "WEIR_TLS_CERT"
	tlsKeyEnv  = "WEIR_TLS_KEY"
	tokenEnv   = "WEIR_TOKEN"
)

// tlsFlags are the TLS flags every daemon and client command shares.
type tlsFlags struct {
	ca, cert, key string
}

func (f *tlsFlags) register(fl *pflag.FlagSet, s streams) {
	fl.StringVar(&f.ca, "tls-ca", s.getenv(tlsCAEnv), "the cluster CA certificate; turns TLS on ($"+tlsCAEnv+")")
	fl.StringVar(&f.cert, "tls-cert", s.getenv(tlsCertEnv), "this process's certificate, from weir certs issue ($"+tlsCertEnv+")")
	fl.StringVar(&f.key, "tls-key", s.getenv(tlsKeyEnv), "the certificate's key ($"+tlsKeyEnv+")")
}

// source loads the files; nil when TLS is off.
func (f *tlsFlags) source() (*pki.Source, error) {
	if f.ca == "" && f.cert == "" && f.key == "" {
		return nil, nil
	}
	src, err := pki.NewSource(pki.Files{CA: f.ca, Cert: f.cert, Key: f.key})
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return src, nil
}

// tokenFlags say where a client's bearer token comes from.
type tokenFlags struct {
	token, file string
}

func (f *tokenFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.file, "token-file", "", "read the bearer token from this file (or set $"+tokenEnv+")")
	fl.StringVar(&f.token, "token", "", "bearer token (visible to other users in the process list: prefer $"+tokenEnv+" or --token-file)")
}

// resolve returns the token, warning when it came on the command line.
func (f *tokenFlags) resolve(s streams) (string, error) {
	switch {
	case f.file != "":
		b, err := os.ReadFile(f.file)
		if err != nil {
			return "", usageErrorf("--token-file: %v", err)
		}
		return strings.TrimSpace(string(b)), nil
	case f.token != "":
		fmt.Fprintln(s.stderr, "weir: warning: --token shows the token to every user of this machine (ps, shell history); prefer $"+tokenEnv+" or --token-file")
		return f.token, nil
	}
	return strings.TrimSpace(s.getenv(tokenEnv)), nil
}

// security is how a client dials coordinators.
type security struct {
	creds credentials.TransportCredentials // nil: plaintext
	token string
}

func (sec security) dialOptions() []grpc.DialOption {
	creds := sec.creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if sec.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(sec.token)))
	}
	return opts
}

// bearer sends a token with every call, never over plaintext.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

// clientSecurity builds a client command's security from its flags.
func clientSecurity(t *tlsFlags, tok *tokenFlags, s streams) (security, error) {
	src, err := t.source()
	if err != nil {
		return security{}, err
	}
	token, err := tok.resolve(s)
	if err != nil {
		return security{}, err
	}
	var sec security
	if src != nil {
		sec.creds = credentials.NewTLS(src.ClientConfig(pki.RoleCoordinator))
	}
	if token != "" {
		if src == nil {
			return security{}, usageErrorf("a token needs TLS, or it would cross the network in clear: set --tls-ca (or $%s) to the cluster CA", tlsCAEnv)
		}
		sec.token = token
	}
	return sec, nil
}

// reloadOnHangup re-reads src's files on every SIGHUP until ctx ends, as
// operators expect of daemons after rotating certificates (they are also
// picked up at the next handshake after they change).
func reloadOnHangup(ctx context.Context, src *pki.Source, logger *slog.Logger) {
	if src == nil {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := src.Reload(); err != nil {
					logger.Error("SIGHUP: certificates not reloaded; the previous ones stay in use", "err", err)
				} else {
					logger.Info("SIGHUP: certificates reloaded")
				}
			}
		}
	}()
}
