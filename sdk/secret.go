package sdk

import "github.com/weir-run/weir/sdk/internal/runtime"

// Secret returns the value of a secret the job was submitted with:
//
//	weir secret set kafka-creds < creds.json
//	weir run --secret kafka-creds ./myjob -- ...
//
// The value reaches the job's processes in their assignment and stays in
// their memory: it is never an argument, an environment variable or a file,
// and the job's spec, status and logs name the secret only. Call it when
// the job runs (when a source or sink opens), not while the pipeline is
// built: describing a job has no secrets. A name the job was not given is
// an error wrapping ErrNoSecret.
func Secret(name string) ([]byte, error) { return runtime.Secret(name) }

// ErrNoSecret is Secret's error for a name the job was not submitted with.
var ErrNoSecret = runtime.ErrNoSecret

// SetSecretsForTest sets the secrets Secret answers from, for tests that
// run a pipeline in-process (a cluster gives a job its own).
func SetSecretsForTest(m map[string][]byte) { runtime.SetSecrets(m) }
