package coordinator

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"gocloud.dev/blob"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/internal/etcdkeys"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// rpcErr asserts err is a gRPC error with code and message exactly.
func rpcErr(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, _ := status.FromError(err)
	if err == nil || st.Code() != code || st.Message() != msg {
		t.Fatalf("err = %v, want %v: %s", err, code, msg)
	}
}

// etcdJobKeys lists the keys under /weir/ that belong to job id.
func etcdJobKeys(t *testing.T, h *leaderHarness, id string) []string {
	t.Helper()
	var keys []string
	for _, p := range []string{etcdkeys.Jobs + id, etcdkeys.Checkpoints + id + "/", etcdkeys.CheckpointIDs + id} {
		var opts []clientv3.OpOption
		if strings.HasSuffix(p, "/") {
			opts = append(opts, clientv3.WithPrefix())
		}
		r, err := h.etcd.Get(h.ctx, p, opts...)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range r.Kvs {
			keys = append(keys, string(kv.Key))
		}
	}
	return keys
}

func listJobIDs(t *testing.T, api weirv1.JobServiceClient, ctx context.Context) []string {
	t.Helper()
	l, err := api.ListJobs(ctx, &weirv1.ListJobsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range l.Jobs {
		ids = append(ids, j.Id)
	}
	slices.Sort(ids)
	return ids
}

// A spec over --max-spec-size is refused first, with one line, and leaves
// nothing behind.
func TestSpecSizeLimit(t *testing.T) {
	h := startLeaderHarness(t, harnessOpts{})
	h.registered(t, "w1", scriptOpts{})
	spec := h.spec("big")
	spec.Args = []string{strings.Repeat("x", 3<<20)}
	_, err := h.api.SubmitJob(h.ctx, &weirv1.SubmitJobRequest{Spec: spec})
	rpcErr(t, err, codes.InvalidArgument, "the job spec is 3.0 MiB, more than this coordinator's limit of 1.0 MiB (--max-spec-size): pass large inputs as files, not arguments")
	if ids := listJobIDs(t, h.api, h.ctx); len(ids) != 0 {
		t.Fatalf("jobs after a refused submit: %v", ids)
	}
	if r, err := h.etcd.Get(h.ctx, etcdkeys.Jobs, clientv3.WithPrefix()); err != nil || len(r.Kvs) != 0 {
		t.Fatalf("job records after a refused submit: %v %v", r, err)
	}
}

// A job whose record etcd refuses (larger than etcd's request limit, under
// a raised --max-spec-size) is not started: SubmitJob fails, no worker is
// asked to deploy it, and it is not listed. Before, SubmitJob succeeded
// and the job ran without a record, to vanish at the next failover.
func TestUnrecordedJobDoesNotRun(t *testing.T) {
	h := startLeaderHarness(t, harnessOpts{config: func(c *Config) { c.MaxSpecBytes = 8 << 20 }})
	w := h.registered(t, "w1", scriptOpts{})
	spec := h.spec("huge")
	spec.Args = []string{strings.Repeat("x", 1700<<10)}
	_, err := h.api.SubmitJob(h.ctx, &weirv1.SubmitJobRequest{Spec: spec})
	if st, _ := status.FromError(err); err == nil || st.Code() != codes.Unavailable ||
		!strings.HasPrefix(st.Message(), "the job was not started: cannot record it in etcd: ") {
		t.Fatalf("submit of an unrecordable job: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // a deploy would have gone out by now
	if deploys, _ := w.seen(); len(deploys) != 0 {
		t.Fatalf("the worker was asked to deploy %d processes", len(deploys))
	}
	if ids := listJobIDs(t, h.api, h.ctx); len(ids) != 0 {
		t.Fatalf("jobs after a refused submit: %v", ids)
	}
}

// Every job SubmitJob accepted is known to the next leader, even when the
// leader goes away right after answering.
func TestSubmittedJobSurvivesImmediateFailover(t *testing.T) {
	h := startLeaderHarness(t, harnessOpts{})
	h.registered(t, "w1", scriptOpts{})
	var ids []string
	for _, n := range []string{"a", "b", "c"} {
		ids = append(ids, h.submit(n))
	}
	h.stopLeader()

	c2 := &Coordinator{cfg: Config{ID: "c2", Store: h.storeURL, API: "c2:1"}, logger: h.c.logger, etcd: h.etcd, store: h.store}
	c2.cfg.setDefaults()
	ctx, cancel := context.WithCancel(h.ctx)
	led := make(chan error, 1)
	go func() { led <- c2.campaignAndLead(ctx) }()
	defer func() { cancel(); <-led }()
	var got []string
	eventually(t, 30*time.Second, "the new leader loads the jobs", func() bool {
		st, err := c2.leading(ctx)
		if err != nil {
			return false
		}
		got, err = call(ctx, st, func() ([]string, error) {
			var out []string
			for id := range st.jobs {
				out = append(out, id)
			}
			slices.Sort(out)
			return out, nil
		})
		return err == nil && len(got) == len(ids)
	})
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Fatalf("the new leader has jobs %v, want %v", got, ids)
	}
}

// weir delete: refused for a running job with nothing deleted; for a
// canceled one it removes the job from the list, its etcd keys and its
// checkpoints, keeps its savepoints (unless asked) and never touches
// another job's objects.
func TestDeleteJob(t *testing.T) {
	h := startLeaderHarness(t, harnessOpts{})
	// Checkpoints never complete: the test's objects are all there are.
	h.registered(t, "w1", scriptOpts{holdAcks: true})
	a, b := h.submit("a"), h.submit("b")
	waitState(t, h, a, weirv1.JobState_JOB_STATE_RUNNING)
	bucket := h.store.Bucket()
	objects := []string{
		"checkpoints/" + a + "/chk-1/_manifest", "checkpoints/" + a + "/shared/x.sst", "savepoints/" + a + "/sp-2/_manifest",
		"checkpoints/" + b + "/chk-1/_manifest", "savepoints/" + b + "/sp-1/_manifest",
		// Another job whose id starts with a's.
		"checkpoints/" + a + "0/chk-1/_manifest",
	}
	for _, k := range objects {
		if err := bucket.WriteAll(h.ctx, k, []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.etcd.Put(h.ctx, etcdkeys.CheckpointIDs+a+"0", "1"); err != nil {
		t.Fatal(err)
	}
	beforeKeys := etcdJobKeys(t, h, a)
	// Stand-ins for the jobs' data keys: a job deleted without its
	// savepoints keeps its key (the savepoints need it), one deleted with
	// them loses it.
	for _, id := range []string{a, b} {
		if _, err := h.etcd.Put(h.ctx, etcdkeys.JobKeys+id, "key"); err != nil {
			t.Fatal(err)
		}
	}
	hasKey := func(id string) bool {
		r, err := h.etcd.Get(h.ctx, etcdkeys.JobKeys+id)
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Kvs) == 1
	}

	_, err := h.api.DeleteJob(h.ctx, &weirv1.DeleteJobRequest{JobId: a})
	rpcErr(t, err, codes.FailedPrecondition, "job "+a+" is RUNNING: only a FINISHED, FAILED or CANCELED job can be deleted (weir cancel "+a+" first)")
	if got := storeKeys(t, bucket); !slices.Equal(got, sorted(objects)) {
		t.Fatalf("objects after a refused delete: %v", got)
	}
	if got := etcdJobKeys(t, h, a); !slices.Equal(got, beforeKeys) {
		t.Fatalf("etcd keys after a refused delete: %v, before %v", got, beforeKeys)
	}
	_, err = h.api.DeleteJob(h.ctx, &weirv1.DeleteJobRequest{JobId: "nope"})
	rpcErr(t, err, codes.NotFound, "no job nope")

	for _, id := range []string{a, b} {
		if _, err := h.api.CancelJob(h.ctx, &weirv1.CancelJobRequest{JobId: id}); err != nil {
			t.Fatal(err)
		}
		waitState(t, h, id, weirv1.JobState_JOB_STATE_CANCELED)
	}
	r, err := h.api.DeleteJob(h.ctx, &weirv1.DeleteJobRequest{JobId: a})
	if err != nil {
		t.Fatalf("delete %s: %v", a, err)
	}
	if r.DeletedObjects != 2 {
		t.Fatalf("deleted %d objects, want 2", r.DeletedObjects)
	}
	if ids := listJobIDs(t, h.api, h.ctx); !slices.Equal(ids, []string{b}) {
		t.Fatalf("jobs after deleting %s: %v, want [%s]", a, ids, b)
	}
	if got := etcdJobKeys(t, h, a); len(got) != 0 {
		t.Fatalf("etcd keys of %s left: %v", a, got)
	}
	if v, err := h.etcd.Get(h.ctx, etcdkeys.CheckpointIDs+a+"0"); err != nil || len(v.Kvs) != 1 {
		t.Fatalf("another job's counter was deleted: %v %v", v, err)
	}
	want := sorted([]string{"savepoints/" + a + "/sp-2/_manifest", "checkpoints/" + b + "/chk-1/_manifest",
		"savepoints/" + b + "/sp-1/_manifest", "checkpoints/" + a + "0/chk-1/_manifest"})
	if got := storeKeys(t, bucket); !slices.Equal(got, want) {
		t.Fatalf("objects after deleting %s:\n got %v\nwant %v", a, got, want)
	}
	_, err = h.api.DeleteJob(h.ctx, &weirv1.DeleteJobRequest{JobId: a})
	rpcErr(t, err, codes.NotFound, "no job "+a)
	if !hasKey(a) {
		t.Fatalf("deleting %s without its savepoints deleted the key they need", a)
	}

	if r, err = h.api.DeleteJob(h.ctx, &weirv1.DeleteJobRequest{JobId: b, WithSavepoints: true}); err != nil || r.DeletedObjects != 2 {
		t.Fatalf("delete %s with savepoints: %v, %v", b, r, err)
	}
	if hasKey(b) {
		t.Fatalf("deleting %s with its savepoints kept its data key", b)
	}
	want = sorted([]string{"savepoints/" + a + "/sp-2/_manifest", "checkpoints/" + a + "0/chk-1/_manifest"})
	if got := storeKeys(t, bucket); !slices.Equal(got, want) {
		t.Fatalf("objects after deleting %s with savepoints:\n got %v\nwant %v", b, got, want)
	}
}

// --job-retention deletes terminal jobs older than it, and only those.
func TestJobRetention(t *testing.T) {
	h := startLeaderHarness(t, harnessOpts{config: func(c *Config) { c.JobRetention = 2 * time.Second }})
	// Checkpoints never complete: the test's objects are all there are.
	h.registered(t, "w1", scriptOpts{holdAcks: true})
	done, running := h.submit("done"), h.submit("running")
	waitState(t, h, done, weirv1.JobState_JOB_STATE_RUNNING)
	if err := h.store.Bucket().WriteAll(h.ctx, "checkpoints/"+done+"/chk-1/_manifest", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := h.api.CancelJob(h.ctx, &weirv1.CancelJobRequest{JobId: done}); err != nil {
		t.Fatal(err)
	}
	waitState(t, h, done, weirv1.JobState_JOB_STATE_CANCELED)
	eventually(t, 30*time.Second, "the canceled job expires", func() bool {
		return slices.Equal(listJobIDs(t, h.api, h.ctx), []string{running})
	})
	if got := storeKeys(t, h.store.Bucket()); len(got) != 0 {
		t.Fatalf("objects of the expired job left: %v", got)
	}
	time.Sleep(3 * time.Second) // the running job is older than the retention now
	if ids := listJobIDs(t, h.api, h.ctx); !slices.Equal(ids, []string{running}) {
		t.Fatalf("jobs: %v, want the running one", ids)
	}
}

func waitState(t *testing.T, h *leaderHarness, id string, want weirv1.JobState) {
	t.Helper()
	eventually(t, 30*time.Second, "job "+id+" is "+want.String(), func() bool {
		st, err := h.api.GetJob(h.ctx, &weirv1.GetJobRequest{JobId: id})
		return err == nil && st.State == want
	})
}

// storeKeys lists the bucket's objects but the job binaries.
func storeKeys(t *testing.T, b *blob.Bucket) []string {
	t.Helper()
	var keys []string
	it := b.List(nil)
	for {
		o, err := it.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(o.Key, "binaries/") {
			keys = append(keys, o.Key)
		}
	}
	return sorted(keys)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// A job's memory limit goes to its workers; where a worker cannot enforce
// it, the job's status says so, naming the worker and why.
func TestMemoryLimitNotEnforcedIsShown(t *testing.T) {
	h := startLeaderHarness(t, harnessOpts{})
	w := h.registered(t, "w1", scriptOpts{noLimits: "no cgroup v2 here"})
	spec := h.spec("limited")
	spec.MemoryLimitBytes = 2 << 30
	r, err := h.api.SubmitJob(h.ctx, &weirv1.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, h, r.JobId, weirv1.JobState_JOB_STATE_RUNNING)
	st, err := h.api.GetJob(h.ctx, &weirv1.GetJobRequest{JobId: r.JobId})
	if err != nil {
		t.Fatal(err)
	}
	if want := "memory limit 2.0 GiB is not enforced on worker w1 (no cgroup v2 here)"; st.LimitWarning != want {
		t.Fatalf("limit warning %q, want %q", st.LimitWarning, want)
	}
	deploys, _ := w.seen()
	if len(deploys) != 1 || deploys[0].MemoryLimitBytes != 2<<30 {
		t.Fatalf("deploys %v, want one with the limit", deploys)
	}
	other := h.submit("unlimited")
	waitState(t, h, other, weirv1.JobState_JOB_STATE_RUNNING)
	if st, err := h.api.GetJob(h.ctx, &weirv1.GetJobRequest{JobId: other}); err != nil || st.LimitWarning != "" {
		t.Fatalf("a job without a limit: %q, %v", st.GetLimitWarning(), err)
	}
}
