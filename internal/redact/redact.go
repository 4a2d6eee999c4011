// Package redact owns how weir recognises a secret written where it does
// not belong, in a job's arguments: `--password x`, `--sasl-password=x`,
// `api_key=x`. Such values are shown as "(redacted)" by the API and the
// page, and `weir run` warns when it sees one: job arguments are visible to
// anyone who may list jobs, and to anyone who can run `ps` on a worker.
// Secrets belong in `weir secret set` and `weir run --secret`.
package redact

import (
	"regexp"
	"strings"
)

// Placeholder replaces a redacted value.
const Placeholder = "(redacted)"

// secretName matches a flag or key name that names a secret.
var secretName = regexp.MustCompile(`(?i)(pass(word|wd|phrase)?|secret|token|credential|api[-_]?key|private[-_]?key|access[-_]?key)$`)

// name is the name part of an argument: "--sasl-password" of
// "--sasl-password=x", "api_key" of "api_key=x", "" for a plain value.
func name(arg string) (n, value string, hasValue bool) {
	n, value, hasValue = strings.Cut(arg, "=")
	if !hasValue && !strings.HasPrefix(n, "-") {
		return "", "", false
	}
	return n, value, hasValue
}

// Args returns args with the values of secret-looking arguments replaced
// by Placeholder, and the names of those arguments; args itself is not
// changed. A secret flag without "=" redacts the next argument.
func Args(args []string) (out []string, names []string) {
	for i := 0; i < len(args); i++ {
		n, _, hasValue := name(args[i])
		if n == "" || !secretName.MatchString(strings.TrimLeft(n, "-")) {
			continue
		}
		if out == nil {
			out = append([]string(nil), args...)
		}
		names = append(names, n)
		switch {
		case hasValue:
			out[i] = n + "=" + Placeholder
		case strings.HasPrefix(n, "-") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-"):
			out[i+1] = Placeholder
			i++
		}
	}
	if out == nil {
		return args, nil
	}
	return out, names
}
