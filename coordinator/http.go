package coordinator

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// httpHandler serves the JSON API the status page will build on. The page
// itself is the web issue's work; these endpoints already answer operators'
// scripts.
func (c *Coordinator) httpHandler() http.Handler {
	mux := http.NewServeMux()
	js := &jobService{c: c}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		leading := c.mu.lead != nil
		c.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"id": c.cfg.ID, "leader": leading})
	})
	mux.HandleFunc("GET /api/v1/jobs", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		resp, err := js.ListJobs(ctx, &weirv1.ListJobsRequest{})
		writeProto(w, resp, err)
	})
	mux.HandleFunc("GET /api/v1/jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		resp, err := js.GetJob(ctx, &weirv1.GetJobRequest{JobId: r.PathValue("id")})
		writeProto(w, resp, err)
	})
	mux.HandleFunc("GET /api/v1/workers", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		resp, err := js.ListWorkers(ctx, &weirv1.ListWorkersRequest{})
		writeProto(w, resp, err)
	})
	return mux
}

func writeProto(w http.ResponseWriter, m proto.Message, err error) {
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	b, _ := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
