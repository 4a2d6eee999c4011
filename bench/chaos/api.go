package chaos

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/bench/cluster"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// The campaign polls job status and checkpoints many times a second while
// it waits for recovery: through the coordinators' JSON API (docs/api.md),
// not a `weir` process per question, which on a loaded machine takes
// seconds and would count as recovery time. The CLI is the fallback.

var apiClient = &http.Client{Timeout: 3 * time.Second}

// getAPI fetches path from the first coordinator that answers it into m.
func (t *topology) getAPI(path string, m proto.Message) error {
	var errs []string
	for _, id := range []string{"a", "b"} {
		resp, err := apiClient.Get("http://" + t.metrics["coord-"+id] + path)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
		}
		if err == nil {
			err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, m)
		}
		if err == nil {
			return nil
		}
		errs = append(errs, "coord-"+id+": "+err.Error())
	}
	return fmt.Errorf("GET %s: %s", path, strings.Join(errs, "; "))
}

// status is job id's status.
func (t *topology) status(id string) (cluster.JobStatus, error) {
	var j weirv1.JobStatus
	if err := t.getAPI("/api/v1/jobs/"+id, &j); err != nil {
		return t.cli.Status(id)
	}
	s := cluster.JobStatus{State: strings.TrimPrefix(j.GetState().String(), "JOB_STATE_"), Error: j.GetError(),
		Attempt: j.GetAttempt(), Restarts: j.GetRestarts()}
	for _, tk := range j.GetTasks() {
		s.Tasks = append(s.Tasks, struct {
			Worker  string `json:"worker"`
			PID     int32  `json:"pid"`
			State   string `json:"state"`
			Region  int32  `json:"region"`
			Attempt int64  `json:"attempt"`
		}{tk.GetWorker(), tk.GetPid(), strings.TrimPrefix(tk.GetState().String(), "TASK_STATE_"), tk.GetRegion(), tk.GetAttempt()})
	}
	return s, nil
}

// checkpoints are job id's checkpoints.
func (t *topology) checkpoints(id string) ([]cluster.Checkpoint, error) {
	var l weirv1.ListCheckpointsResponse
	if err := t.getAPI("/api/v1/jobs/"+id+"/checkpoints", &l); err != nil {
		return t.cli.Checkpoints(id)
	}
	var cps []cluster.Checkpoint
	for _, c := range l.GetCheckpoints() {
		cps = append(cps, cluster.Checkpoint{ID: c.GetId(), Status: strings.TrimPrefix(c.GetStatus().String(), "CHECKPOINT_STATUS_"),
			DurationMs: c.GetDurationMs(), SizeBytes: c.GetSizeBytes(), Incremental: c.GetIncrementalBytes(), AlignmentMs: c.GetAlignmentMs()})
	}
	return cps, nil
}
