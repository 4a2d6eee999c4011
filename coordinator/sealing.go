package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/coordinator/jobmaster"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"

	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/sealing"
	"github.com/weir-run/weir/internal/storelayout"
)

// jobKeyTimeout bounds a data key's etcd and KMS round trips.
const jobKeyTimeout = 30 * time.Second

// newJobKey makes job's data key and records it, wrapped by the KEK, in
// etcd before the job exists: no job is ever recorded without its key.
// Nil without a KEK (--kek none): the job's state is not encrypted.
func (c *Coordinator) newJobKey(ctx context.Context, job string) (*sealing.JobKey, error) {
	if c.kek == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, jobKeyTimeout)
	defer cancel()
	key, err := sealing.NewJobKey()
	if err != nil {
		return nil, err
	}
	rec, err := sealing.Stored(ctx, c.kek, key, time.Now().UnixMilli())
	if err != nil {
		return nil, err
	}
	k := etcdkeys.JobKeys + job
	resp, err := c.etcd.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, string(rec))).Commit()
	if err != nil {
		return nil, fmt.Errorf("record the data key of job %s: %w", job, err)
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("job %s already has a data key", job)
	}
	return key, nil
}

// loadJobKey reads and unwraps job's data key: nil for a job without one
// (submitted before the cluster had a KEK, or recorded by another
// cluster), an error wrapping sealing.ErrPurged for a purged job.
func (c *Coordinator) loadJobKey(ctx context.Context, job string) (*sealing.JobKey, error) {
	ctx, cancel := context.WithTimeout(ctx, jobKeyTimeout)
	defer cancel()
	resp, err := c.etcd.Get(ctx, etcdkeys.JobKeys+job)
	if err != nil {
		return nil, fmt.Errorf("read the data key of job %s: %w", job, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return sealing.Load(ctx, c.kek, job, resp.Kvs[0].Value)
}

// objectKey is the data key that opens an object of the store: its job's.
func (c *Coordinator) objectKey(ctx context.Context, object string) (*sealing.JobKey, error) {
	job := storelayout.JobOf(object)
	if job == "" {
		return nil, nil
	}
	return c.loadJobKey(ctx, job)
}

// PurgeJob crypto-shreds a terminal job (see the RPC's doc): the
// tombstone first, under this leader's fence, so that the purge holds
// even if no object can be deleted.
func (s *jobService) PurgeJob(ctx context.Context, r *weirv1.PurgeJobRequest) (*weirv1.PurgeJobResponse, error) {
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	_, err = call(ctx, st, func() (struct{}, error) {
		j := st.jobs[r.JobId]
		if j == nil {
			return struct{}{}, status.Errorf(codes.NotFound, "no job %s", r.JobId)
		}
		if state := j.m.State(); !jobmaster.Terminal(state) {
			return struct{}{}, status.Errorf(codes.FailedPrecondition, "job %s is %s: cancel it before purging it", r.JobId, strings.TrimPrefix(state.String(), "JOB_STATE_"))
		}
		j.key, j.savepointKey = nil, nil
		return struct{}{}, nil
	})
	if err != nil {
		return nil, err
	}
	// Whether a key existed, without unwrapping it: a tombstone or a
	// wrapped key alike means the job's objects were sealed.
	_, had, err := st.store.Get(ctx, etcdkeys.JobKeys+r.JobId)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read the key of job %s: %v", r.JobId, oneLine(err))
	}
	resp := &weirv1.PurgeJobResponse{PurgedUnixMs: time.Now().UnixMilli(), KeyDestroyed: had}
	if err := st.store.Put(ctx, etcdkeys.JobKeys+r.JobId, sealing.Tombstone(resp.PurgedUnixMs, principalName(ctx))); err != nil {
		return nil, status.Errorf(codes.Unavailable, "record the purge of job %s: %v", r.JobId, oneLine(err))
	}
	st.logger.Warn("job purged: its data key is destroyed", "job", r.JobId, "by", principalName(ctx))
	prefixes, err := storelayout.JobPrefixes(r.JobId, true)
	if err == nil {
		resp.ObjectsDeleted, err = deleteJobEffect{job: r.JobId, prefixes: prefixes, bucket: s.c.store.Bucket()}.deleteObjects(ctx)
	}
	if err != nil {
		resp.DeleteError = oneLine(err)
	}
	return resp, nil
}

// RotateKeys re-encrypts the job data keys and secrets in etcd by the
// current KEK (see the RPC). Each is swapped only if unchanged since it was
// read, so a concurrent purge or secret change wins.
func (s *jobService) RotateKeys(ctx context.Context, _ *weirv1.RotateKeysRequest) (*weirv1.RotateKeysResponse, error) {
	if s.c.kek == nil {
		return nil, status.Error(codes.FailedPrecondition, "this coordinator has no KEK (--kek) to rotate to")
	}
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	resp := &weirv1.RotateKeysResponse{}
	for _, kind := range []struct {
		prefix string
		count  *int64
		rewrap func(name string, b []byte) ([]byte, error)
	}{
		{etcdkeys.JobKeys, &resp.JobKeys, func(job string, b []byte) ([]byte, error) { return s.c.kek.Rewrap(ctx, job, b) }},
		{etcdkeys.Secrets, &resp.Secrets, func(name string, b []byte) ([]byte, error) {
			var rec weirv1.StoredSecret
			if err := proto.Unmarshal(b, &rec); err != nil {
				return nil, fmt.Errorf("secret %s: %w", name, err)
			}
			plain, err := s.c.kek.Decrypt(ctx, rec.Wrapped, "secret "+name)
			if err != nil {
				return nil, err
			}
			if rec.Wrapped, err = s.c.kek.Encrypt(ctx, plain, "secret "+name); err != nil {
				return nil, err
			}
			return proto.Marshal(&rec)
		}},
	} {
		recs, err := st.store.List(ctx, kind.prefix)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "%v", oneLine(err))
		}
		for key, old := range recs {
			name := strings.TrimPrefix(key, kind.prefix)
			b, err := kind.rewrap(name, old)
			if err == nil {
				var ok bool
				if ok, err = st.store.Swap(ctx, key, old, b); err == nil && !ok {
					err = errors.New("changed while it was re-encrypted; run the rotation again")
				}
			}
			if err != nil {
				resp.Failed = append(resp.Failed, fmt.Sprintf("%s: %s", key, oneLine(err)))
				continue
			}
			*kind.count++
		}
	}
	sort.Strings(resp.Failed)
	st.logger.Info("keys rotated to the current KEK", "kek", s.c.kek.String(), "job_keys", resp.JobKeys, "secrets", resp.Secrets,
		"failed", len(resp.Failed), "by", principalName(ctx))
	return resp, nil
}

// ExportJobKey hands an admin the data key of a savepoint's job (see the
// RPC).
func (s *jobService) ExportJobKey(ctx context.Context, r *weirv1.ExportJobKeyRequest) (*weirv1.ExportJobKeyResponse, error) {
	_, object, err := storelayout.Split(r.Location)
	job := storelayout.JobOf(object)
	if err != nil || job == "" {
		return nil, status.Errorf(codes.InvalidArgument, "%q is not a savepoint location (weir savepoint prints one: STORE/savepoints/JOB/ID/_manifest)", r.Location)
	}
	if _, err := s.c.leading(ctx); err != nil {
		return nil, err
	}
	key, err := s.c.loadJobKey(ctx, job)
	switch {
	case err != nil:
		return nil, status.Errorf(codes.FailedPrecondition, "%v", oneLine(err))
	case key == nil:
		return nil, status.Errorf(codes.FailedPrecondition, "job %s has no data key: its state is not encrypted, and its savepoints move as they are", job)
	}
	s.c.logger.Warn("a job's data key was exported", "job", job, "by", principalName(ctx))
	return &weirv1.ExportJobKeyResponse{JobId: job, DataKey: key.Bytes()}, nil
}

// ImportJobKey records another cluster's job key (see the RPC). A key of a
// job this cluster knows is refused unless it is the same key, and a purged
// job stays purged.
func (s *jobService) ImportJobKey(ctx context.Context, r *weirv1.ImportJobKeyRequest) (*weirv1.ImportJobKeyResponse, error) {
	in := r.GetKey()
	if in == nil || in.JobId == "" || storelayout.JobOf("savepoints/"+in.JobId+"/x") != in.JobId {
		return nil, status.Error(codes.InvalidArgument, "not an exported job key (weir savepoint export writes one)")
	}
	if s.c.kek == nil {
		return nil, status.Error(codes.FailedPrecondition, "this coordinator has no KEK (--kek) to open an imported key with")
	}
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := proto.Marshal(&weirv1.StoredJobKey{Wrapped: in.Wrapped, CreatedUnixMs: in.ExportedUnixMs})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	key, err := sealing.Load(ctx, s.c.kek, in.JobId, rec)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "the key of job %s does not open with this cluster's KEK (export it with --kek naming this cluster's): %v", in.JobId, oneLine(err))
	}
	if had, err := s.c.loadJobKey(ctx, in.JobId); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "%v", oneLine(err))
	} else if had != nil {
		if bytes.Equal(had.Bytes(), key.Bytes()) {
			return &weirv1.ImportJobKeyResponse{Already: true}, nil
		}
		return nil, status.Errorf(codes.AlreadyExists, "job %s already has another data key here", in.JobId)
	}
	// Stored afresh, so that the record is this cluster's own.
	if rec, err = sealing.Stored(ctx, s.c.kek, key, time.Now().UnixMilli()); err == nil {
		var ok bool
		if ok, err = st.store.PutIfAbsent(ctx, etcdkeys.JobKeys+in.JobId, rec); err == nil && !ok {
			err = errors.New("a key was recorded meanwhile; import again")
		}
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "record the key of job %s: %v", in.JobId, oneLine(err))
	}
	st.logger.Info("a job's data key was imported", "job", in.JobId, "by", principalName(ctx))
	return &weirv1.ImportJobKeyResponse{}, nil
}
