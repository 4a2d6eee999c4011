package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/internal/filehash"
	"github.com/weir-run/weir/internal/redact"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

const (
	// uploadChunk is the size of one UploadBinary message.
	uploadChunk = 1 << 20
	// pollInterval is how often `weir run` asks for the job's state.
	pollInterval = 300 * time.Millisecond
	// waitGrace is how long `weir run` keeps polling a coordinator that
	// stopped answering (a restart, a leader change) before giving up.
	waitGrace = 15 * time.Second
)

// uploadTimeout bounds an upload of size bytes: a minute, plus a second per
// MiB so that a slow link can still carry a large binary.
func uploadTimeout(size int64) time.Duration {
	return time.Minute + time.Duration(size>>20)*time.Second
}

type runFlags struct {
	client      clientFlags
	parallelism int
	detach      bool
	name        string
	maxRestarts int
	interval    time.Duration
	ckTimeout   time.Duration
	// alignedTimeout: see --aligned-timeout.
	alignedTimeout time.Duration
	savepoint      string
	allowLost      bool
	ckFailLimit    int
	memory         int64
	gogc           int
	gomemlimit     int64
	secrets        []string
	restart        restartFlags
	platform       string
	describe       string
}

// runOptions is what `weir run` needs besides its flags; tests shorten the
// timeouts.
type runOptions struct {
	describeTimeout time.Duration
	pollInterval    time.Duration
}

func newRunCmd(s streams) *cobra.Command {
	var f runFlags
	opts := runOptions{describeTimeout: describeTimeout, pollInterval: pollInterval}
	cmd := &cobra.Command{
		Use:   "run [flags] BINARY [-- ARGS...]",
		Short: "Submit a job binary and wait for it to finish",
		Long: `Submit a job binary built with the weir SDK (sdk.Main) to the cluster.

weir run first runs BINARY in describe mode to get its job graph: here, so
argument errors show up before anything is uploaded, or, when this machine
cannot run it (a linux/amd64 binary on a Mac), on a worker after the upload
(--describe). It uploads the binary (unless the cluster already has it),
submits the job and, unless
--detach is given, follows the job's state until it ends. The exit code is
0 when the job finished, 1 when it failed or was canceled. Ctrl-C stops
waiting but leaves the job running.

ARGS after "--" are passed to the job binary.`,
		Example: `  weir run -p 2 ./wordcount -- --input words.txt --output out/
  weir run --detach --name nightly ./wordcount -- --input /data --output /out`,
		Args: runArgs,
		RunE: markRan(func(cmd *cobra.Command, args []string) error {
			f.restart.changed = cmd.Flags().Changed
			return runJob(cmd.Context(), s, f, opts, args[0], args[1:], cmd.Flags().Changed("max-restarts"))
		}),
	}
	f.client.register(cmd, s)
	fl := cmd.Flags()
	fl.IntVarP(&f.parallelism, "parallelism", "p", 1, "default parallelism of the job's operators")
	fl.BoolVarP(&f.detach, "detach", "d", false, "print the job id and return once the job is submitted")
	fl.StringVar(&f.name, "name", "", "job name (default: the name the job gives itself, else the binary's name)")
	fl.IntVar(&f.maxRestarts, "max-restarts", 0, "restarts allowed after failures: in total (fixed-delay), since the last reset (exponential-delay), per --failure-rate-interval (failure-rate) (default 10, failure-rate 3)")
	f.restart.register(fl)
	fl.DurationVar(&f.interval, "checkpoint-interval", 10*time.Second, "time between checkpoints (0 disables them; a failed job then restarts from the beginning)")
	fl.DurationVar(&f.ckTimeout, "checkpoint-timeout", 0, "abort a checkpoint that takes longer (default 10m)")
	fl.DurationVar(&f.alignedTimeout, "aligned-timeout", 30*time.Second, "how long a checkpoint's barriers may wait for alignment before operators take it unaligned, storing the records in flight with it, so checkpoints complete under backpressure (0: unaligned from the start; negative: always aligned; savepoints are always aligned)")
	fl.IntVar(&f.ckFailLimit, "fail-on-checkpoint-errors", 0, "fail (and restart) the job when this many checkpoints in a row failed (0: never; failing checkpoints are always reported by run and status)")
	fl.StringVar(&f.savepoint, "from-savepoint", "", "start from this savepoint location (printed by 'weir savepoint'), at any -p")
	fl.StringVar(&f.platform, "platform", "", "OS/ARCH of the workers, or any to skip this check (default $"+platformEnv+", else the platform all registered workers report, else this machine's); for linux the binary must be a static ELF executable of that architecture")
	fl.StringVar(&f.describe, "describe", describeAuto, "where BINARY describes its job graph: local (here), remote (on a worker, after the upload) or auto (remote when this machine cannot run BINARY)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "a secret (weir secret set NAME) the job's processes may read with sdk.Secret; repeat for several")
	fl.Var(sizeValue{&f.memory}, "memory", "memory limit of each of the job's processes, e.g. 2GiB; a process over it fails with \"memory limit exceeded\" (enforced on workers with cgroup v2; 0: none)")
	fl.IntVar(&f.gogc, "gogc", 0, "GOGC of the job's processes (0: the workers' default, 400; -1: off)")
	fl.Var(sizeValue{&f.gomemlimit}, "gomemlimit", "GOMEMLIMIT of each of the job's processes, e.g. 1800MiB (0: 90% of --memory, none without it)")
	fl.BoolVar(&f.allowLost, "allow-non-restored-state", false, "with --from-savepoint: start even if the savepoint holds state no operator of the job restores (that state is dropped)")
	return cmd
}

// runArgs checks `weir run`'s positional arguments: one BINARY, then the
// job's arguments after "--".
func runArgs(cmd *cobra.Command, args []string) error {
	dash := cmd.ArgsLenAtDash()
	switch {
	case len(args) == 0 || dash == 0:
		return usageErrorf("weir run needs a job BINARY before \"--\" (see 'weir run --help')")
	case dash > 1:
		return usageErrorf("weir run takes one BINARY before \"--\", got %q; pass the job's arguments after \"--\"", args[:dash])
	}
	return nil
}

func runJob(ctx context.Context, s streams, f runFlags, opts runOptions, binary string, jobArgs []string, restartsSet bool) error {
	if f.parallelism < 1 {
		return usageErrorf("-p must be at least 1, got %d", f.parallelism)
	}
	if f.maxRestarts < 0 {
		return usageErrorf("--max-restarts must be at least 0, got %d", f.maxRestarts)
	}
	if f.ckFailLimit < 0 {
		return usageErrorf("--fail-on-checkpoint-errors must not be negative, got %d", f.ckFailLimit)
	}
	if f.ckTimeout < 0 {
		return usageErrorf("--checkpoint-timeout must not be negative, got %v", f.ckTimeout)
	}
	if f.interval < 0 {
		return usageErrorf("--checkpoint-interval must not be negative, got %v", f.interval)
	}
	restart, err := f.restart.policy(f.maxRestarts, restartsSet)
	if err != nil {
		return err
	}
	if f.describe != describeLocal && f.describe != describeRemote && f.describe != describeAuto {
		return usageErrorf("--describe must be local, remote or auto, got %q", f.describe)
	}
	abs, err := checkBinary(binary)
	if err != nil {
		return err
	}
	// A platform given is checked before anything runs; the cluster's is
	// learned once connected.
	platform := f.platform
	if platform == "" {
		platform = s.getenv(platformEnv)
	}
	if platform != "" {
		if err := checkPlatform(abs, binary, platform); err != nil {
			return err
		}
	}
	var graph *weirv1.JobGraph
	remote := f.describe == describeRemote
	if !remote {
		graph, err = describeHere(ctx, s, abs, binary, f, jobArgs, opts.describeTimeout)
		remote = f.describe == describeAuto && errors.Is(err, errForeign)
		if err != nil && !remote {
			return err
		}
	}

	warnRelativePaths(s.stderr, jobArgs)
	if _, names := redact.Args(jobArgs); names != nil {
		fmt.Fprintf(s.stderr, "warning: %s look like secrets: job arguments are shown as %s by weir status and the page, but anyone who can run ps on a worker reads them; keep secrets in weir secret set and pass --secret NAME\n",
			strings.Join(names, ", "), redact.Placeholder)
	}

	c, err := f.client.dial(s)
	if err != nil {
		return err
	}
	defer c.Close()
	if platform == "" {
		if platform, err = clusterPlatform(ctx, c); err != nil {
			return err
		}
		if err := checkPlatform(abs, binary, platform); err != nil {
			return err
		}
	}
	sum, size, err := filehash.SHA256(abs)
	if err != nil {
		return fmt.Errorf("cannot read %s: %v", binary, unwrapPathError(err))
	}
	st, err := unary(ctx, c, c.jobs.StatBinary, &weirv1.StatBinaryRequest{Sha256: sum})
	if err != nil {
		return err
	}
	if !st.GetExists() {
		fmt.Fprintf(s.stderr, "uploading %s (%s) to %s\n", binary, bytesIEC(size), c.addr)
		if err := upload(ctx, c, abs, binary, sum, size); err != nil {
			return err
		}
	}
	if remote {
		if graph, err = describeOnWorker(ctx, s, c, abs, binary, sum, f.parallelism, jobArgs, opts.describeTimeout); err != nil {
			return err
		}
	}

	spec := &weirv1.JobSpec{
		Name:         jobName(f.name, graph, binary),
		BinarySha256: sum,
		BinarySize:   size,
		Args:         jobArgs,
		Parallelism:  int32(f.parallelism),
		Graph:        graph,
		Checkpoints: &weirv1.CheckpointPolicy{IntervalMs: f.interval.Milliseconds(), TimeoutMs: f.ckTimeout.Milliseconds(),
			FailAfterFailures: int32(f.ckFailLimit), AlignedTimeoutMs: proto.Int64(alignedTimeoutMs(f.alignedTimeout))},
		FromSavepoint:         f.savepoint,
		AllowNonRestoredState: f.allowLost,
		MemoryLimitBytes:      f.memory,
		Gogc:                  int32(f.gogc),
		GomemlimitBytes:       f.gomemlimit,
		Secrets:               f.secrets,
	}
	spec.Restart = restart
	resp, err := unary(ctx, c, c.jobs.SubmitJob, &weirv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		return err
	}
	id := resp.GetJobId()
	if f.detach {
		_, err := fmt.Fprintln(s.stdout, id)
		return err
	}
	fmt.Fprintf(s.stderr, "submitted job %s\n", id)
	return waitJob(ctx, s, c, id, f.client.coordinator, opts.pollInterval)
}

// alignedTimeoutMs is --aligned-timeout for the spec: any negative value
// is -1 (always aligned).
func alignedTimeoutMs(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

// jobName is --name, else the name the graph gives itself, else the
// binary's file name.
func jobName(flag string, g *weirv1.JobGraph, binary string) string {
	switch {
	case flag != "":
		return flag
	case g.GetName() != "":
		return g.GetName()
	}
	return filepath.Base(binary)
}

// warnRelativePaths points out job arguments naming files by a path
// relative to this directory: the job runs in the workers' directories,
// where such a path means something else.
func warnRelativePaths(w io.Writer, args []string) {
	for _, a := range args {
		v := a
		if strings.HasPrefix(a, "-") {
			_, val, ok := strings.Cut(a, "=")
			if !ok {
				continue
			}
			v = val
		}
		if v == "" || v == "." || v == ".." || filepath.IsAbs(v) || strings.Contains(v, "://") {
			continue
		}
		if _, err := os.Stat(v); err != nil {
			continue
		}
		if abs, err := filepath.Abs(v); err == nil {
			fmt.Fprintf(w, "weir: note: %s is relative to this directory, but the job runs in the workers' directories; did you mean %s?\n", v, abs)
		}
	}
}

// upload streams the binary at path: a header, then chunks.
func upload(ctx context.Context, c *client, path, display, sum string, size int64) error {
	timeout := uploadTimeout(size)
	uctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(err error) error {
		if status.Code(err) == codes.DeadlineExceeded && ctx.Err() == nil {
			return fmt.Errorf("uploading %s to coordinator at %s did not finish within %v", display, c.addr, timeout)
		}
		return c.rpcError(ctx, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %v", display, unwrapPathError(err))
	}
	defer f.Close()

	stream, err := c.jobs.UploadBinary(uctx)
	if err != nil {
		return fail(err)
	}
	// A failed Send returns io.EOF; the reason comes from CloseAndRecv.
	sendErr := stream.Send(&weirv1.UploadBinaryRequest{Part: &weirv1.UploadBinaryRequest_Header{
		Header: &weirv1.BinaryHeader{Sha256: sum, Size: size},
	}})
	buf := make([]byte, uploadChunk)
	for sendErr == nil {
		n, rerr := io.ReadFull(f, buf)
		if n > 0 {
			sendErr = stream.Send(&weirv1.UploadBinaryRequest{Part: &weirv1.UploadBinaryRequest_Chunk{Chunk: buf[:n]}})
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("cannot read %s: %v", display, unwrapPathError(rerr))
		}
	}
	if sendErr != nil && !errors.Is(sendErr, io.EOF) {
		return fail(sendErr)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return fail(err)
	}
	if got := resp.GetSha256(); got != "" && got != sum {
		return fmt.Errorf("coordinator stored %s with sha256 %s, want %s (did the file change during the upload?)", display, got, sum)
	}
	return nil
}

// waitJob follows job id until it ends, printing its state changes on
// stderr. The result says how the job ended: nil for FINISHED.
func waitJob(ctx context.Context, s streams, c *client, id, coordinator string, every time.Duration) error {
	var (
		lastLine      string
		failingSince  time.Time
		warnedFailing bool
	)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		j, err := unaryRaw(ctx, c.jobs.GetJob, &weirv1.GetJobRequest{JobId: id})
		switch {
		case ctx.Err() != nil:
			return stopWaiting(s, id, coordinator)
		case err != nil:
			if status.Code(err) == codes.NotFound {
				return fmt.Errorf("job %s is no longer known to the coordinator at %s", id, c.addr)
			}
			code := status.Code(err)
			if code != codes.Unavailable && code != codes.DeadlineExceeded {
				return c.rpcError(ctx, err)
			}
			// The coordinator may be restarting or changing leaders: the
			// job is not lost, keep asking for a while.
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			if time.Since(failingSince) > waitGrace {
				return fmt.Errorf("%v; the job may still be running (weir status %s)", c.rpcError(ctx, err), id)
			}
			if !warnedFailing {
				fmt.Fprintf(s.stderr, "weir: %s; retrying\n", oneLine(c.rpcError(ctx, err).Error()))
				warnedFailing = true
			}
		default:
			failingSince, warnedFailing = time.Time{}, false
			if l := stateLine(j); l != lastLine {
				fmt.Fprintln(s.stderr, l)
				lastLine = l
			}
			if terminal(j.GetState()) {
				return jobResult(j)
			}
		}
		select {
		case <-ctx.Done():
			return stopWaiting(s, id, coordinator)
		case <-tick.C:
		}
	}
}

// stateLine is how waitJob reports a job's state, e.g. "job ID: RUNNING".
func stateLine(j *weirv1.JobStatus) string {
	l := fmt.Sprintf("job %s: %s", j.GetId(), jobState(j.GetState()))
	var detail string
	switch {
	case j.GetState() == weirv1.JobState_JOB_STATE_RESTARTING && j.GetError() != "":
		detail = fmt.Sprintf("restart %d after: %s", j.GetRestarts(), oneLine(j.GetError()))
	case j.GetMessage() != "":
		detail = oneLine(j.GetMessage())
	}
	if j.GetAttempt() > 1 && !terminal(j.GetState()) {
		if detail != "" {
			detail = "; " + detail
		}
		detail = fmt.Sprintf("attempt %d%s", j.GetAttempt(), detail)
	}
	if detail != "" {
		l += " (" + detail + ")"
	}
	for _, w := range []string{j.GetCheckpointWarning(), j.GetLimitWarning()} {
		if w != "" {
			l += "; warning: " + oneLine(w)
		}
	}
	return l
}

// jobResult turns a terminal job into the command's result.
func jobResult(j *weirv1.JobStatus) error {
	reason := oneLine(j.GetError())
	switch j.GetState() {
	case weirv1.JobState_JOB_STATE_FINISHED:
		return nil
	case weirv1.JobState_JOB_STATE_CANCELED:
		if reason != "" {
			return fmt.Errorf("job %s was canceled: %s", j.GetId(), reason)
		}
		return fmt.Errorf("job %s was canceled", j.GetId())
	}
	if reason == "" {
		reason = "no reason given"
	}
	if n := j.GetRestarts(); n > 0 {
		return fmt.Errorf("job %s failed after %d restart(s): %s", j.GetId(), n, reason)
	}
	return fmt.Errorf("job %s failed: %s", j.GetId(), reason)
}

// stopWaiting answers Ctrl-C while waiting: the job keeps running, and the
// user is told how to cancel it.
func stopWaiting(s streams, id, coordinator string) error {
	hint := "weir cancel " + id
	if coordinator != defaultCoordinator && coordinator != s.getenv(coordinatorEnv) {
		hint = fmt.Sprintf("weir cancel --coordinator %s %s", coordinator, id)
	}
	fmt.Fprintf(s.stderr, "\nweir: stopped waiting; job %s keeps running (stop it with: %s)\n", id, hint)
	return &exitError{code: exitInterrupted}
}
