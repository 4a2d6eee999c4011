package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files are the PEM files a process trusts (CA) and presents (Cert, Key).
type Files struct {
	CA, Cert, Key string
}

// recheckEvery bounds how often a handshake looks at the files' metadata.
const recheckEvery = time.Second

// Source holds a process's CA pool and certificate, and re-reads them when
// the files change, so rotating a certificate (weir certs issue over the old
// files) needs no restart. A change is noticed at the next handshake after
// it (at most one stat per file per second) or at once on Reload (SIGHUP).
// A reload that fails keeps the previous, working material and reports the
// error from Err; it never breaks connections that would work without it.
type Source struct {
	files Files
	now   func() time.Time

	mu      sync.Mutex
	stamp   string
	checked time.Time
	cert    *tls.Certificate
	pool    *x509.CertPool
	err     error
}

// NewSource loads files; an error names the file that is wrong. The CA is
// required; a certificate and key come together or not at all (a client
// that authenticates with a token presents none).
func NewSource(files Files) (*Source, error) {
	switch {
	case files.CA == "":
		return nil, errors.New("TLS needs the cluster CA (--tls-ca)")
	case (files.Cert == "") != (files.Key == ""):
		return nil, errors.New("TLS needs both a certificate and its key (--tls-cert, --tls-key), or neither")
	}
	s := &Source{files: files, now: time.Now}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload re-reads the files now.
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

func (s *Source) reloadLocked() error {
	stamp := s.fileStamp()
	cert, pool, err := load(s.files)
	s.checked = s.now()
	if err != nil {
		s.err = err
		return err
	}
	s.stamp, s.cert, s.pool, s.err = stamp, cert, pool, nil
	return nil
}

// Err is the last reload's error, nil when the files in use are current.
func (s *Source) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Identity is the principal this process's own certificate names.
func (s *Source) Identity() (Identity, error) {
	cert, _ := s.current()
	if cert == nil || cert.Leaf == nil {
		return Identity{}, errors.New("no certificate: set --tls-cert and --tls-key")
	}
	return IdentityOf(cert.Leaf)
}

// HasCert reports whether the process presents a certificate; a listener
// needs one.
func (s *Source) HasCert() bool { return s.files.Cert != "" }

func (s *Source) fileStamp() string {
	var stamp string
	for _, f := range []string{s.files.CA, s.files.Cert, s.files.Key} {
		if fi, err := os.Stat(f); err == nil {
			stamp += fmt.Sprintf("%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return stamp
}

// current returns the material in use, reloading first if the files changed.
func (s *Source) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.now().Sub(s.checked) >= recheckEvery {
		s.checked = s.now()
		if s.fileStamp() != s.stamp {
			_ = s.reloadLocked() // on failure the old material stays; Err says why
		}
	}
	return s.cert, s.pool
}

func load(f Files) (*tls.Certificate, *x509.CertPool, error) {
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("TLS CA %s holds no PEM certificate", f.CA)
	}
	if f.Cert == "" {
		return nil, pool, nil
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS certificate %s / key %s: %w", f.Cert, f.Key, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, nil, fmt.Errorf("TLS certificate %s: %w", f.Cert, err)
		}
	}
	if _, err := IdentityOf(cert.Leaf); err != nil {
		return nil, nil, fmt.Errorf("TLS certificate %s: %w", f.Cert, err)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, nil, fmt.Errorf("TLS certificate %s is not signed by the CA in %s: %w", f.Cert, f.CA, err)
	}
	return &cert, pool, nil
}

// ClientAuth says whether a server demands a client certificate.
type ClientAuth int

const (
	// RequireClientCert: every peer presents a certificate from the CA (the
	// cluster's own listeners, etcd).
	RequireClientCert ClientAuth = iota
	// OptionalClientCert: a peer without a certificate may still connect and
	// authenticate another way (a bearer token on the API or the page).
	OptionalClientCert
)

// ServerConfig is the TLS configuration of a listener. Certificates a peer
// presents are verified against the current CA; IdentityOfConn reads who it
// is.
func (s *Source) ServerConfig(auth ClientAuth) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := s.current()
			c := &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*cert},
				ClientCAs:    pool,
				ClientAuth:   tls.RequireAndVerifyClientCert,
				NextProtos:   []string{"h2", "http/1.1"},
			}
			if auth == OptionalClientCert {
				c.ClientAuth = tls.VerifyClientCertIfGiven
			}
			return c, nil
		},
	}
}

// ClientConfig is the TLS configuration of a dialer. It presents this
// process's certificate and accepts only a server whose certificate comes
// from the current CA, matches the dialled host, and names one of
// serverRoles (a worker talks only to a coordinator, never to another
// worker posing as one).
//
// The standard verification is replaced by the same checks in
// VerifyConnection because crypto/tls reads RootCAs once per Config; doing
// it here lets a rotated CA take effect without a restart.
func (s *Source) ClientConfig(serverRoles ...Role) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert, _ := s.current(); cert != nil {
				return cert, nil
			}
			return &tls.Certificate{}, nil // none: the caller authenticates with a token
		},
		InsecureSkipVerify: true, // verified below, against the current CA
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, pool := s.current()
			return verifyServer(cs, pool, serverRoles)
		},
	}
}

func verifyServer(cs tls.ConnectionState, pool *x509.CertPool, roles []Role) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		DNSName:       cs.ServerName,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	if len(roles) == 0 {
		return nil
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return err
	}
	for _, r := range roles {
		if id.Role == r {
			return nil
		}
	}
	return fmt.Errorf("server %s is not a %v", id, roles)
}

// IdentityOfConn is the verified principal of a TLS peer; an error if the
// peer presented no certificate from the CA.
func IdentityOfConn(cs tls.ConnectionState) (Identity, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, errors.New("no verified client certificate")
	}
	return IdentityOf(cs.VerifiedChains[0][0])
}
