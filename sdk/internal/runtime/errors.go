package runtime

import (
	"errors"
	"fmt"
)

// Permanent marks err as a failure that cannot succeed on retry: a subtask
// failing with it fails the job at once, whatever the restart strategy
// (the report to the worker says so).
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

// restoreError marks a failure to restore a checkpoint's state, so the
// coordinator can fall back to an older checkpoint.
type restoreError struct {
	id  int64
	err error
}

func (e *restoreError) Error() string {
	return fmt.Sprintf("restore from checkpoint %d: %v", e.id, e.err)
}
func (e *restoreError) Unwrap() error { return e.err }
