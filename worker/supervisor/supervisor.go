package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	// ErrNotFound is returned (wrapped) by Start when the executable does
	// not exist.
	ErrNotFound = errors.New("supervisor: executable not found")
	// ErrNotExecutable is returned (wrapped) by Start when the file exists
	// but may not be executed (no execute permission, a directory, a noexec
	// mount).
	ErrNotExecutable = errors.New("supervisor: not executable")
	// ErrExecFormat is returned (wrapped) by Start when the kernel does not
	// recognise the file as a program for this platform, for example a job
	// binary built for another GOOS/GOARCH, or one whose ELF interpreter or
	// #! interpreter is missing.
	ErrExecFormat = errors.New("supervisor: not a program for this platform")
	// ErrUnsupported is returned by Start on platforms without process
	// groups; workers run on unix.
	ErrUnsupported = errors.New("supervisor: job processes are only supported on unix")
)

// DefaultTailLines is how many stderr lines a Result keeps when
// Spec.TailLines is not set.
const DefaultTailLines = 20

const (
	// ioDrainDelay bounds how long output is still read after the job
	// process has exited. Output pipes stay open while any process holds
	// them, and one that left the job's process group could hold them
	// forever.
	ioDrainDelay = 2 * time.Second
	// maxLogLine caps one log record; a longer line is split.
	maxLogLine = 64 << 10
	// maxTailLine caps one line of StderrTail, which travels in status
	// reports.
	maxTailLine = 2 << 10
)

// Spec says what to run and where its output goes.
type Spec struct {
	// Path is the executable, normally a sealed copy from the binary cache
	// (/proc/self/fd/N). A name without a slash is looked up in PATH.
	Path string
	// Name is the process's argv[0]; empty means Path.
	Name string
	Args []string
	// Env is the process's whole environment: nothing of the worker's own
	// is inherited.
	Env []string
	// Dir is the working directory; empty means the worker's.
	Dir string
	// Logger receives each line the job writes to stdout or stderr as one
	// Info record whose message is the line, with a "stream" attr; attrs
	// already on the logger (job, attempt) identify the job. Nil discards.
	Logger *slog.Logger
	// Cgroup, when set, is a cgroup v2 directory, open, that the process
	// starts in (Linux: CLONE_INTO_CGROUP, so nothing of it runs outside).
	Cgroup *os.File
	// TailLines is how many of the last stderr lines Result keeps for
	// failure reports; zero or less means DefaultTailLines.
	TailLines int
}

// Result says how a job process ended.
type Result struct {
	// ExitCode is the exit status, or -1 if the process was killed by a
	// signal.
	ExitCode int
	// Signal names the signal that killed the process ("SIGKILL"), or is
	// empty.
	Signal string
	// Err is nil only for exit status 0. Otherwise it is a one-line
	// description such as "exit status 2" or "killed by signal 9 (SIGKILL)".
	Err error
	// StderrTail is the last TailLines lines the process wrote to stderr,
	// joined by newlines.
	StderrTail string
}

// Process is a running (or finished) job process. Its methods are safe for
// concurrent use.
type Process struct {
	cmd    *exec.Cmd
	pid    int
	stdout *lineLogger
	stderr *lineLogger
	done   chan struct{}
	result Result // written before done is closed

	mu struct {
		sync.Mutex
		// reaped is set once the process may have been reaped. After that its
		// pid, which is also its process group id, can be reused by an
		// unrelated process, so the group must not be signalled again.
		reaped bool
	}
}

// Start starts the job process described by spec and begins watching it.
// Errors wrap ErrNotFound, ErrNotExecutable or ErrExecFormat where those
// apply.
//
// On Linux the child gets a parent-death signal (SIGKILL). The kernel sends
// it when the thread that started the child exits, not the process; Go only
// ends threads when a goroutine exits while locked to its thread, so Start
// must not be called from a goroutine that used runtime.LockOSThread.
func Start(spec Spec) (*Process, error) {
	if !supported {
		return nil, ErrUnsupported
	}
	if spec.Path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrNotFound)
	}
	if spec.Dir != "" {
		// Checked here because a failed chdir in the child is reported with
		// the same errno as a missing executable.
		if fi, err := os.Stat(spec.Dir); err != nil {
			return nil, fmt.Errorf("supervisor: working directory: %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("supervisor: working directory %s is not a directory", spec.Dir)
		}
	}
	logger := spec.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tail := spec.TailLines
	if tail <= 0 {
		tail = DefaultTailLines
	}
	p := &Process{
		stdout: newLineLogger(logger, "stdout", 0),
		stderr: newLineLogger(logger, "stderr", tail),
		done:   make(chan struct{}),
	}

	for attempt := 0; ; attempt++ {
		cmd := exec.Command(spec.Path, spec.Args...)
		if spec.Name != "" {
			cmd.Args[0] = spec.Name
		}
		// Never nil: a nil Env would inherit the worker's.
		cmd.Env = append([]string{}, spec.Env...)
		cmd.Dir = spec.Dir
		cmd.Stdout = p.stdout
		cmd.Stderr = p.stderr
		cmd.SysProcAttr = sysProcAttr()
		if spec.Cgroup != nil {
			if err := intoCgroup(cmd.SysProcAttr, spec.Cgroup); err != nil {
				return nil, err
			}
		}
		cmd.WaitDelay = ioDrainDelay
		err := cmd.Start()
		if err == nil {
			p.cmd = cmd
			break
		}
		// Exec of a file that another forked-but-not-yet-exec'd child still
		// holds open for writing fails with ETXTBSY (golang/go#22315); the
		// window closes within microseconds, so retry briefly.
		if isTextBusy(err) && attempt < 5 {
			time.Sleep(time.Duration(5<<attempt) * time.Millisecond)
			continue
		}
		return nil, classifyStartError(spec.Path, err)
	}
	p.pid = p.cmd.Process.Pid
	go p.wait()
	return p, nil
}

func classifyStartError(path string, err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("%w: %s: not in PATH", ErrNotFound, path)
		}
		return fmt.Errorf("supervisor: start %s: %w", path, err)
	}
	switch {
	case errors.Is(errno, fs.ErrNotExist):
		if _, serr := os.Stat(path); serr == nil && strings.ContainsRune(path, filepath.Separator) {
			// The file is there, so what is missing is the program that
			// would run it: the ELF interpreter (a dynamically linked binary
			// for another libc) or the #! interpreter.
			return fmt.Errorf("%w: %s: its interpreter or dynamic loader is missing: %w", ErrExecFormat, path, errno)
		}
		return fmt.Errorf("%w: %s: %w", ErrNotFound, path, errno)
	case errors.Is(errno, fs.ErrPermission):
		return fmt.Errorf("%w: %s: %w", ErrNotExecutable, path, errno)
	case isExecFormat(errno):
		return fmt.Errorf("%w: %s (want a %s/%s executable): %w", ErrExecFormat, path, runtime.GOOS, runtime.GOARCH, errno)
	}
	return fmt.Errorf("supervisor: start %s: %w", path, err)
}

// wait runs from Start until the process has exited and been reaped.
func (p *Process) wait() {
	// Where the platform allows, wait for the exit without reaping: while
	// the job process is an unreaped zombie its pid, and so its process
	// group id, cannot be reused, so killing the group cannot hit an
	// unrelated process. Anything still in the group is an orphan of the
	// job and would otherwise keep running unsupervised.
	if waitExitedNoReap(p.pid) {
		p.mu.Lock()
		_ = signalGroup(p.pid, syscall.SIGKILL) // ESRCH only: the group may be empty
		p.mu.reaped = true
		p.mu.Unlock()
	}
	waitErr := p.cmd.Wait()
	p.mu.Lock()
	p.mu.reaped = true
	p.mu.Unlock()

	p.stdout.flush()
	p.stderr.flush()
	p.result = resultOf(p.cmd.ProcessState, waitErr, p.stderr.tailString())
	close(p.done)
}

func resultOf(ps *os.ProcessState, waitErr error, tail string) Result {
	r := Result{StderrTail: tail}
	if ps == nil {
		r.ExitCode = -1
		r.Err = fmt.Errorf("supervisor: wait: %w", waitErr)
		return r
	}
	r.ExitCode = ps.ExitCode()
	if num, name, ok := exitSignal(ps); ok {
		r.Signal = name
		r.Err = fmt.Errorf("killed by signal %d (%s)", num, name)
		return r
	}
	// A job that exited 0 succeeded even if Wait also reports
	// exec.ErrWaitDelay (output still held open by an escaped process).
	if r.ExitCode != 0 {
		r.Err = fmt.Errorf("exit status %d", r.ExitCode)
	}
	return r
}

// Pid is the job process's pid, which is also its process group id.
func (p *Process) Pid() int { return p.pid }

// Done is closed once the process has exited, been reaped, and its output
// has been drained.
func (p *Process) Done() <-chan struct{} { return p.done }

// Result says how the process ended. It is only valid after Done is
// closed; before that it returns the zero Result.
func (p *Process) Result() Result {
	select {
	case <-p.done:
		return p.result
	default:
		return Result{}
	}
}

// Stop asks the job to terminate by sending SIGTERM to its process group,
// and sends SIGKILL to the group if it has not exited after grace (at once
// if grace <= 0). It returns once the process has exited. It is safe to
// call concurrently, repeatedly and after the process has exited.
func (p *Process) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	if grace > 0 {
		p.signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.done:
			return
		case <-t.C:
		}
	}
	p.signal(syscall.SIGKILL)
	<-p.done
}

func (p *Process) signal(sig syscall.Signal) {
	// The kill is a cheap syscall, and holding the lock across it is what
	// keeps it from racing with the reap (see Process.mu.reaped).
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.reaped {
		return
	}
	// ESRCH means the group is already gone; Done will follow.
	_ = signalGroup(p.pid, sig)
}

// lineLogger is the job's stdout or stderr: it splits the byte stream into
// lines, logs each, and keeps the last few for failure reports.
type lineLogger struct {
	logger *slog.Logger
	stream slog.Attr

	mu struct {
		sync.Mutex
		partial []byte
		tail    []string // ring of the last len(tail) lines
		next    int      // index in tail of the next line to write
		count   int      // lines written to tail, up to len(tail)
	}
}

func newLineLogger(logger *slog.Logger, stream string, tailLines int) *lineLogger {
	l := &lineLogger{logger: logger, stream: slog.String("stream", stream)}
	l.mu.tail = make([]string, tailLines)
	return l
}

// Write is called by os/exec's copying goroutine, and never fails: losing
// the job's output must not make the job fail.
func (l *lineLogger) Write(b []byte) (int, error) {
	n := len(b)
	var lines []string
	l.mu.Lock()
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		end := i
		if i < 0 {
			end = len(b)
		}
		// Split overlong lines so that one record, and the buffer, stay
		// bounded whatever the job writes.
		if room := maxLogLine - len(l.mu.partial); end > room {
			l.mu.partial = append(l.mu.partial, b[:room]...)
			lines = append(lines, l.takePartialLocked())
			b = b[room:]
			continue
		}
		l.mu.partial = append(l.mu.partial, b[:end]...)
		if i < 0 {
			break
		}
		lines = append(lines, l.takePartialLocked())
		b = b[i+1:]
	}
	l.mu.Unlock()
	l.log(lines)
	return n, nil
}

// flush logs a final line that had no newline. It is called after the
// process's output has been drained.
func (l *lineLogger) flush() {
	var lines []string
	l.mu.Lock()
	if len(l.mu.partial) > 0 {
		lines = append(lines, l.takePartialLocked())
	}
	l.mu.Unlock()
	l.log(lines)
}

func (l *lineLogger) takePartialLocked() string {
	line := strings.TrimSuffix(string(l.mu.partial), "\r")
	l.mu.partial = l.mu.partial[:0]
	if len(l.mu.tail) > 0 {
		t := line
		if len(t) > maxTailLine {
			t = t[:maxTailLine] + "…"
		}
		l.mu.tail[l.mu.next] = t
		l.mu.next = (l.mu.next + 1) % len(l.mu.tail)
		l.mu.count = min(l.mu.count+1, len(l.mu.tail))
	}
	return line
}

// log emits outside the lock: handlers do I/O.
func (l *lineLogger) log(lines []string) {
	for _, line := range lines {
		if lv, msg, attrs, ok := parseJSONLine(line); ok {
			l.logger.LogAttrs(context.Background(), lv, msg, append(attrs, l.stream)...)
			continue
		}
		l.logger.LogAttrs(context.Background(), slog.LevelInfo, line, l.stream)
	}
}

func (l *lineLogger) tailString() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.mu.tail)
	out := make([]string, 0, l.mu.count)
	for i := range l.mu.count {
		out = append(out, l.mu.tail[(l.mu.next-l.mu.count+i+n)%n])
	}
	return strings.Join(out, "\n")
}
