// Command weir is the one binary of a weir cluster: the daemons (local,
// etcd, coordinator, worker) and the client commands (run, list, status,
// cancel, workers, checkpoints, savepoint, stop, tail). A hidden command,
// flags, lists every command's flags for the docs test in
// internal/invariants.
//
// Errors are printed as one line, "weir: <what went wrong>", never with a
// usage text or a stack trace. Exit codes: 0 success, 1 a runtime failure,
// 2 a usage error, 3 no savepoint was taken ('weir savepoint' and 'weir stop
// --savepoint': the message says what the job does now, usually that it
// keeps running), 4 'weir stop --savepoint' took the savepoint but the job
// did not stop, 130 interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default behaviour so that a
		// second Ctrl-C kills a daemon whose shutdown hangs.
		<-ctx.Done()
		stop()
	}()
	code := execute(ctx, os.Args[1:], streams{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// streams is what the commands may touch of the process they run in, so
// that tests can run them in-process.
type streams struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	// exitNoSavepoint: a savepoint failed, so nothing was stopped.
	exitNoSavepoint = 3
	// exitNotStopped: the savepoint was taken, but the job did not stop.
	exitNotStopped  = 4
	exitInterrupted = 130
)

// exitError carries an exit code with the message to print. An empty
// message prints nothing (the command already said what happened).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports a command line the command cannot run, exit code 2.
func usageErrorf(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// errInterrupted is returned when a signal cut an operation short.
var errInterrupted = &exitError{code: exitInterrupted, err: errors.New("interrupted")}

// execute runs the weir command line args and returns the exit code.
func execute(ctx context.Context, args []string, s streams) int {
	s.stdout, s.stderr = newTerminalSafe(s.stdout), newTerminalSafe(s.stderr)
	root := newRootCmd(s)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	code := exitFailure
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case !commandRan(cmd):
		// Cobra's own errors (unknown command or flag, wrong number of
		// arguments) come before the command runs: they are usage errors.
		code = exitUsage
		err = fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())
	}
	if msg := oneLine(err.Error()); msg != "" {
		fmt.Fprintf(s.stderr, "weir: %s\n", msg)
	}
	return code
}

// ranAnnotation marks a command whose RunE was entered, to tell cobra's
// usage errors from the command's own.
const ranAnnotation = "weir-ran"

func commandRan(cmd *cobra.Command) bool {
	return cmd != nil && cmd.Annotations[ranAnnotation] == "1"
}

func newRootCmd(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "weir",
		Short: "weir runs stream-processing jobs on a cluster",
		Long: `weir runs stream-processing jobs on a cluster.

Start a one-process cluster with 'weir local', then submit a job binary
built with the weir SDK:

  weir run -p 2 ./wordcount -- --input words.txt --output out/`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.stdin)
	root.SetOut(s.stdout)
	root.SetErr(s.stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErrorf("%w (see '%s --help')", err, cmd.CommandPath())
	})
	root.CompletionOptions.HiddenDefaultCmd = true

	root.AddGroup(&cobra.Group{ID: "client", Title: "Jobs:"}, &cobra.Group{ID: "daemon", Title: "Cluster processes:"},
		&cobra.Group{ID: "admin", Title: "Administration:"})
	for _, c := range []*cobra.Command{
		newRunCmd(s), newListCmd(s), newStatusCmd(s), newCancelCmd(s), newPurgeCmd(s), newDeleteCmd(s), newWorkersCmd(s),
		newCheckpointsCmd(s), newSavepointCmd(s, false), newSavepointCmd(s, true), newTailCmd(s),
	} {
		c.GroupID = "client"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{
		newLocalCmd(s), newEtcdCmd(s), newCoordinatorCmd(s), newWorkerCmd(s), newKafkaCmd(s),
	} {
		c.GroupID = "daemon"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newCertsCmd(s), newTokenCmd(s), newSecretCmd(s), newKeysCmd(s), newHealthcheckCmd(s)} {
		c.GroupID = "admin"
		root.AddCommand(c)
	}
	root.AddCommand(newFlagsCmd(s))
	return root
}

// oneLine folds a possibly multi-line message into one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	var b strings.Builder
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if b.Len() > 0 {
			// "failed:\ncause" reads as "failed: cause".
			if !strings.HasSuffix(b.String(), ":") {
				b.WriteString(";")
			}
			b.WriteString(" ")
		}
		b.WriteString(l)
	}
	return b.String()
}
