package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/weir-run/weir/internal/pki"
)

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.Error(w, "sick", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"ok":true}` + "\n"))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		args             []string
		code             int
		wantOut, wantErr string
	}{
		{[]string{srv.URL + "/healthz"}, exitOK, srv.URL + "/healthz: 200 OK {\"ok\":true}\n", ""},
		{[]string{srv.URL + "/other"}, exitFailure, "", "weir: " + srv.URL + "/other: 503 Service Unavailable sick\n"},
		{[]string{"http://" + closedAddr(t) + "/healthz"}, exitFailure, "", ""},
		{[]string{"ftp://x"}, exitUsage, "", "weir: healthcheck URL must start with http:// or https://, got \"ftp://x\"\n"},
		{nil, exitUsage, "", "weir: weir healthcheck needs a URL (or $WEIR_HEALTHCHECK_URL)\n"},
	} {
		code, out, errs := weir(context.Background(), append([]string{"healthcheck"}, tc.args...)...)
		if code != tc.code || out != tc.wantOut || (tc.wantErr != "" && errs != tc.wantErr) || (tc.code != 0 && errs == "") {
			t.Errorf("healthcheck %v: exit %d, stdout %q, stderr %q; want %d %q %q", tc.args, code, out, errs, tc.code, tc.wantOut, tc.wantErr)
		}
	}
}

// Over https the server must hold a certificate of the cluster CA, and the
// check presents its own (etcd admits only the cluster's daemons).
func TestHealthcheckTLS(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := weirCmd("certs", "init", "--dir", dir, "--issue", "etcd:e1", "--issue", "worker:w1"); code != 0 {
		t.Fatal(errs)
	}
	files := func(name string) pki.Files {
		return pki.Files{CA: filepath.Join(dir, pki.CAFile), Cert: pki.CertFile(dir, name), Key: pki.KeyFile(dir, name)}
	}
	src, err := pki.NewSource(files("e1"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("up"))
	}))
	srv.TLS = src.ServerConfig(pki.RequireClientCert)
	srv.StartTLS()
	defer srv.Close()
	w1 := files("w1")
	code, out, errs := weir(context.Background(), "healthcheck", "--tls-ca", w1.CA, "--tls-cert", w1.Cert, "--tls-key", w1.Key, srv.URL+"/health")
	if code != exitOK || out != srv.URL+"/health: 200 OK up\n" {
		t.Errorf("with the cluster's certificates: exit %d %q %q", code, out, errs)
	}
	if code, _, errs := weir(context.Background(), "healthcheck", srv.URL+"/health"); code != exitFailure || errs == "" {
		t.Errorf("without them: exit %d %q", code, errs)
	}
}
