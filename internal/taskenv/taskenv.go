// Package taskenv owns the contract between a worker and the job processes
// it starts: the command line and environment of task mode, and the header
// describe mode prints. Both sides import it, so neither can drift.
package taskenv

import (
	"fmt"
	"os"
	"strconv"
)

// Environment variables a worker sets for a job process in task mode.
const (
	WorkerAddr = "WEIR_TASK_ADDR"  // the worker's TaskService address
	Token      = "WEIR_TASK_TOKEN" // proves the process is the one the worker started
	JobID      = "WEIR_JOB_ID"
	Attempt    = "WEIR_ATTEMPT"
	DataHost   = "WEIR_DATA_HOST" // host the process binds its DataService to
	// ChannelSecret is the attempt's data-channel secret (see
	// exchange.Options). FromEnv removes it from the environment, so that
	// programs the job starts do not inherit it.
	ChannelSecret = "WEIR_CHANNEL_SECRET"
	// DataTLS is "1" when the data plane runs TLS (DeployProcess.data_tls):
	// the process serves DataService with a fresh identity of its own and
	// dials peers pinning theirs (see exchange.Identity).
	DataTLS = "WEIR_DATA_TLS"
	// LogFormat is "json" when the worker logs JSON, so the job process's
	// logs (carrying job, attempt, vertex and subtask) match its own.
	LogFormat = "WEIR_LOG_FORMAT"
	// CPUProfileDir, when set in a job process's environment (a worker
	// passes its own on), makes the process write a CPU profile there,
	// named after the job and its pid: how to see where a job's time goes
	// on a cluster (the bench harness's --pprof).
	CPUProfileDir = "WEIR_CPUPROFILE_DIR"
)

// DescribeHeader is the first line describe mode prints, before the job
// graph as one line of protobuf JSON. A binary that does not print it is not
// a weir job.
const DescribeHeader = "weir-jobgraph/v1"

// Args builds the command line of a job binary in the given mode.
func Args(mode string, parallelism int, userArgs []string) []string {
	return append([]string{"--mode=" + mode, "--parallelism=" + strconv.Itoa(parallelism), "--"}, userArgs...)
}

// Task is what a job process in task mode learns from its environment.
type Task struct {
	WorkerAddr, Token, JobID, DataHost string
	Attempt                            int64
	LogFormat                          string // "text" or "json"
	ChannelSecret                      string
	DataTLS                            bool
}

// FromEnv reads the task environment.
func FromEnv() (Task, error) {
	t := Task{
		WorkerAddr: os.Getenv(WorkerAddr), Token: os.Getenv(Token),
		JobID: os.Getenv(JobID), DataHost: os.Getenv(DataHost),
		ChannelSecret: os.Getenv(ChannelSecret),
		DataTLS:       os.Getenv(DataTLS) == "1",
	}
	os.Unsetenv(ChannelSecret)
	if t.WorkerAddr == "" || t.JobID == "" {
		return t, fmt.Errorf("task mode is started by a weir worker: %s and %s are not set", WorkerAddr, JobID)
	}
	a, err := strconv.ParseInt(os.Getenv(Attempt), 10, 64)
	if err != nil {
		return t, fmt.Errorf("%s: %w", Attempt, err)
	}
	t.Attempt = a
	if t.DataHost == "" {
		t.DataHost = "127.0.0.1"
	}
	return t, nil
}

// Env returns the environment entries for t.
func (t Task) Env() []string {
	return []string{
		WorkerAddr + "=" + t.WorkerAddr, Token + "=" + t.Token, JobID + "=" + t.JobID,
		Attempt + "=" + strconv.FormatInt(t.Attempt, 10), DataHost + "=" + t.DataHost,
		LogFormat + "=" + t.LogFormat, ChannelSecret + "=" + t.ChannelSecret,
		DataTLS + "=" + map[bool]string{true: "1", false: "0"}[t.DataTLS],
	}
}
