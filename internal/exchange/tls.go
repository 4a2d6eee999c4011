package exchange

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Identity is the TLS identity a job process serves DataService with: a
// fresh ECDSA P-256 key and a self-signed certificate, made at start and
// never written anywhere. Peers do not check it against a CA: the
// coordinator hands every producer the certificate's SHA-256 with the
// consumer's address (TaskRoute), and the producer accepts no other. The
// job process so needs no cluster certificate (job code never sees a key
// that could speak for a worker), and a process's identity dies with it.
//
// The producer side is authenticated by the attempt's channel secret,
// which now travels encrypted: the two together make a channel mutual,
// as a client certificate would.
type Identity struct {
	cert        tls.Certificate
	fingerprint []byte
}

// NewIdentity makes a fresh identity.
func NewIdentity() (*Identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("exchange: data-plane key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("exchange: data-plane certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "weir job process"},
		// Pinned by hash, so its dates matter to nobody; they are wide so
		// a skewed clock cannot trip a library that reads them anyway.
		NotBefore:   now.Add(-24 * time.Hour),
		NotAfter:    now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("exchange: data-plane certificate: %w", err)
	}
	sum := sha256.Sum256(der)
	return &Identity{
		cert:        tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		fingerprint: sum[:],
	}, nil
}

// Fingerprint is the SHA-256 of the certificate, which peers pin.
func (id *Identity) Fingerprint() []byte { return bytes.Clone(id.fingerprint) }

// ServerOption makes a grpc.Server serve TLS 1.3 with the identity; add it
// to ServerOptions.
func (id *Identity) ServerOption() grpc.ServerOption {
	return grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{id.cert},
		MinVersion:   tls.VersionTLS13,
	}))
}

// ErrPin is returned (wrapped) when a consumer's certificate is not the one
// its route names.
var ErrPin = errors.New("exchange: the peer's certificate is not the one its route pins")

// pinnedCredentials dials TLS 1.3 and accepts exactly the certificate whose
// SHA-256 is pin. Chain and name checks are off because the pin replaces
// them: no CA vouches for a job process, the coordinator does.
func pinnedCredentials(pin []byte) credentials.TransportCredentials {
	pin = bytes.Clone(pin)
	return credentials.NewTLS(&tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyPeerCertificate's pin
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return ErrPin
			}
			sum := sha256.Sum256(raw[0])
			if !bytes.Equal(sum[:], pin) {
				return ErrPin
			}
			return nil
		},
	})
}

// transport chooses how to dial a consumer: pinned TLS when the Network
// serves TLS itself (every process of an attempt runs the same way), else
// plaintext. A TLS network with no pin for addr refuses to dial: a missing
// pin must not downgrade a channel to plaintext.
func (n *Network) transport(addr string) (credentials.TransportCredentials, error) {
	if !n.opts.TLS {
		return insecure.NewCredentials(), nil
	}
	n.mu.Lock()
	pin := n.mu.pins[addr]
	n.mu.Unlock()
	if len(pin) != sha256.Size {
		return nil, fmt.Errorf("exchange: no certificate pin for %s: the data plane runs TLS and its route names no certificate", addr)
	}
	return pinnedCredentials(pin), nil
}

// SetPins gives the certificate hash of each peer address (from the
// routes), for a Network whose Options.TLS is set. Connections opened
// before stay as they are.
func (n *Network) SetPins(pins map[string][]byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.pins == nil {
		n.mu.pins = make(map[string][]byte, len(pins))
	}
	for addr, pin := range pins {
		n.mu.pins[addr] = bytes.Clone(pin)
	}
}
