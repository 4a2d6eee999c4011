package kafka

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weir-run/weir/sdk"
)

// Credentials authenticate a source's or sink's connections with material
// from a job secret (sdk.Secret), read when it opens: no password or key
// is ever in the job's arguments. The zero value uses none.
type Credentials struct{ secret string }

// SASLFromSecret reads SASL (and optionally TLS) credentials from the
// job's secret name, a JSON object:
//
//	{"mechanism": "SCRAM-SHA-512", "username": "app", "password": "...",
//	 "tls": {"ca": "PEM...", "cert": "PEM...", "key": "PEM..."}}
//
// mechanism is SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN, or empty for TLS
// only; tls is optional (its ca replaces the system roots, cert and key
// make a client certificate).
//
//	weir secret set kafka-creds < creds.json
//	weir run --secret kafka-creds ./job -- ...
func SASLFromSecret(name string) Credentials { return Credentials{secret: name} }

type credentialsJSON struct {
	Mechanism string `json:"mechanism"`
	Username  string `json:"username"`
	Password  string `json:"password"`
	TLS       *struct {
		CA   string `json:"ca"`
		Cert string `json:"cert"`
		Key  string `json:"key"`
	} `json:"tls"`
}

// options resolves the credentials into client options. Errors are
// permanent: a restart cannot fix a missing or malformed secret. They name
// the secret, never its content.
func (c Credentials) options() ([]kgo.Opt, error) {
	if c.secret == "" {
		return nil, nil
	}
	b, err := sdk.Secret(c.secret)
	if err != nil {
		return nil, sdk.Permanent(fmt.Errorf("kafka credentials: %w", err))
	}
	var v credentialsJSON
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil {
		// The decoder's message may quote the value: say only where.
		return nil, sdk.Permanent(fmt.Errorf("kafka credentials: secret %q is not the JSON object kafka.SASLFromSecret documents", c.secret))
	}
	var opts []kgo.Opt
	switch m := strings.ToUpper(v.Mechanism); m {
	case "":
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: v.Username, Pass: v.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: v.Username, Pass: v.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: v.Username, Pass: v.Password}.AsSha512Mechanism()))
	default:
		return nil, sdk.Permanent(fmt.Errorf("kafka credentials: secret %q names mechanism %q: want SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN", c.secret, v.Mechanism))
	}
	if v.Mechanism != "" && (v.Username == "" || v.Password == "") {
		return nil, sdk.Permanent(fmt.Errorf("kafka credentials: secret %q has no username or password", c.secret))
	}
	if v.TLS != nil {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if v.TLS.CA != "" {
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM([]byte(v.TLS.CA)) {
				return nil, sdk.Permanent(fmt.Errorf("kafka credentials: secret %q: tls.ca holds no PEM certificate", c.secret))
			}
		}
		if v.TLS.Cert != "" || v.TLS.Key != "" {
			cert, err := tls.X509KeyPair([]byte(v.TLS.Cert), []byte(v.TLS.Key))
			if err != nil {
				return nil, sdk.Permanent(fmt.Errorf("kafka credentials: secret %q: tls.cert and tls.key are not a key pair", c.secret))
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if len(opts) == 0 {
		return nil, sdk.Permanent(fmt.Errorf("kafka credentials: secret %q names no mechanism and no tls", c.secret))
	}
	return opts, nil
}
