//go:build !unix

package main

import "os/exec"

// killGroupOnCancel is a no-op without process groups: cancellation kills
// the process itself, and WaitDelay bounds the wait for its output.
func killGroupOnCancel(*exec.Cmd) {}

// lockDir does not lock without flock; etcd's own lock still keeps two
// processes from sharing a data dir, by blocking the second.
func lockDir(string) (func(), error) { return func() {}, nil }
