package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

const (
	formatTable = "table"
	formatJSON  = "json"
)

// outputFlag is -o on listing and status commands.
type outputFlag struct{ format string }

func (o *outputFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", formatTable, "output format: table or json")
}

func (o *outputFlag) validate() error {
	switch o.format {
	case formatTable, formatJSON:
		return nil
	}
	return usageErrorf("-o must be table or json, got %q", o.format)
}

// jobState is the short name of a job state, e.g. "RUNNING".
func jobState(s weirv1.JobState) string {
	return strings.TrimPrefix(s.String(), "JOB_STATE_")
}

// taskState is the short name of a task state, e.g. "DEPLOYING".
func taskState(s weirv1.TaskState) string {
	return strings.TrimPrefix(s.String(), "TASK_STATE_")
}

// terminal reports whether a job in state s will not change any more.
func terminal(s weirv1.JobState) bool {
	switch s {
	case weirv1.JobState_JOB_STATE_FINISHED, weirv1.JobState_JOB_STATE_FAILED, weirv1.JobState_JOB_STATE_CANCELED:
		return true
	}
	return false
}

// rfc3339 formats a Unix millisecond timestamp; 0 (unknown) is "".
func rfc3339(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// localTime formats a Unix millisecond timestamp for a table.
func localTime(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).Local().Format("2006-01-02 15:04:05")
}

// ago formats how long before now ms was, e.g. "1.2s ago".
func ago(ms int64, now time.Time) string {
	if ms == 0 {
		return "never"
	}
	d := now.Sub(time.UnixMilli(ms))
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		d = d.Round(100 * time.Millisecond)
	case d < time.Hour:
		d = d.Round(time.Second)
	default:
		d = d.Round(time.Minute)
	}
	return d.String() + " ago"
}

// bytesIEC formats a byte count, e.g. "12.3 MiB".
func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// cell makes a value fit a table cell: one line, at most max runes.
func cell(s string, max int) string {
	s = oneLine(s)
	if s == "" {
		return "-"
	}
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// jobView is a job in `weir list -o json` and `weir status -o json`.
type jobView struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	State    string `json:"state"`
	Attempt  int64  `json:"attempt"`
	Restarts int32  `json:"restarts"`
	Error    string `json:"error"`
	Message  string `json:"message"`
	// CheckpointWarning is set while the job's checkpoints keep failing.
	CheckpointWarning string `json:"checkpoint_warning,omitempty"`
	// LimitWarning is set while the job's memory limit is not enforced.
	LimitWarning string `json:"limit_warning,omitempty"`
	Parallelism  int32  `json:"parallelism,omitempty"`
	Created      string `json:"created"`
	Updated      string `json:"updated"`
}

type taskView struct {
	Vertex   string `json:"vertex"`
	VertexID int32  `json:"vertex_id"`
	Subtask  int32  `json:"subtask"`
	Worker   string `json:"worker"`
	PID      int32  `json:"pid"`
	State    string `json:"state"`
	// Region and Attempt tell which pipelined region the subtask is in and
	// which attempt it runs: regions restart alone.
	Region  int32 `json:"region"`
	Attempt int64 `json:"attempt"`
}

type jobDetailView struct {
	jobView
	Tasks []taskView `json:"tasks"`
}

func newJobView(j *weirv1.JobStatus) jobView {
	return jobView{
		ID: j.GetId(), Name: j.GetName(), State: jobState(j.GetState()),
		Attempt: j.GetAttempt(), Restarts: j.GetRestarts(),
		Error: j.GetError(), Message: j.GetMessage(), CheckpointWarning: j.GetCheckpointWarning(),
		LimitWarning: j.GetLimitWarning(), Parallelism: j.GetSpec().GetParallelism(),
		Created: rfc3339(j.GetCreatedUnixMs()), Updated: rfc3339(j.GetUpdatedUnixMs()),
	}
}

func newJobDetailView(j *weirv1.JobStatus) jobDetailView {
	v := jobDetailView{jobView: newJobView(j), Tasks: []taskView{}}
	for _, t := range j.GetTasks() {
		v.Tasks = append(v.Tasks, taskView{
			Vertex: t.GetVertex(), VertexID: t.GetVertexId(), Subtask: t.GetSubtask(),
			Worker: t.GetWorker(), PID: t.GetPid(), State: taskState(t.GetState()),
			Region: t.GetRegion(), Attempt: t.GetAttempt(),
		})
	}
	return v
}

func printJobs(w io.Writer, format string, jobs []*weirv1.JobStatus) error {
	if format == formatJSON {
		out := make([]jobView, 0, len(jobs))
		for _, j := range jobs {
			out = append(out, newJobView(j))
		}
		return writeJSON(w, out)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tATTEMPT\tRESTARTS\tCREATED\tERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", j.GetId(), cell(j.GetName(), 40), jobState(j.GetState()),
			j.GetAttempt(), j.GetRestarts(), localTime(j.GetCreatedUnixMs()), cell(j.GetError(), 60))
	}
	return tw.Flush()
}

func printJob(w io.Writer, format string, j *weirv1.JobStatus) error {
	if format == formatJSON {
		return writeJSON(w, newJobDetailView(j))
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "ID:\t%s\n", j.GetId())
	fmt.Fprintf(tw, "Name:\t%s\n", j.GetName())
	fmt.Fprintf(tw, "State:\t%s\n", jobState(j.GetState()))
	fmt.Fprintf(tw, "Attempt:\t%d (restarts: %d)\n", j.GetAttempt(), j.GetRestarts())
	if p := j.GetSpec().GetParallelism(); p > 0 {
		fmt.Fprintf(tw, "Parallelism:\t%d\n", p)
	}
	fmt.Fprintf(tw, "Created:\t%s\n", localTime(j.GetCreatedUnixMs()))
	fmt.Fprintf(tw, "Updated:\t%s\n", localTime(j.GetUpdatedUnixMs()))
	if m := j.GetMessage(); m != "" {
		fmt.Fprintf(tw, "Message:\t%s\n", oneLine(m))
	}
	if e := j.GetError(); e != "" {
		fmt.Fprintf(tw, "Error:\t%s\n", oneLine(e))
	}
	if w := j.GetCheckpointWarning(); w != "" {
		fmt.Fprintf(tw, "Warning:\tcheckpoints failing: %s\n", oneLine(w))
	}
	if w := j.GetLimitWarning(); w != "" {
		fmt.Fprintf(tw, "Warning:\t%s\n", oneLine(w))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(j.GetTasks()) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "VERTEX\tSUBTASK\tWORKER\tPID\tSTATE")
	for _, t := range j.GetTasks() {
		pid := "-"
		if t.GetPid() > 0 {
			pid = fmt.Sprint(t.GetPid())
		}
		fmt.Fprintf(tw, "%d: %s\t%d\t%s\t%s\t%s\n", t.GetVertexId(), cell(t.GetVertex(), 50), t.GetSubtask(),
			cell(t.GetWorker(), 30), pid, taskState(t.GetState()))
	}
	return tw.Flush()
}

// workerView is a worker in `weir workers -o json`.
type workerView struct {
	ID                  string  `json:"id"`
	Host                string  `json:"host"`
	Slots               int32   `json:"slots"`
	Free                int32   `json:"free"`
	LastHeartbeat       string  `json:"last_heartbeat"`
	HeartbeatAgeSeconds float64 `json:"heartbeat_age_seconds"`
	RSSBytes            int64   `json:"rss_bytes"`
	// Platform is the worker's GOOS/GOARCH, "" when it does not report it.
	Platform string `json:"platform"`
}

// workerPlatform is a worker's GOOS/GOARCH, or "" when it does not report
// it.
func workerPlatform(wk *weirv1.WorkerInfo) string {
	if wk.GetGoos() == "" || wk.GetGoarch() == "" {
		return ""
	}
	return wk.GetGoos() + "/" + wk.GetGoarch()
}

func printWorkers(w io.Writer, format string, workers []*weirv1.WorkerInfo, now time.Time) error {
	if format == formatJSON {
		out := make([]workerView, 0, len(workers))
		for _, wk := range workers {
			v := workerView{
				ID: wk.GetId(), Host: wk.GetHost(), Slots: wk.GetSlots(), Free: wk.GetFree(),
				LastHeartbeat: rfc3339(wk.GetLastHeartbeatUnixMs()), RSSBytes: wk.GetRssBytes(), Platform: workerPlatform(wk),
			}
			if ms := wk.GetLastHeartbeatUnixMs(); ms != 0 {
				v.HeartbeatAgeSeconds = max(0, now.Sub(time.UnixMilli(ms)).Seconds())
			}
			out = append(out, v)
		}
		return writeJSON(w, out)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tHOST\tPLATFORM\tSLOTS\tFREE\tHEARTBEAT\tRSS")
	for _, wk := range workers {
		rss := "-"
		if wk.GetRssBytes() > 0 {
			rss = bytesIEC(wk.GetRssBytes())
		}
		platform := workerPlatform(wk)
		if platform == "" {
			platform = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", wk.GetId(), cell(wk.GetHost(), 40), platform, wk.GetSlots(), wk.GetFree(),
			ago(wk.GetLastHeartbeatUnixMs(), now), rss)
	}
	return tw.Flush()
}
