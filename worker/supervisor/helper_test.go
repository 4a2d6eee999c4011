package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary doubles as the job binary: run with helperEnv set, it
// acts out the behaviour named by the variable instead of running tests.
const helperEnv = "WEIR_SUPERVISOR_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode, os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// helperLifetime bounds every helper, so a test that fails to stop one
// leaves nothing running for long.
const helperLifetime = 30 * time.Second

func helperMain(mode string, args []string) int {
	switch mode {
	case "exit": // exit CODE STDERR_LINES: write lines, then exit with CODE
		code, _ := strconv.Atoi(args[0])
		lines, _ := strconv.Atoi(args[1])
		fmt.Println("out 0")
		for i := range lines {
			fmt.Fprintf(os.Stderr, "line %d\n", i)
		}
		fmt.Fprint(os.Stderr, "no newline at the end")
		return code
	case "env": // print the environment, one variable a line
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
		return 0
	case "sleep": // report ready, then sleep; SIGTERM kills
		fmt.Println("ready")
		time.Sleep(helperLifetime)
		return 0
	case "ignore-term": // ignore SIGTERM, report ready, then sleep
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(helperLifetime)
		return 0
	case "spawn": // spawn THEN: start an ignore-term grandchild in our group
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), helperEnv+"=ignore-term")
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("child %d\n", child.Process.Pid)
		if args[0] == "exit" {
			return 0 // orphan the grandchild
		}
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(helperLifetime)
		return 0
	case "supervise": // start a sleeper with Start, so its parent-death signal can be tested
		p, err := Start(Spec{Path: os.Args[0], Env: []string{helperEnv + "=sleep"}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("child %d\n", p.Pid())
		time.Sleep(helperLifetime)
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

// helperSpec runs the test binary in the given helper mode.
func helperSpec(t *testing.T, logs *logSink, mode string, args ...string) Spec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Spec{
		Path:   exe,
		Args:   args,
		Env:    []string{helperEnv + "=" + mode},
		Logger: logs.logger().With("job", "j1", "attempt", 3),
	}
}
