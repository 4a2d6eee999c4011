// Command chaos runs a fault-injection campaign against a real
// multi-process weir cluster on this machine (bench/chaos) and prints the
// fault log, recovery times per fault kind and the verdict; it exits 1 on
// FAIL.
//
//	go run ./bench/cmd/chaos --seed 1 --faults 32 --duration 5m
//	go run ./bench/cmd/chaos --soak 1h --load 0.5 --soak-out /tmp/soak
//
// It builds weir and the jobs from this module and needs versitygw
// (`go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/weir-run/weir/bench/chaos"
	"github.com/weir-run/weir/internal/s3test"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()%1_000_000), "schedule seed (printed; rerun with it to draw the same faults)")
	faults := fs.Int("faults", 2*len(chaos.Kinds), "number of faults")
	duration := fs.Duration("duration", 4*time.Minute, "time the faults are spread over")
	kinds := fs.String("kinds", "", "comma-separated fault kinds (default: all)")
	dir := fs.String("dir", "", "working directory (default: a new temporary one, removed on PASS)")
	maxRSS := fs.Int64("max-rss-mib", 1024, "RSS bound of every daemon, MiB")
	jsonOut := fs.String("json", "", "also write the report as JSON to this file")
	soak := fs.Duration("soak", 0, "instead of a campaign, run the jobs this long without faults, sampling every daemon each --sample")
	load := fs.Float64("load", 0.5, "soak: the share of the machine's CPU the cluster is steered to use")
	sample := fs.Duration("sample", time.Minute, "soak: time between samples of every daemon's RSS, threads and goroutines")
	window := fs.Duration("window", 30*time.Minute, "soak: the trailing span the RSS and goroutine slopes are fitted over")
	soakOut := fs.String("soak-out", "", "soak: write PREFIX.csv (samples), PREFIX-rates.csv (throughput) and PREFIX.svg (plot)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := chaos.Options{Seed: *seed, Faults: *faults, Duration: *duration, MaxRSS: *maxRSS << 20, Log: os.Stderr}
	if *kinds != "" {
		ks, err := chaos.ParseKinds(*kinds)
		if err != nil {
			return err
		}
		o.Kinds = ks
	}
	keep := *dir != ""
	if !keep {
		d, err := os.MkdirTemp("", "weir-chaos-")
		if err != nil {
			return err
		}
		*dir = d
	}
	o.Dir = filepath.Join(*dir, "cluster")
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "building weir and the jobs from %s\n", root)
	if o.Bins, err = chaos.Build(root, *dir); err != nil {
		return err
	}
	if o.Bins.Versitygw, err = s3test.FindVersitygw(); err != nil {
		return err
	}
	if *soak > 0 {
		return runSoak(chaos.SoakOptions{Duration: *soak, Load: *load, Sample: *sample, Window: *window, Seed: *seed,
			Dir: o.Dir, Bins: o.Bins, Log: os.Stderr}, *soakOut, *jsonOut)
	}
	r, err := chaos.Run(o)
	if err != nil {
		return fmt.Errorf("%w (logs under %s)", err, o.Dir)
	}
	r.Print(os.Stdout)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	if !r.Pass() {
		return fmt.Errorf("verdict FAIL (logs under %s)", o.Dir)
	}
	if !keep {
		os.RemoveAll(*dir)
	}
	return nil
}

func runSoak(o chaos.SoakOptions, prefix, jsonOut string) error {
	r, err := chaos.Soak(o)
	if err != nil {
		return fmt.Errorf("%w (logs under %s)", err, o.Dir)
	}
	r.Print(os.Stdout)
	if prefix != "" {
		if err := r.WriteCSV(prefix+".csv", prefix+"-rates.csv"); err != nil {
			return err
		}
		if err := os.WriteFile(prefix+".svg", []byte(r.SVG()), 0o644); err != nil {
			return err
		}
	}
	if jsonOut != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	if len(r.Problems) > 0 {
		return fmt.Errorf("soak FAIL (logs under %s)", o.Dir)
	}
	return nil
}

// moduleRoot is the directory of this module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run chaos from within the weir module")
	}
	return filepath.Dir(gomod), nil
}
