package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Role is what a principal may do in the cluster.
type Role string

// The roles a certificate can carry. Coordinator, Worker and Etcd are the
// cluster's own processes. The others are people and scripts using the CLI
// or the API, from least to most trusted: Viewer reads, Operator also
// cancels, stops, takes savepoints and tails records, Submitter also
// uploads and runs jobs, Admin also manages tokens. Client is Admin's other
// name, for a certificate that holds every right.
const (
	RoleCoordinator Role = "coordinator"
	RoleWorker      Role = "worker"
	RoleEtcd        Role = "etcd"
	RoleClient      Role = "client"
	RoleViewer      Role = "viewer"
	RoleOperator    Role = "operator"
	RoleSubmitter   Role = "submitter"
	RoleAdmin       Role = "admin"
)

// Roles lists the roles a certificate can be issued for.
var Roles = []Role{RoleCoordinator, RoleWorker, RoleEtcd, RoleClient, RoleViewer, RoleOperator, RoleSubmitter, RoleAdmin}

// ParseRole checks a role named on a command line.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q (want one of coordinator, worker, etcd, client, viewer, operator, submitter, admin)", s)
}

// IsDaemon reports whether r is one of the cluster's own processes, which
// serve as well as dial.
func (r Role) IsDaemon() bool {
	return r == RoleCoordinator || r == RoleWorker || r == RoleEtcd
}

// DaemonName is a DNS name every certificate of a daemon role carries, so
// that servers that check only host names, such as etcd's
// --client-cert-allowed-hostname, can admit the cluster's processes and
// refuse people's certificates. It is reserved: --hosts may not name it.
func DaemonName(r Role) string { return "weir-" + string(r) }

// DaemonNames are the DaemonName of every daemon role.
func DaemonNames() []string {
	return []string{DaemonName(RoleCoordinator), DaemonName(RoleWorker), DaemonName(RoleEtcd)}
}

// Identity is the principal a certificate names.
type Identity struct {
	Role Role
	Name string
}

func (id Identity) String() string { return string(id.Role) + "/" + id.Name }

// uriScheme is the scheme of the identity URI SAN.
const uriScheme = "weir"

// validName keeps names usable as file names, etcd keys and URI paths.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// CheckName refuses a name that cannot be a principal's name.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("bad name %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// URI is the SAN that carries id.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: uriScheme, Host: string(id.Role), Path: "/" + id.Name}
}

// IdentityOf reads the principal from a verified certificate. A certificate
// with no weir URI, or with more than one, names nobody.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != uriScheme {
			continue
		}
		role, err := ParseRole(u.Host)
		if err != nil {
			return Identity{}, fmt.Errorf("certificate %q: %w", cert.Subject.CommonName, err)
		}
		name := strings.TrimPrefix(u.Path, "/")
		if err := CheckName(name); err != nil {
			return Identity{}, fmt.Errorf("certificate %q: %w", cert.Subject.CommonName, err)
		}
		found = append(found, Identity{Role: role, Name: name})
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("certificate %q names no weir identity (no weir:// URI SAN)", cert.Subject.CommonName)
	case 1:
		return found[0], nil
	default:
		return Identity{}, fmt.Errorf("certificate %q names %d weir identities; it must name one", cert.Subject.CommonName, len(found))
	}
}

// File names in a certificate directory.
const (
	CAFile    = "ca.crt"
	CAKeyFile = "ca.key"
)

// CertFile and KeyFile are where Issue writes name's certificate and key.
func CertFile(dir, name string) string { return filepath.Join(dir, name+".crt") }
func KeyFile(dir, name string) string  { return filepath.Join(dir, name+".key") }

// InitCA creates a cluster CA in dir: ca.crt (public, hand it to every
// process) and ca.key (0600, keep it off the cluster). It refuses to
// overwrite an existing CA, which would orphan every certificate issued.
func InitCA(dir string, valid time.Duration, now time.Time) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []string{CAFile, CAKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("%s already exists; a new CA would invalidate every certificate it issued (use another --dir)", filepath.Join(dir, f))
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "weir cluster CA", Organization: []string{"weir"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(valid),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, CAKeyFile), key); err != nil {
		return err
	}
	return writeCert(filepath.Join(dir, CAFile), der)
}

// IssueRequest says what certificate to issue.
type IssueRequest struct {
	Identity Identity
	// Hosts are DNS names and IP addresses the holder serves on. Servers
	// (coordinator, worker, etcd) always get localhost and 127.0.0.1 too.
	Hosts []string
	Valid time.Duration
}

// Issue signs a certificate for req with the CA in dir and writes
// <name>.crt and <name>.key (0600) there. Re-issuing a name replaces its
// files, which is how certificates are rotated.
func Issue(dir string, req IssueRequest, now time.Time) error {
	id := req.Identity
	if _, err := ParseRole(string(id.Role)); err != nil {
		return err
	}
	if err := CheckName(id.Name); err != nil {
		return err
	}
	if id.Name == "ca" {
		return errors.New(`the name "ca" is the CA's own; pick another`)
	}
	caCert, caKey, err := loadCA(dir)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: id.Name, OrganizationalUnit: []string{string(id.Role)}, Organization: []string{"weir"}},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(req.Valid),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URI()},
	}
	if tmpl.NotAfter.After(caCert.NotAfter) {
		tmpl.NotAfter = caCert.NotAfter
	}
	hosts := req.Hosts
	if id.Role.IsDaemon() {
		// Daemons also accept connections (and etcd members, coordinators
		// and workers dial each other), so they serve as well as identify.
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		hosts = append([]string{"localhost", "127.0.0.1", "::1"}, hosts...)
	}
	for _, h := range req.Hosts {
		if contains(DaemonNames(), strings.ToLower(strings.TrimSpace(h))) {
			return fmt.Errorf("--hosts: %s is reserved for the cluster's own processes", h)
		}
	}
	if id.Role.IsDaemon() {
		hosts = append(hosts, DaemonName(id.Role))
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = appendIP(tmpl.IPAddresses, ip)
		} else if !contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	// Key first: a reader that sees the new certificate must find its key.
	if err := writeKey(KeyFile(dir, id.Name), key); err != nil {
		return err
	}
	return writeCert(CertFile(dir, id.Name), der)
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, nil, fmt.Errorf("no CA in %s (run weir certs init --dir %s first): %w", dir, dir, err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("the CA key is not in %s: %w", dir, err)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, CAFile), err)
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, nil, fmt.Errorf("%s: not PEM", filepath.Join(dir, CAKeyFile))
	}
	key, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, CAKeyFile), err)
	}
	return cert, key, nil
}

func parseCert(pemBytes []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

// writeKey writes a private key with mode 0600, replacing any old file
// atomically so a reloading reader never sees half a key.
func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writeAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func writeCert(path string, der []byte) error {
	return writeAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func appendIP(ips []net.IP, ip net.IP) []net.IP {
	for _, x := range ips {
		if x.Equal(ip) {
			return ips
		}
	}
	return append(ips, ip)
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
