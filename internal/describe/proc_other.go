//go:build !unix

package describe

import "os/exec"

// setProcAttr does nothing without process groups: cancellation kills the
// process itself, and WaitDelay bounds the wait for its output. There is no
// network sandbox.
func setProcAttr(*exec.Cmd, bool) bool { return false }

func sandboxRefused(error) bool { return false }
