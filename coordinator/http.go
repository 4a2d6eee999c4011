package coordinator

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/coordinator/web"
	"github.com/weir-run/weir/internal/authz"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// httpHandler serves the status page, the JSON API (docs/api.md) and
// /metrics, all behind web.Guard. The routes here answer with the gRPC API's messages in
// protojson; the page's own views are web's.
func (c *Coordinator) httpHandler() http.Handler {
	mux := http.NewServeMux()
	js := &jobService{c: c}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"id": c.cfg.ID, "leader": c.lead() != nil, "candidate": c.candidate()})
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
	mux.HandleFunc("GET /api/v1/jobs/{id}/checkpoints", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		resp, err := js.ListCheckpoints(ctx, &weirv1.ListCheckpointsRequest{JobId: r.PathValue("id")})
		writeProto(w, resp, err)
	})
	mux.HandleFunc("GET /api/v1/workers", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		resp, err := js.ListWorkers(ctx, &weirv1.ListWorkersRequest{})
		writeProto(w, resp, err)
	})
	if c.cfg.Metrics != nil {
		mux.Handle("GET /metrics", c.cfg.Metrics)
	}
	mux.HandleFunc("POST /login", c.login)
	mux.Handle("/", web.New(pages{c}, c.logger))
	return web.NewGuard(append([]string{c.cfg.HTTP}, c.cfg.HTTPHosts...), false).Wrap(mux)
}

// routeRight is what a request to the page or the JSON API needs: reading
// is a viewer's, tailing records (they show data) and every POST an
// operator's. Health and static files are public.
func routeRight(r *http.Request) authz.Right {
	switch {
	case r.URL.Path == "/healthz", r.URL.Path == "/login", strings.HasPrefix(r.URL.Path, "/static/"):
		return authz.Public
	case r.Method == http.MethodPost:
		return authz.Operate
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		return authz.Admin
	case strings.HasPrefix(r.URL.Path, "/api/v1/jobs/") && strings.HasSuffix(r.URL.Path, "/tail"):
		return authz.Operate
	}
	return authz.View
}

// login checks a token from the login form and keeps it in an HttpOnly
// session cookie, so that a browser without a client certificate can use
// the page with the token's role. A refused token says so on the form.
func (c *Coordinator) login(w http.ResponseWriter, r *http.Request) {
	tok := r.PostFormValue("token")
	if c.tokens == nil || tok == "" {
		http.Redirect(w, r, "/login?failed=1", http.StatusSeeOther)
		return
	}
	p, err := c.tokens.VerifyToken(r.Context(), tok)
	if err != nil {
		c.logger.Info("page login refused", "remote", r.RemoteAddr)
		http.Redirect(w, r, "/login?failed=1", http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: authz.SessionCookie, Value: tok, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600})
	c.logger.Info("page login", "name", p.Name, "role", p.Role)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func writeProto(w http.ResponseWriter, m proto.Message, err error) {
	if err != nil {
		web.WriteError(w, err)
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
