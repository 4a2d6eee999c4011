package authz

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/internal/pki"
)

// Principal is an authenticated caller.
type Principal struct {
	Name string
	Role pki.Role
	// Via says how it authenticated: "certificate", "token" or, when the
	// cluster runs without authentication (loopback, --insecure-plaintext),
	// "unauthenticated".
	Via string
	// Quota bounds what the principal may have running (tokens only).
	Quota Quota
}

// Quota bounds a submitter's jobs that have not ended: how many, and how
// many task slots in all. Zero is no limit.
type Quota struct {
	MaxJobs  int `json:"max_jobs,omitempty"`
	MaxSlots int `json:"max_slots,omitempty"`
}

func (p Principal) String() string { return fmt.Sprintf("%s %s (%s)", p.Role, p.Name, p.Via) }

// rank orders the roles of people; the cluster's processes are not on it.
var rank = map[pki.Role]int{
	pki.RoleViewer:    1,
	pki.RoleOperator:  2,
	pki.RoleSubmitter: 3,
	pki.RoleAdmin:     4,
	pki.RoleClient:    4,
}

// Right is what a method or route needs.
type Right struct {
	// Least is the least role of a person that may call; empty: no person.
	Least pki.Role
	// Daemon is the cluster process role that may call; empty: none.
	Daemon pki.Role
	// Submits marks uploads and runs, which --disable-submit turns off.
	Submits bool
	// Public methods need no principal at all (/healthz).
	Public bool
}

// Policy holds the coordinator's own switches.
type Policy struct {
	// DisableSubmit refuses uploads and runs whatever the caller's role, as
	// Flink's web.submit.enable=false.
	DisableSubmit bool
}

// Check says whether p may do what r guards; the error is a gRPC status
// (PermissionDenied) with a one-line reason.
func (pol Policy) Check(p Principal, what string, r Right) error {
	if r.Public {
		return nil
	}
	if r.Submits && pol.DisableSubmit {
		return status.Errorf(codes.PermissionDenied, "%s: submitting jobs is disabled on this coordinator (--disable-submit)", what)
	}
	if p == Anonymous {
		return nil // an open cluster: whoever reaches it may do anything
	}
	if r.Daemon != "" && p.Role == r.Daemon {
		return nil
	}
	if r.Least != "" && rank[p.Role] > 0 && rank[p.Role] >= rank[r.Least] {
		return nil
	}
	need := string(r.Least)
	switch {
	case r.Least == "":
		need = "the " + string(r.Daemon) + " role"
	case r.Least != pki.RoleAdmin:
		need = "role " + need + " or above"
	default:
		need = "role admin"
	}
	return status.Errorf(codes.PermissionDenied, "%s needs %s; %s has role %s", what, need, p.Name, p.Role)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom is the caller admitted by the interceptor or middleware.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
