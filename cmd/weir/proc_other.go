//go:build !unix

package main

import "os/exec"

// killGroupOnCancel is a no-op without process groups: cancellation kills
// the process itself, and WaitDelay bounds the wait for its output.
func killGroupOnCancel(*exec.Cmd) {}
