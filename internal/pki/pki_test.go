package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)

const year = 8760 * time.Hour

// newDir makes a CA and issues the named identities in a fresh directory.
func newDir(t *testing.T, ids ...Identity) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	if err := InitCA(dir, 10*year, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := Issue(dir, IssueRequest{Identity: id, Hosts: []string{"coord.example", "10.0.0.7"}, Valid: year}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func files(dir, name string) Files {
	return Files{CA: filepath.Join(dir, CAFile), Cert: CertFile(dir, name), Key: KeyFile(dir, name)}
}

func leaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCert(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIssueWritesIdentityHostsAndPrivateKeys(t *testing.T) {
	dir := newDir(t, Identity{RoleCoordinator, "coord-1"}, Identity{RoleClient, "alice"})
	for _, f := range []string{CAKeyFile, "coord-1.key", "alice.key"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	coord := leaf(t, CertFile(dir, "coord-1"))
	if id, err := IdentityOf(coord); err != nil || id != (Identity{RoleCoordinator, "coord-1"}) {
		t.Errorf("IdentityOf(coord-1) = %v, %v", id, err)
	}
	if got := strings.Join(coord.DNSNames, ","); got != "localhost,coord.example,weir-coordinator" {
		t.Errorf("coordinator DNS SANs = %s", got)
	}
	if len(coord.IPAddresses) != 3 || !coord.IPAddresses[2].Equal(net.ParseIP("10.0.0.7")) {
		t.Errorf("coordinator IP SANs = %v", coord.IPAddresses)
	}
	alice := leaf(t, CertFile(dir, "alice"))
	if len(alice.ExtKeyUsage) != 1 || alice.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("a client certificate may only authenticate clients, has %v", alice.ExtKeyUsage)
	}
	if id, _ := IdentityOf(alice); id.String() != "client/alice" {
		t.Errorf("alice is %v", id)
	}
}

func TestRefusals(t *testing.T) {
	dir := newDir(t)
	if err := InitCA(dir, year, t0); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("a second InitCA over the first: %v", err)
	}
	for _, c := range []struct {
		id   Identity
		want string
	}{
		{Identity{"root", "x"}, "unknown role"},
		{Identity{"Admin", "x"}, "unknown role"},
		{Identity{RoleWorker, "../etc"}, "bad name"},
		{Identity{RoleWorker, ""}, "bad name"},
		{Identity{RoleWorker, "ca"}, `"ca" is the CA's own`},
	} {
		err := Issue(dir, IssueRequest{Identity: c.id, Valid: year}, t0)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Issue(%v) = %v, want %q", c.id, err, c.want)
		}
	}
	if err := Issue(dir, IssueRequest{Identity: Identity{RoleClient, "mallory"}, Hosts: []string{"weir-etcd"}, Valid: year}, t0); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("a client certificate naming a daemon's reserved name: %v", err)
	}
	if err := Issue(t.TempDir(), IssueRequest{Identity: Identity{RoleWorker, "w"}, Valid: year}, t0); err == nil || !strings.Contains(err.Error(), "certs init") {
		t.Errorf("Issue without a CA: %v", err)
	}
}

func TestIdentityOfNeedsExactlyOneWeirURI(t *testing.T) {
	u := func(s string) *url.URL { x, _ := url.Parse(s); return x }
	for _, c := range []struct {
		uris []*url.URL
		want string
	}{
		{nil, "names no weir identity"},
		{[]*url.URL{u("spiffe://x/y")}, "names no weir identity"},
		{[]*url.URL{u("weir://worker/a"), u("weir://root/b")}, "unknown role"},
		{[]*url.URL{u("weir://worker/a"), u("weir://client/b")}, "names 2 weir identities"},
		{[]*url.URL{u("weir://worker/a/b")}, "bad name"},
	} {
		_, err := IdentityOf(&x509.Certificate{URIs: c.uris})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("IdentityOf(%v) = %v, want %q", c.uris, err, c.want)
		}
	}
}

// handshake runs a TLS handshake over a pipe and returns what the server
// learnt of the client, and each side's error.
func handshake(t *testing.T, server, client *tls.Config, serverName string) (Identity, error, error) {
	t.Helper()
	sc, cc := pipe(t)
	c := client.Clone()
	c.ServerName = serverName
	srv, cli := tls.Server(sc, server), tls.Client(cc, c)
	errc := make(chan error, 1)
	go func() {
		err := cli.Handshake()
		if err != nil {
			cc.Close()
		}
		errc <- err
	}()
	serr := srv.Handshake()
	if serr != nil {
		sc.Close()
	}
	cerr := <-errc
	if serr != nil || cerr != nil {
		return Identity{}, serr, cerr
	}
	id, err := IdentityOfConn(srv.ConnectionState())
	if err != nil {
		return Identity{}, err, nil
	}
	return id, nil, nil
}

// pipe is a connected pair over loopback TCP (buffered, unlike net.Pipe, so
// a side that sends an alert does not wait for the other to read it).
func pipe(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	server.SetDeadline(deadline)
	client.SetDeadline(deadline)
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func source(t *testing.T, f Files) *Source {
	t.Helper()
	s, err := NewSource(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMutualTLS(t *testing.T) {
	dir := newDir(t, Identity{RoleCoordinator, "c1"}, Identity{RoleWorker, "w1"}, Identity{RoleClient, "alice"})
	coord := source(t, files(dir, "c1"))
	worker := source(t, files(dir, "w1"))
	alice := source(t, files(dir, "alice"))
	stranger := source(t, files(newDir(t, Identity{RoleWorker, "w1"}), "w1"))

	if id, serr, cerr := handshake(t, coord.ServerConfig(RequireClientCert), worker.ClientConfig(RoleCoordinator), "localhost"); serr != nil || cerr != nil || id.String() != "worker/w1" {
		t.Fatalf("worker → coordinator: %v, %v, %v", id, serr, cerr)
	}
	if _, _, cerr := handshake(t, coord.ServerConfig(RequireClientCert), alice.ClientConfig(RoleCoordinator), "coord.example"); cerr != nil {
		t.Errorf("a client dialling a host in the coordinator's certificate: %v", cerr)
	}
	if _, _, cerr := handshake(t, coord.ServerConfig(RequireClientCert), alice.ClientConfig(RoleCoordinator), "other.example"); cerr == nil {
		t.Error("a client accepted a coordinator certificate that does not name the dialled host")
	}
	if _, _, cerr := handshake(t, worker.ServerConfig(RequireClientCert), alice.ClientConfig(RoleCoordinator), "localhost"); cerr == nil || !strings.Contains(cerr.Error(), "is not a") {
		t.Errorf("a worker posing as a coordinator: %v", cerr)
	}
	if _, serr, _ := handshake(t, coord.ServerConfig(RequireClientCert), stranger.ClientConfig(RoleCoordinator), "localhost"); serr == nil {
		t.Error("the coordinator accepted a certificate from another CA")
	}
	if _, _, cerr := handshake(t, stranger.ServerConfig(RequireClientCert), worker.ClientConfig(), "localhost"); cerr == nil {
		t.Error("the worker accepted a server certificate from another CA")
	}
	caOnly := source(t, Files{CA: filepath.Join(dir, CAFile)})
	if _, serr, cerr := handshake(t, coord.ServerConfig(OptionalClientCert), caOnly.ClientConfig(RoleCoordinator), "localhost"); cerr != nil || serr == nil {
		t.Errorf("a CA-only client (token users) must verify the server and present no certificate: %v, %v", serr, cerr)
	}
	if _, err := caOnly.Identity(); err == nil {
		t.Error("a CA-only source names an identity")
	}
	noCert := &tls.Config{InsecureSkipVerify: true}
	if _, serr, _ := handshake(t, coord.ServerConfig(RequireClientCert), noCert, "localhost"); serr == nil {
		t.Error("a listener that requires client certificates let a client without one in")
	}
	if _, serr, cerr := handshake(t, coord.ServerConfig(OptionalClientCert), noCert, "localhost"); cerr != nil || serr == nil || !strings.Contains(serr.Error(), "no verified client certificate") {
		t.Errorf("optional client certificates: the handshake must succeed and name nobody: %v, %v", serr, cerr)
	}
}

func TestRotationWithoutRestart(t *testing.T) {
	dir := newDir(t, Identity{RoleCoordinator, "c1"}, Identity{RoleWorker, "w1"})
	coord := source(t, files(dir, "c1"))
	worker := source(t, files(dir, "w1"))
	clock := time.Now() // NewSource checked the files at about this time
	worker.now = func() time.Time { return clock }
	first := leaf(t, CertFile(dir, "w1")).SerialNumber

	// Re-issue w1 (the rotation an operator does before expiry).
	if err := Issue(dir, IssueRequest{Identity: Identity{RoleWorker, "w1"}, Valid: year}, time.Now()); err != nil {
		t.Fatal(err)
	}
	second := leaf(t, CertFile(dir, "w1")).SerialNumber
	serialSeen := func() string {
		sc, cc := pipe(t)
		cfg := worker.ClientConfig(RoleCoordinator)
		cfg.ServerName = "localhost"
		go tls.Client(cc, cfg).Handshake()
		srv := tls.Server(sc, coord.ServerConfig(RequireClientCert))
		if err := srv.Handshake(); err != nil {
			t.Fatal(err)
		}
		return srv.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := serialSeen(); got != first.String() {
		t.Errorf("within the recheck interval the old certificate is presented: got serial %s, want %s", got, first)
	}
	clock = clock.Add(recheckEvery)
	if got := serialSeen(); got != second.String() {
		t.Errorf("after the recheck interval the rotated certificate is presented: got serial %s, want %s", got, second)
	}

	// A broken file keeps the working material and says why.
	if err := os.WriteFile(CertFile(dir, "w1"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(recheckEvery)
	if got := serialSeen(); got != second.String() {
		t.Errorf("a broken certificate file replaced working material: serial %s", got)
	}
	if err := worker.Err(); err == nil || !strings.Contains(err.Error(), "w1.crt") {
		t.Errorf("Err after a broken rotation = %v, want it to name the file", err)
	}
	if err := worker.Reload(); err == nil {
		t.Error("Reload of a broken file succeeded")
	}
}

func TestNewSourceRefusesMismatchedFiles(t *testing.T) {
	dir := newDir(t, Identity{RoleWorker, "w1"})
	other := newDir(t, Identity{RoleWorker, "w1"})
	for name, f := range map[string]Files{
		"missing CA":          {Cert: CertFile(dir, "w1"), Key: KeyFile(dir, "w1")},
		"key without cert":    {CA: filepath.Join(dir, CAFile), Key: KeyFile(dir, "w1")},
		"key of another cert": {CA: filepath.Join(dir, CAFile), Cert: CertFile(dir, "w1"), Key: KeyFile(other, "w1")},
		"cert of another CA":  {CA: filepath.Join(dir, CAFile), Cert: CertFile(other, "w1"), Key: KeyFile(other, "w1")},
		"CA is not PEM":       {CA: KeyFile(dir, "w1"), Cert: CertFile(dir, "w1"), Key: KeyFile(dir, "w1")},
	} {
		if _, err := NewSource(f); err == nil {
			t.Errorf("%s: NewSource succeeded", name)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", name, err)
		}
	}
}
