package coordinator

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// TestDataPlaneTLSRoutesPinCertificates: with data-plane TLS the leader
// deploys processes asking for it and hands every process the certificate
// hash of each peer with its address.
func TestDataPlaneTLSRoutesPinCertificates(t *testing.T) {
	h := startLeaderHarness(t, harnessOpts{dataTLS: true})
	cert := sha256.Sum256([]byte("a process's certificate"))
	w := h.registered(t, "w1", scriptOpts{cert: cert[:]})
	h.submit("pinned")
	eventually(t, 30*time.Second, "the tasks start", func() bool {
		_, starts := w.seen()
		return len(starts) > 0
	})
	deploys, starts := w.seen()
	if len(deploys) != 1 || !deploys[0].DataTls {
		t.Fatalf("deploys %v, want one asking for data-plane TLS", deploys)
	}
	// The source's process dials the sink: its route is the one it needs.
	if routes := starts[0].Routes; len(routes) != 1 || routes[0].VertexId != 2 {
		t.Fatalf("routes %v, want the sink subtask's", routes)
	}
	for _, r := range starts[0].Routes {
		if !bytes.Equal(r.DataCertSha256, cert[:]) {
			t.Errorf("route of %d/%d pins %x, want the process's %x", r.VertexId, r.Subtask, r.DataCertSha256, cert)
		}
	}
}

// TestDataPlaneTLSRefusesAProcessWithoutACertificate: a process that comes
// up without a certificate (a binary built before data-plane TLS) fails
// the job with a one-line reason instead of running its channels in
// plaintext.
func TestDataPlaneTLSRefusesAProcessWithoutACertificate(t *testing.T) {
	h := startLeaderHarness(t, harnessOpts{dataTLS: true})
	w := h.registered(t, "w1", scriptOpts{})
	job := h.submit("unpinned")
	var st *weirv1.JobStatus
	eventually(t, 30*time.Second, "the job fails", func() bool {
		var err error
		st, err = h.api.GetJob(h.ctx, &weirv1.GetJobRequest{JobId: job})
		return err == nil && st.State == weirv1.JobState_JOB_STATE_FAILED
	})
	if !strings.Contains(st.Error, "without TLS") || strings.Contains(st.Error, "\n") {
		t.Errorf("failure %q, want one line saying the binary serves without TLS", st.Error)
	}
	if _, starts := w.seen(); len(starts) != 0 {
		t.Errorf("a process without a certificate was started with routes %v", starts)
	}
}
