//go:build !unix

package supervisor

import (
	"errors"
	"os"
	"syscall"
)

// The package compiles everywhere so that the weir binary does, but Start
// refuses to run jobs without unix process groups.
const supported = false

func sysProcAttr() *syscall.SysProcAttr               { return nil }
func waitExitedNoReap(int) bool                       { return false }
func signalGroup(int, syscall.Signal) error           { return errors.ErrUnsupported }
func isTextBusy(error) bool                           { return false }
func isExecFormat(error) bool                         { return false }
func exitSignal(*os.ProcessState) (int, string, bool) { return 0, "", false }

func intoCgroup(*syscall.SysProcAttr, *os.File) error {
	return errors.New("supervisor: cgroups need Linux")
}
