package sdk

import "github.com/weir-run/weir/sdk/internal/runtime"

// Permanent marks err as a failure that cannot succeed on retry: an input
// that does not exist, a record its codec cannot encode, a configuration
// the job rejects. A task failing with it fails the job at once, whatever
// the restart strategy, instead of restarting it with backoff until the
// budget is spent (Flink's SuppressRestartsException). Errors that may pass
// (a broker or store that is down) stay plain.
func Permanent(err error) error { return runtime.Permanent(err) }

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool { return runtime.IsPermanent(err) }
