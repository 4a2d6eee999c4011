package authz

import (
	"context"
	"crypto/tls"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/internal/pki"
)

// TokenVerifier resolves a bearer token to its principal; an unknown or
// revoked token is an error.
type TokenVerifier interface {
	VerifyToken(ctx context.Context, token string) (Principal, error)
}

// Authenticator finds who a request comes from.
type Authenticator struct {
	// Tokens verifies bearer tokens; nil accepts certificates only.
	Tokens TokenVerifier
	// Open admits every caller as an admin: the cluster runs without TLS
	// (on loopback, or with --insecure-plaintext).
	Open bool
}

// Anonymous is every caller of an open cluster. It passes every check but
// --disable-submit.
var Anonymous = Principal{Name: "anonymous", Role: pki.RoleAdmin, Via: "unauthenticated"}

// Authenticate returns the principal of the request in ctx: its verified
// client certificate, else its bearer token ("authorization: Bearer ...").
func (a Authenticator) Authenticate(ctx context.Context) (Principal, error) {
	var tlsState *tls.ConnectionState
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			tlsState = &info.State
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var authorization string
	if v := md.Get("authorization"); len(v) > 0 {
		authorization = v[0]
	}
	return a.authenticate(ctx, tlsState, authorization)
}

// authenticate finds the principal from what gRPC and HTTP requests share:
// the TLS connection and the authorization header.
func (a Authenticator) authenticate(ctx context.Context, conn *tls.ConnectionState, authorization string) (Principal, error) {
	if conn != nil && len(conn.VerifiedChains) > 0 {
		id, err := pki.IdentityOfConn(*conn)
		if err != nil {
			return Principal{}, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
		}
		return Principal{Name: id.Name, Role: id.Role, Via: "certificate"}, nil
	}
	if authorization != "" {
		token, ok := strings.CutPrefix(authorization, "Bearer ")
		if !ok || a.Tokens == nil {
			return Principal{}, status.Error(codes.Unauthenticated, "this coordinator accepts only 'authorization: Bearer TOKEN'")
		}
		p, err := a.Tokens.VerifyToken(ctx, token)
		if err != nil {
			return Principal{}, status.Errorf(codes.Unauthenticated, "token refused: %v", err)
		}
		p.Via = "token"
		return p, nil
	}
	if a.Open {
		return Anonymous, nil
	}
	return Principal{}, status.Error(codes.Unauthenticated, "no client certificate or token: pass --token-file (or $WEIR_TOKEN), or --tls-cert and --tls-key")
}

// admit authenticates and authorizes a call of method.
func (a Authenticator) admit(ctx context.Context, pol Policy, method string) (context.Context, error) {
	right, ok := Methods[method]
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "%s is not open to callers", method)
	}
	if right.Public {
		return ctx, nil
	}
	p, err := a.Authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if err := pol.Check(p, shortMethod(method), right); err != nil {
		return nil, err
	}
	return WithPrincipal(ctx, p), nil
}

// shortMethod is "CancelJob" for "/weir.v1.JobService/CancelJob".
func shortMethod(m string) string { return m[strings.LastIndex(m, "/")+1:] }

// ServerOptions are the interceptors that admit every call to a server.
func (a Authenticator) ServerOptions(pol Policy) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := a.admit(ctx, pol, info.FullMethod)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := a.admit(ss.Context(), pol, info.FullMethod)
			if err != nil {
				return err
			}
			return h(srv, &admittedStream{ServerStream: ss, ctx: ctx})
		}),
	}
}

type admittedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *admittedStream) Context() context.Context { return s.ctx }
