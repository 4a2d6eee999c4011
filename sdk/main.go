package sdk

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"syscall"

	"github.com/weir-run/weir/internal/taskenv"
	"google.golang.org/protobuf/encoding/protojson"
)

// BuildFunc builds the job's pipeline from the arguments after "--".
type BuildFunc func(p *Pipeline, args []string) error

// Main is the main function of a job binary. Its command line is
//
//	JOB [--mode=local|describe|task] [--parallelism=N] [--max-parallelism=N] -- JOB-ARGS...
//
// local (the default) runs the whole job in this process; describe prints
// the job graph for `weir run`; task is how a worker starts it. Without "--"
// every argument is a job argument.
func Main(build BuildFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, build, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type mainFlags struct {
	mode           string
	parallelism    int
	maxParallelism int
}

func parseArgs(argv []string, stderr io.Writer) (mainFlags, []string, error) {
	f := mainFlags{mode: "local", parallelism: 1}
	name := filepath.Base(argv[0])
	own, user := []string(nil), argv[1:]
	if i := slices.Index(argv[1:], "--"); i >= 0 {
		own, user = argv[1:i+1], argv[i+2:]
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.mode, "mode", f.mode, "local, describe or task")
	fs.IntVar(&f.parallelism, "parallelism", f.parallelism, "default operator parallelism")
	fs.IntVar(&f.parallelism, "p", f.parallelism, "shorthand for --parallelism")
	fs.IntVar(&f.maxParallelism, "max-parallelism", 0, "number of key groups (default from parallelism)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s [--mode=local|describe|task] [-p N] -- JOB-ARGS...\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(own); err != nil {
		return f, nil, err
	}
	if fs.NArg() > 0 {
		return f, nil, fmt.Errorf("unexpected argument %q before \"--\"", fs.Arg(0))
	}
	if f.parallelism < 1 {
		return f, nil, fmt.Errorf("parallelism %d is below 1", f.parallelism)
	}
	return f, user, nil
}

func run(ctx context.Context, argv []string, build BuildFunc, stdout, stderr io.Writer) int {
	logger := newLogger(stderr, os.Getenv(taskenv.LogFormat))
	f, user, err := parseArgs(argv, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "error:", err)
		}
		return 2
	}
	p := NewPipeline(filepath.Base(argv[0]), f.parallelism)
	if f.maxParallelism > 0 {
		p.SetMaxParallelism(f.maxParallelism)
	}
	if err := build(p, user); err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 2
	}
	g, err := p.compile()
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 2
	}
	if f.mode != "describe" {
		stopProfile, err := startCPUProfile(os.Getenv(taskenv.CPUProfileDir), p.name)
		if err != nil {
			fmt.Fprintln(stderr, "error:", err)
			return 1
		}
		defer stopProfile()
	}
	switch f.mode {
	case "describe":
		b, err := protojson.Marshal(g.JobGraph())
		if err != nil {
			fmt.Fprintln(stderr, "error:", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n%s\n", taskenv.DescribeHeader, b)
		return 0
	case "local":
		if err := g.RunLocal(ctx, logger, nil); err != nil {
			fmt.Fprintln(stderr, "error: job failed:", err)
			return 1
		}
		return 0
	case "task":
		if err := g.RunTask(ctx, logger); err != nil {
			fmt.Fprintln(stderr, "error:", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "error: unknown mode %q (want local, describe or task)\n", f.mode)
		return 2
	}
}

// startCPUProfile writes this process's CPU profile to dir (if not empty)
// until the returned function is called.
func startCPUProfile(dir, job string) (stop func(), err error) {
	if dir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", job, os.Getpid())))
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// RunLocal runs p to the end in this process, as Main's local mode does,
// without checkpoints: for tests, examples and small bounded jobs.
func RunLocal(ctx context.Context, p *Pipeline) error {
	g, err := p.compile()
	if err != nil {
		return err
	}
	return g.RunLocal(ctx, slog.Default(), nil)
}

// newLogger logs text, or JSON when the worker that started the process
// logs JSON (taskenv.LogFormat).
func newLogger(w io.Writer, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
