package web

import (
	"context"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// Backend is what the pages need of the coordinator. Errors that name the
// leader (a standby's) are shown with a link to it.
type Backend interface {
	Overview(ctx context.Context) (*Overview, error)
	Job(ctx context.Context, id string) (*Job, error)
	Worker(ctx context.Context, id string) (*Worker, error)
	CancelJob(ctx context.Context, id string) error
	// Savepoint takes a savepoint and returns its location.
	Savepoint(ctx context.Context, id string) (string, error)
	// Tail calls send with sampled records leaving operator until limit
	// records (0: no limit) or ctx ends.
	Tail(ctx context.Context, r *weirv1.TailRequest, send func(*weirv1.TapRecord) error) error
}

// Cluster says who this coordinator is and who leads.
type Cluster struct {
	Self         string        `json:"self"`
	Leading      bool          `json:"leading"`
	LeaderHTTP   string        `json:"leader_http,omitempty"` // the leader's page, for a standby
	Coordinators []Coordinator `json:"coordinators"`
	// Insecure: the coordinator serves plaintext beyond loopback
	// (--insecure-plaintext).
	Insecure bool `json:"insecure,omitempty"`
	// PlaintextDataPlane: the coordinator has TLS but its jobs exchange
	// records in plaintext (--data-plane-tls off).
	PlaintextDataPlane bool `json:"plaintext_data_plane,omitempty"`
	// KEK names the key-encryption key that seals the jobs' state at rest,
	// "none" when it is not encrypted (--kek none).
	KEK string `json:"kek"`
}

type Coordinator struct {
	ID     string `json:"id"`
	API    string `json:"api"`
	HTTP   string `json:"http,omitempty"`
	Leader bool   `json:"leader"`
	Self   bool   `json:"self"`
}

// Overview is the cluster at a glance.
type Overview struct {
	Cluster Cluster     `json:"cluster"`
	Workers []WorkerRow `json:"workers"`
	Jobs    []JobRow    `json:"jobs"`
}

type WorkerRow struct {
	ID             string `json:"id"`
	Host           string `json:"host"`
	Slots          int    `json:"slots"`
	Used           int    `json:"used"`
	HeartbeatAgeMs int64  `json:"heartbeat_age_ms"`
	RSSBytes       int64  `json:"rss_bytes"`
	HeapBytes      int64  `json:"heap_bytes"`
	NumGC          uint32 `json:"num_gc"`
}

type JobRow struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	State       string    `json:"state"`
	Created     time.Time `json:"created"`
	UptimeMs    int64     `json:"uptime_ms"`
	Restarts    int32     `json:"restarts"`
	Attempt     int64     `json:"attempt"`
	Parallelism int32     `json:"parallelism"`
	// Throughput is the records per second the job's sources emit now;
	// History holds one sample per second, oldest first.
	Throughput float64   `json:"throughput"`
	History    []float64 `json:"history"`
}

// Job is one job's page.
type Job struct {
	JobRow
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
	// CheckpointWarning says the job's checkpoints keep failing.
	CheckpointWarning string       `json:"checkpoint_warning,omitempty"`
	Operators         []Operator   `json:"operators"`
	Edges             []Edge       `json:"edges"`
	Checkpoints       []Checkpoint `json:"checkpoints"`
	Exceptions        []Exception  `json:"exceptions"`
	Tasks             []Task       `json:"tasks"`
	// Graph is the laid-out job graph; the server fills it.
	Graph Graph `json:"graph"`
}

// Operator is one vertex of the job graph: a chain of fused operators.
type Operator struct {
	VertexID    int32    `json:"vertex_id"`
	Name        string   `json:"name"`
	UIDs        []string `json:"uids"`
	Source      bool     `json:"source"`
	Parallelism int32    `json:"parallelism"`
	// TapUID is the operator that `weir tail` can sample here; empty for a
	// chain ending in a sink.
	TapUID        string  `json:"tap_uid,omitempty"`
	RecordsIn     int64   `json:"records_in"`
	RecordsOut    int64   `json:"records_out"`
	InRate        float64 `json:"in_rate"`
	OutRate       float64 `json:"out_rate"`
	Busy          float64 `json:"busy"`
	Backpressured float64 `json:"backpressured"`
	// WatermarkMs is the minimum over all the vertex's subtasks' event-time
	// watermarks; absent while any of them has none (unknown), and once
	// every subtask's input ended (WatermarkEnded).
	WatermarkMs    *int64         `json:"watermark_ms,omitempty"`
	WatermarkLag   int64          `json:"watermark_lag_ms,omitempty"`
	WatermarkEnded bool           `json:"watermark_ended,omitempty"`
	Lag            []PartitionLag `json:"lag,omitempty"`
}

// PartitionLag is how far a source is behind in one partition. The
// fields it cannot know yet are null in the JSON, never a made-up number.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Records between the next offset the source reads (after a restart,
	// the restored one) and the partition's end; null while the source has
	// not learnt the end (it asks when it starts, then at every fetch).
	Records *int64 `json:"records"`
	// BehindMs is now minus the event time of the last record the source
	// read from the partition; null until it read one in this attempt.
	BehindMs *int64 `json:"behind_ms"`
}

type Edge struct {
	From         int32  `json:"from"`
	To           int32  `json:"to"`
	Partitioning string `json:"partitioning"`
}

type Checkpoint struct {
	ID               int64     `json:"id"`
	Status           string    `json:"status"`
	Trigger          time.Time `json:"trigger"`
	DurationMs       int64     `json:"duration_ms"`
	SizeBytes        int64     `json:"size_bytes"`
	IncrementalBytes int64     `json:"incremental_bytes"`
	AlignmentMs      int64     `json:"alignment_ms"`
	Savepoint        bool      `json:"savepoint"`
	Failure          string    `json:"failure,omitempty"`
}

type Exception struct {
	At      time.Time `json:"at"`
	Attempt int64     `json:"attempt"`
	Text    string    `json:"text"`
}

type Task struct {
	Vertex  string `json:"vertex"`
	Subtask int32  `json:"subtask"`
	Worker  string `json:"worker"`
	State   string `json:"state"`
	Job     string `json:"job,omitempty"`
	JobName string `json:"job_name,omitempty"`
}

// Worker is one worker's page.
type Worker struct {
	WorkerRow
	Memory    *weirv1.MemoryStats `json:"memory,omitempty"`
	Tasks     []Task              `json:"tasks"`
	Processes []Process           `json:"processes"`
}

// Process is a job process on a worker.
type Process struct {
	Job     string              `json:"job"`
	JobName string              `json:"job_name"`
	Attempt int64               `json:"attempt"`
	Pid     int32               `json:"pid"`
	Memory  *weirv1.MemoryStats `json:"memory,omitempty"`
}
