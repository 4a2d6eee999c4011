// Command profsum sums CPU profiles by component: each sample goes to the
// innermost frame of its stack that belongs to a component of weir (keyed
// state, timers, window operators, the exchange and the subtask loop, the
// Nexmark generator, the query's own functions) or to the Go runtime's
// collector and allocator, so that the shares add up to the whole and two
// profiles of one query compare at a glance.
//
//	profsum [--events N] NAME=DIR ...
//
// Each DIR is searched for *.pprof files (weirbench --pprof writes one per
// job process); all of a DIR's profiles are summed into one row named NAME.
// With --events, each cell is CPU per million events; otherwise CPU time.
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/pprof/profile"
)

// components in the order a frame is matched against them: the first whose
// pattern matches the frame's function names the sample's component. The
// loop's frames and system calls are generic (a Pebble write and a channel
// send both end in a syscall under the subtask loop): loopFrames names a
// sample only when no frame of its stack has a component here.
var components = []struct {
	name string
	re   *regexp.Regexp
}{
	{"GC", regexp.MustCompile(`gcBgMarkWorker|bgsweep|bgscavenge|gcAssist`)},
	{"allocation", regexp.MustCompile(`^runtime\.(mallocgc|newobject|makeslice|growslice)`)},
	{"keyed state", regexp.MustCompile(`heapState|ValueState|MapState|ListState|pebblestate|StateStore|scopeTo|stateHandle`)},
	{"timers", regexp.MustCompile(`timerService|timerQueue|timerBucket|Timers\.|timerRun`)},
	{"windows", regexp.MustCompile(`winOp|openWindow|combiner|WindowAssigner|sdk\.partial`)},
	{"generator", regexp.MustCompile(`nexmark\.\(\*Generator\)|nexmark\.(nextPrice|mix64|pow10|appendNext|\(\*rng\))`)},
	{"query", regexp.MustCompile(`^main\.`)},
	{exchangeLoop, regexp.MustCompile(`internal/exchange|chanWriter|typedOutput|records\[|\.decoder|grpc|protobuf|uvarintframe`)},
	{"pebble", regexp.MustCompile(`cockroachdb/pebble`)},
}

const exchangeLoop = "exchange, loop"

var loopFrames = regexp.MustCompile(`Syscall|markCursor|valveStatus|runGate|runSource`)

const other = "other"

func main() {
	events := flag.Int64("events", 0, "events per run: cells are CPU ms per million events (0: CPU ms)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: profsum [--events N] NAME=DIR ...")
		os.Exit(2)
	}
	names := make([]string, 0, len(components)+1)
	for _, c := range components {
		names = append(names, c.name)
	}
	names = append(names, other)
	fmt.Printf("| profile | CPU ms | %s |\n|---|---|%s\n", strings.Join(names, " | "), strings.Repeat("---|", len(names)))
	for _, arg := range flag.Args() {
		name, dir, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "error: %q is not NAME=DIR\n", arg)
			os.Exit(2)
		}
		by, total, err := sumDir(dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
			os.Exit(1)
		}
		scale := 1.0
		if *events > 0 {
			scale = 1e6 / float64(*events)
		}
		cells := make([]string, len(names))
		for i, n := range names {
			cells[i] = fmt.Sprintf("%.0f (%.0f%%)", by[n]*scale, 100*by[n]/max(total, 1))
		}
		fmt.Printf("| %s | %.0f | %s |\n", name, total*scale, strings.Join(cells, " | "))
	}
}

// sumDir sums the CPU (ms) of every profile under dir by component.
func sumDir(dir string) (map[string]float64, float64, error) {
	by := map[string]float64{}
	var total float64
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pprof") {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		p, err := profile.Parse(f)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		cpu := -1
		for i, st := range p.SampleType {
			if st.Type == "cpu" {
				cpu = i
			}
		}
		if cpu < 0 {
			return fmt.Errorf("%s: not a CPU profile", path)
		}
		for _, s := range p.Sample {
			ms := float64(s.Value[cpu]) / 1e6
			by[component(s)] += ms
			total += ms
		}
		n++
		return nil
	})
	if err == nil && n == 0 {
		err = fmt.Errorf("%s: no .pprof files", dir)
	}
	return by, total, err
}

// component is the component of s's innermost frame that has one, else
// the exchange and loop if a frame is the loop's or a system call.
func component(s *profile.Sample) string {
	loop := false
	for _, loc := range s.Location { // innermost first
		for _, line := range loc.Line { // inlined frames: innermost first too
			fn := line.Function
			if fn == nil {
				continue
			}
			for _, c := range components {
				if c.re.MatchString(fn.Name) {
					return c.name
				}
			}
			loop = loop || loopFrames.MatchString(fn.Name)
		}
	}
	if loop {
		return exchangeLoop
	}
	return other
}
