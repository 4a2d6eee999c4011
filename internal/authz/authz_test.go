package authz

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/weir-run/weir/internal/pki"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// selfAuthenticated services check their callers themselves.
var selfAuthenticated = map[string]bool{"weir.v1.DataService": true, "weir.v1.TaskService": true}

func TestMethodsCoverEveryRPC(t *testing.T) {
	_ = weirv1.File_weir_v1_job_service_proto // link the descriptors
	seen := map[string]bool{}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if fd.Package() != "weir.v1" {
			return true
		}
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			if selfAuthenticated[string(sd.FullName())] {
				continue
			}
			for j := 0; j < sd.Methods().Len(); j++ {
				m := "/" + string(sd.FullName()) + "/" + string(sd.Methods().Get(j).Name())
				seen[m] = true
				if _, ok := Methods[m]; !ok {
					t.Errorf("%s has no rule in Methods: every RPC must say who may call it", m)
				}
			}
		}
		return true
	})
	if len(seen) < 10 {
		t.Fatalf("found only %d RPCs; are the descriptors linked?", len(seen))
	}
	for m := range Methods {
		if strings.HasPrefix(m, "/weir.v1.") && !seen[m] {
			t.Errorf("Methods names %s, which no service has", m)
		}
	}
}

func TestCheck(t *testing.T) {
	roles := []pki.Role{pki.RoleViewer, pki.RoleOperator, pki.RoleSubmitter, pki.RoleAdmin, pki.RoleClient, pki.RoleWorker, pki.RoleCoordinator, pki.RoleEtcd}
	// want[right] is the roles allowed, in the order of roles.
	for _, c := range []struct {
		name  string
		right Right
		want  string
	}{
		{"view", View, "viewer operator submitter admin client"},
		{"operate", Operate, "operator submitter admin client"},
		{"submit", Submit, "submitter admin client"},
		{"admin", Admin, "admin client"},
		{"worker", Worker, "worker"},
		{"public", Public, "viewer operator submitter admin client worker coordinator etcd"},
	} {
		var got []string
		for _, r := range roles {
			if err := (Policy{}).Check(Principal{Name: "x", Role: r}, c.name, c.right); err == nil {
				got = append(got, string(r))
			} else if status.Code(err) != codes.PermissionDenied || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s for %s: %v, want a one-line PermissionDenied", c.name, r, err)
			}
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s is open to %q, want %q", c.name, strings.Join(got, " "), c.want)
		}
	}
	err := Policy{DisableSubmit: true}.Check(Principal{Name: "root", Role: pki.RoleAdmin}, "SubmitJob", Submit)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "--disable-submit") {
		t.Errorf("an admin submitting with --disable-submit: %v", err)
	}
}

// jobs is a JobService that records who reached it.
type jobs struct {
	weirv1.UnimplementedJobServiceServer
	mu      sync.Mutex
	reached []string
}

func (j *jobs) note(ctx context.Context, what string) {
	p, _ := PrincipalFrom(ctx)
	j.mu.Lock()
	j.reached = append(j.reached, what+":"+p.Name)
	j.mu.Unlock()
}

func (j *jobs) ListJobs(ctx context.Context, _ *weirv1.ListJobsRequest) (*weirv1.ListJobsResponse, error) {
	j.note(ctx, "list")
	return &weirv1.ListJobsResponse{}, nil
}

func (j *jobs) CancelJob(ctx context.Context, _ *weirv1.CancelJobRequest) (*weirv1.CancelJobResponse, error) {
	j.note(ctx, "cancel")
	return &weirv1.CancelJobResponse{}, nil
}

func (j *jobs) SubmitJob(ctx context.Context, _ *weirv1.SubmitJobRequest) (*weirv1.SubmitJobResponse, error) {
	j.note(ctx, "submit")
	return &weirv1.SubmitJobResponse{JobId: "j"}, nil
}

type tokens map[string]Principal

func (ts tokens) VerifyToken(_ context.Context, tok string) (Principal, error) {
	if p, ok := ts[tok]; ok {
		return p, nil
	}
	return Principal{}, errors.New("unknown token")
}

func serve(t *testing.T, creds credentials.TransportCredentials, a Authenticator, pol Policy) (string, *jobs) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(a.ServerOptions(pol), grpc.Creds(creds))...)
	j := &jobs{}
	weirv1.RegisterJobServiceServer(srv, j)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), j
}

func client(t *testing.T, addr string, creds credentials.TransportCredentials) weirv1.JobServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return weirv1.NewJobServiceClient(cc)
}

func TestInterceptorsAdmitByCertificateAndToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if err := pki.InitCA(dir, 24*time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	src := map[string]*pki.Source{}
	for _, id := range []pki.Identity{{Role: pki.RoleCoordinator, Name: "c1"}, {Role: pki.RoleViewer, Name: "vera"},
		{Role: pki.RoleOperator, Name: "otto"}, {Role: pki.RoleClient, Name: "alice"}, {Role: pki.RoleWorker, Name: "worker-1"}} {
		if err := pki.Issue(dir, pki.IssueRequest{Identity: id, Valid: time.Hour}, time.Now()); err != nil {
			t.Fatal(err)
		}
		s, err := pki.NewSource(pki.Files{CA: filepath.Join(dir, pki.CAFile), Cert: pki.CertFile(dir, id.Name), Key: pki.KeyFile(dir, id.Name)})
		if err != nil {
			t.Fatal(err)
		}
		src[id.Name] = s
	}
	serverCreds := credentials.NewTLS(src["c1"].ServerConfig(pki.OptionalClientCert))
	a := Authenticator{Tokens: tokens{"t-op": {Name: "ci", Role: pki.RoleOperator}}}
	addr, j := serve(t, serverCreds, a, Policy{})
	anon := credentials.NewTLS(anonymousTLS(src["vera"]))

	ctx := context.Background()
	bearer := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	type call struct {
		name  string
		creds credentials.TransportCredentials
		ctx   context.Context
		do    string
		code  codes.Code
	}
	for _, c := range []call{
		{"viewer lists", credentials.NewTLS(src["vera"].ClientConfig(pki.RoleCoordinator)), ctx, "list", codes.OK},
		{"viewer cancels", credentials.NewTLS(src["vera"].ClientConfig(pki.RoleCoordinator)), ctx, "cancel", codes.PermissionDenied},
		{"operator cancels", credentials.NewTLS(src["otto"].ClientConfig(pki.RoleCoordinator)), ctx, "cancel", codes.OK},
		{"operator submits", credentials.NewTLS(src["otto"].ClientConfig(pki.RoleCoordinator)), ctx, "submit", codes.PermissionDenied},
		{"client submits", credentials.NewTLS(src["alice"].ClientConfig(pki.RoleCoordinator)), ctx, "submit", codes.OK},
		{"worker lists jobs", credentials.NewTLS(src["worker-1"].ClientConfig(pki.RoleCoordinator)), ctx, "list", codes.PermissionDenied},
		{"nobody lists", anon, ctx, "list", codes.Unauthenticated},
		{"operator token cancels", anon, bearer("t-op"), "cancel", codes.OK},
		{"operator token submits", anon, bearer("t-op"), "submit", codes.PermissionDenied},
		{"unknown token", anon, bearer("guess"), "list", codes.Unauthenticated},
	} {
		jc := client(t, addr, c.creds)
		var err error
		switch c.do {
		case "list":
			_, err = jc.ListJobs(c.ctx, &weirv1.ListJobsRequest{})
		case "cancel":
			_, err = jc.CancelJob(c.ctx, &weirv1.CancelJobRequest{JobId: "j"})
		case "submit":
			_, err = jc.SubmitJob(c.ctx, &weirv1.SubmitJobRequest{})
		}
		if status.Code(err) != c.code {
			t.Errorf("%s: %v, want %v", c.name, err, c.code)
		}
	}
	want := "list:vera cancel:otto submit:alice cancel:ci"
	if got := strings.Join(j.reached, " "); got != want {
		t.Errorf("handlers reached by %q, want %q (refused calls must not reach them)", got, want)
	}

	// --disable-submit refuses the client certificate too.
	addr2, j2 := serve(t, serverCreds, a, Policy{DisableSubmit: true})
	_, err := client(t, addr2, credentials.NewTLS(src["alice"].ClientConfig(pki.RoleCoordinator))).SubmitJob(ctx, &weirv1.SubmitJobRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "--disable-submit") || len(j2.reached) != 0 {
		t.Errorf("submit with --disable-submit: %v, reached %v", err, j2.reached)
	}

	// Open (no TLS): everyone is the anonymous admin.
	addr3, j3 := serve(t, insecure.NewCredentials(), Authenticator{Open: true}, Policy{})
	if _, err := client(t, addr3, insecure.NewCredentials()).SubmitJob(ctx, &weirv1.SubmitJobRequest{}); err != nil || j3.reached[0] != "submit:anonymous" {
		t.Errorf("open cluster: %v, reached %v", err, j3.reached)
	}
}

// anonymousTLS verifies the server like s but presents no certificate.
func anonymousTLS(s *pki.Source) *tls.Config {
	c := s.ClientConfig(pki.RoleCoordinator)
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
	return c
}
