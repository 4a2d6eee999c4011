package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weir-run/weir/internal/authz"
	"github.com/weir-run/weir/internal/pki"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

type fixedTokens map[string]authz.Principal

func (f fixedTokens) VerifyToken(_ context.Context, tok string) (authz.Principal, error) {
	if p, ok := f[tok]; ok {
		return p, nil
	}
	return authz.Principal{}, errors.New("unknown token")
}

// A coordinator stand-in with mTLS and the real admission rules; the CLI
// reaches it with a certificate or a token.
func TestCLIOverTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if err := pki.InitCA(dir, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []pki.Identity{{Role: pki.RoleCoordinator, Name: "c1"}, {Role: pki.RoleViewer, Name: "vera"}} {
		if err := pki.Issue(dir, pki.IssueRequest{Identity: id, Valid: time.Hour}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	src, err := pki.NewSource(pki.Files{CA: filepath.Join(dir, pki.CAFile), Cert: pki.CertFile(dir, "c1"), Key: pki.KeyFile(dir, "c1")})
	if err != nil {
		t.Fatal(err)
	}
	auth := authz.Authenticator{Tokens: fixedTokens{"weir_op": {Name: "ci", Role: pki.RoleOperator}}}
	opts := append(auth.ServerOptions(authz.Policy{}), grpc.Creds(credentials.NewTLS(src.ServerConfig(pki.OptionalClientCert))))
	f := &fakeJobs{jobs: map[string]*weirv1.JobStatus{"j1": {Id: "j1", Name: "counts", State: weirv1.JobState_JOB_STATE_RUNNING}}}
	addr, _ := serveFakeStoppable(t, f, opts...)
	ca := filepath.Join(dir, pki.CAFile)
	otherDir := filepath.Join(t.TempDir(), "other")
	if err := pki.InitCA(otherDir, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(otherDir, pki.CAFile)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("weir_op\n"), 0o600)

	for _, c := range []struct {
		name string
		args []string
		code int
		want string // in stdout, or in stderr when code != 0
	}{
		{"viewer certificate lists", []string{"list", "--tls-ca", ca, "--tls-cert", pki.CertFile(dir, "vera"), "--tls-key", pki.KeyFile(dir, "vera")}, 0, "counts"},
		{"viewer certificate cancels", []string{"cancel", "j1", "--tls-ca", ca, "--tls-cert", pki.CertFile(dir, "vera"), "--tls-key", pki.KeyFile(dir, "vera")}, 1, "CancelJob needs role operator or above; vera has role viewer"},
		{"operator token from a file lists", []string{"list", "--tls-ca", ca, "--token-file", tokenFile}, 0, "counts"},
		{"no credentials", []string{"list", "--tls-ca", ca}, 1, "no client certificate or token"},
		{"plaintext to a TLS coordinator", []string{"list"}, 1, "if it uses TLS, set --tls-ca"},
		{"another cluster's CA", []string{"list", "--tls-ca", otherCA}, 1, "not from the CA given with --tls-ca"},
		{"a token without TLS", []string{"list", "--token-file", tokenFile}, 2, "a token needs TLS"},
		{"a certificate without its key", []string{"list", "--tls-ca", ca, "--tls-cert", pki.CertFile(dir, "vera")}, 2, "both a certificate and its key"},
	} {
		code, out, errs := weir(context.Background(), append(c.args, "--coordinator", addr)...)
		got := out
		if c.code != 0 {
			got = errs
		}
		if code != c.code || !strings.Contains(got, c.want) || (code != 0 && strings.Count(strings.TrimSpace(errs), "\n") != 0) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d with %q on one line", c.name, code, out, errs, c.code, c.want)
		}
	}

	// --token works but warns that it shows the token to other users.
	code, out, errs := weir(context.Background(), "list", "--tls-ca", ca, "--token", "weir_op", "--coordinator", addr)
	if code != 0 || !strings.Contains(out, "counts") || !strings.Contains(errs, "warning: --token shows the token") {
		t.Errorf("--token: %d %q %q", code, out, errs)
	}
	if strings.Contains(errs, "weir_op") {
		t.Errorf("the warning repeats the token: %q", errs)
	}
}

func TestSIGHUPReloadsCertificates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if err := pki.InitCA(dir, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := pki.Issue(dir, pki.IssueRequest{Identity: pki.Identity{Role: pki.RoleWorker, Name: "w1"}, Valid: time.Hour}, time.Now()); err != nil {
		t.Fatal(err)
	}
	src, err := pki.NewSource(pki.Files{CA: filepath.Join(dir, pki.CAFile), Cert: pki.CertFile(dir, "w1"), Key: pki.KeyFile(dir, "w1")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	var mu sync.Mutex
	reloadOnHangup(ctx, src, slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(b)
	}), nil)))
	// A broken certificate: the reload fails, says so, and keeps the old one.
	os.WriteFile(pki.CertFile(dir, "w1"), []byte("garbage"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	// The source records the failure before the handler logs it: wait
	// for both.
	logged := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "certificates not reloaded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for (src.Err() == nil || !logged()) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if src.Err() == nil {
		t.Fatal("SIGHUP did not reload the certificate files")
	}
	if id, err := src.Identity(); err != nil || id.Name != "w1" {
		t.Errorf("after a failed reload the identity is %v, %v; want the old w1", id, err)
	}
	if !logged() {
		mu.Lock()
		defer mu.Unlock()
		t.Errorf("the failed reload was not logged: %q", logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
