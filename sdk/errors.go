package sdk

import "errors"

// Permanent marks err as a failure that cannot succeed on retry: an input
// that does not exist, a record its codec cannot encode, a configuration
// the job rejects. A task failing with it fails the job at once, whatever
// the restart strategy, instead of restarting it with backoff until the
// budget is spent (Flink's SuppressRestartsException). Errors that may pass
// (a broker or store that is down) stay plain.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
