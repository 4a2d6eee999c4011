package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

//go:embed assets
var assets embed.FS

// refresh is how often live sections are pushed to open pages.
const refresh = time.Second

// Server serves the pages, their live updates and the JSON API.
type Server struct {
	b      Backend
	logger *slog.Logger
	tmpl   *template.Template
	mux    *http.ServeMux
}

// New returns the status page's handler.
func New(b Backend, logger *slog.Logger) *Server {
	s := &Server{b: b, logger: logger, mux: http.NewServeMux()}
	s.tmpl = template.Must(template.New("").Funcs(funcs).ParseFS(assets, "assets/*.html"))
	static, _ := fs.Sub(assets, "assets")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /{$}", s.page("overview", s.overview))
	s.mux.HandleFunc("GET /login", s.page("login", func(r *http.Request) (any, error) {
		if msg := r.URL.Query().Get("failed"); msg != "" {
			return nil, status.Error(codes.Unauthenticated, "that token was refused")
		}
		return nil, nil
	}))
	s.mux.HandleFunc("GET /jobs/{id}", s.page("job", s.job))
	s.mux.HandleFunc("GET /workers/{id}", s.page("worker", s.worker))
	s.mux.HandleFunc("GET /events/overview", s.events("overview-live", s.overview))
	s.mux.HandleFunc("GET /events/jobs/{id}", s.events("job-live", s.job))
	s.mux.HandleFunc("GET /events/workers/{id}", s.events("worker-live", s.worker))
	s.mux.HandleFunc("GET /api/v1/overview", s.api(s.overview))
	s.mux.HandleFunc("GET /api/v1/jobs/{id}/detail", s.api(s.job))
	s.mux.HandleFunc("GET /api/v1/workers/{id}", s.api(s.worker))
	s.mux.HandleFunc("POST /api/v1/jobs/{id}/cancel", s.cancel)
	s.mux.HandleFunc("POST /api/v1/jobs/{id}/savepoint", s.savepoint)
	s.mux.HandleFunc("GET /api/v1/jobs/{id}/tail", s.tail)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// load fetches a page's data.
type load func(r *http.Request) (any, error)

func (s *Server) overview(r *http.Request) (any, error) { return s.b.Overview(r.Context()) }

func (s *Server) job(r *http.Request) (any, error) {
	j, err := s.b.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	ids := make([]int32, len(j.Operators))
	for i, o := range j.Operators {
		ids[i] = o.VertexID
	}
	j.Graph = Layout(ids, j.Edges)
	return j, nil
}

func (s *Server) worker(r *http.Request) (any, error) {
	return s.b.Worker(r.Context(), r.PathValue("id"))
}

// pageData is what every page template gets.
type pageData struct {
	Title string
	Now   time.Time
	Data  any
	Err   string
	// Leader is the leading coordinator's page when this one stands by.
	Leader string
	// CSRF is the token the page's scripts send with their POSTs (Guard).
	CSRF string
}

// titles are the pages' display names.
var titles = map[string]string{"overview": "Overview", "job": "Job", "worker": "Worker", "login": "Log in"}

func (s *Server) page(name string, load load) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d := pageData{Title: titles[name], Now: time.Now(), CSRF: CSRFToken(r.Context())}
		v, err := load(r)
		code := http.StatusOK
		if err != nil {
			code = httpStatus(err)
			d.Err = errorText(err)
			d.Leader = s.leaderPage(r.Context())
		} else {
			d.Data = v
		}
		var buf bytes.Buffer
		if err := s.tmpl.ExecuteTemplate(&buf, name+".html", d); err != nil {
			s.logger.Error("render page", "page", name, "err", err)
			http.Error(w, "cannot render page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(code)
		w.Write(buf.Bytes())
	}
}

// leaderPage is the leader's status page if another coordinator leads.
func (s *Server) leaderPage(ctx context.Context) string {
	o, err := s.b.Overview(ctx)
	if err != nil || o.Cluster.Leading || o.Cluster.LeaderHTTP == "" {
		return ""
	}
	return "http://" + o.Cluster.LeaderHTTP + "/"
}

// events streams a page's live section, rendered anew every second.
func (s *Server) events(section string, load load) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sse, ok := newSSE(w)
		if !ok {
			return
		}
		tick := time.NewTicker(refresh)
		defer tick.Stop()
		for {
			d := pageData{Now: time.Now()}
			if v, err := load(r); err != nil {
				d.Err = errorText(err)
			} else {
				d.Data = v
			}
			var buf bytes.Buffer
			if err := s.tmpl.ExecuteTemplate(&buf, section, d); err != nil {
				s.logger.Error("render section", "section", section, "err", err)
				return
			}
			if err := sse.send("live", buf.String()); err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}
}

func (s *Server) api(load load) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := load(r)
		if err != nil {
			WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	if err := s.b.CancelJob(r.Context(), r.PathValue("id")); err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "canceling"})
}

func (s *Server) savepoint(w http.ResponseWriter, r *http.Request) {
	loc, err := s.b.Savepoint(r.Context(), r.PathValue("id"))
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"location": loc})
}

// tail streams sampled records as Server-Sent Events: "record" events
// carry a TapRecord in protojson, one "error" event ends a failed tail.
func (s *Server) tail(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	sse, ok := newSSE(w)
	if !ok {
		return
	}
	req := &weirv1.TailRequest{JobId: r.PathValue("id"), Operator: r.URL.Query().Get("operator"), Limit: int32(limit)}
	err := s.b.Tail(r.Context(), req, func(rec *weirv1.TapRecord) error {
		b, _ := protojson.Marshal(rec)
		return sse.send("record", string(b))
	})
	if err != nil && r.Context().Err() == nil {
		sse.send("error", errorText(err))
	}
}

// sse writes Server-Sent Events.
type sse struct {
	w http.ResponseWriter
	f http.Flusher
}

func newSSE(w http.ResponseWriter) (*sse, bool) {
	f, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return nil, false
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	f.Flush()
	return &sse{w: w, f: f}, true
}

// send writes one event; multi-line data becomes several data lines,
// which the browser joins with newlines.
func (s *sse) send(event, data string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "event: %s\n", event)
	for _, line := range strings.Split(data, "\n") {
		fmt.Fprintf(&b, "data: %s\n", line)
	}
	b.WriteString("\n")
	if _, err := s.w.Write([]byte(b.String())); err != nil {
		return err
	}
	s.f.Flush()
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// WriteError answers a JSON API request with err: its HTTP status (see
// httpStatus) and {"error": message}.
func WriteError(w http.ResponseWriter, err error) {
	writeErrorText(w, httpStatus(err), errorText(err))
}

func writeErrorText(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// httpStatus maps the coordinator's gRPC status errors to HTTP.
func httpStatus(err error) int {
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) {
			return http.StatusGatewayTimeout
		}
		return http.StatusInternalServerError
	}
	switch st.Code() {
	case codes.NotFound:
		return http.StatusNotFound
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.FailedPrecondition, codes.Aborted:
		return http.StatusConflict
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func errorText(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}
