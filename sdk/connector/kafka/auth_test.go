package kafka

import (
	"errors"
	"strings"
	"testing"

	"github.com/weir-run/weir/sdk"
)

func TestCredentialsFromSecret(t *testing.T) {
	const pw = "hunter2-secret"
	sdk.SetSecretsForTest(map[string][]byte{
		"scram":   []byte(`{"mechanism": "SCRAM-SHA-512", "username": "u", "password": "` + pw + `"}`),
		"plain":   []byte(`{"mechanism": "PLAIN", "username": "u", "password": "` + pw + `"}`),
		"garbled": []byte(`{"mechanism": "PLAIN", "password": "` + pw + `"`),
		"typo":    []byte(`{"mechanisms": "PLAIN", "password": "` + pw + `"}`),
		"md5":     []byte(`{"mechanism": "MD5", "username": "u", "password": "` + pw + `"}`),
		"nouser":  []byte(`{"mechanism": "PLAIN", "password": "` + pw + `"}`),
		"badtls":  []byte(`{"tls": {"ca": "not a pem"}}`),
		"empty":   []byte(`{}`),
	})
	t.Cleanup(func() { sdk.SetSecretsForTest(nil) })
	for _, tc := range []struct {
		secret string
		opts   int
		want   string
	}{
		{"", 0, ""},
		{"scram", 1, ""},
		{"plain", 1, ""},
		{"missing", 0, "weir run --secret missing"},
		{"garbled", 0, "is not the JSON object"},
		{"typo", 0, "is not the JSON object"},
		{"md5", 0, `mechanism "MD5"`},
		{"nouser", 0, "no username or password"},
		{"badtls", 0, "tls.ca holds no PEM certificate"},
		{"empty", 0, "names no mechanism and no tls"},
	} {
		opts, err := Credentials{secret: tc.secret}.options()
		if tc.want == "" {
			if err != nil || len(opts) != tc.opts {
				t.Errorf("%s: %d options, %v", tc.secret, len(opts), err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !sdk.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent error containing %q", tc.secret, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("%s: the error shows the password: %v", tc.secret, err)
		}
		if tc.secret == "missing" && !errors.Is(err, sdk.ErrNoSecret) {
			t.Errorf("missing: %v does not wrap ErrNoSecret", err)
		}
	}
}
