package redact

import (
	"slices"
	"testing"
)

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		in, want, names []string
	}{
		{[]string{"--brokers", "b:9092", "--topic", "t"}, []string{"--brokers", "b:9092", "--topic", "t"}, nil},
		{[]string{"--password", "hunter2", "--user", "u"}, []string{"--password", Placeholder, "--user", "u"}, []string{"--password"}},
		{[]string{"--sasl-password=hunter2"}, []string{"--sasl-password=" + Placeholder}, []string{"--sasl-password"}},
		{[]string{"api_key=abc", "x=y"}, []string{"api_key=" + Placeholder, "x=y"}, []string{"api_key"}},
		{[]string{"-token", "t0k"}, []string{"-token", Placeholder}, []string{"-token"}},
		{[]string{"--secret-name", "kafka-creds"}, []string{"--secret-name", "kafka-creds"}, nil},
		{[]string{"--password", "--verbose"}, []string{"--password", "--verbose"}, []string{"--password"}},
		{[]string{"password"}, []string{"password"}, nil},
		{[]string{"--AWS_SECRET_ACCESS_KEY=z"}, []string{"--AWS_SECRET_ACCESS_KEY=" + Placeholder}, []string{"--AWS_SECRET_ACCESS_KEY"}},
	} {
		in := slices.Clone(tc.in)
		got, names := Args(in)
		if !slices.Equal(got, tc.want) || !slices.Equal(names, tc.names) {
			t.Errorf("Args(%q) = %q, %q; want %q, %q", tc.in, got, names, tc.want, tc.names)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("Args changed its input: %q", in)
		}
	}
}
