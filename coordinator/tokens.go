package coordinator

import (
	"context"
	"github.com/weir-run/weir/internal/authz"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weir-run/weir/internal/pki"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// Token management: any coordinator serves it (tokens live in etcd, not in
// the leader's state), admins only (internal/authz).

func (s *jobService) CreateToken(ctx context.Context, r *weirv1.CreateTokenRequest) (*weirv1.CreateTokenResponse, error) {
	if err := s.c.tokensKept(); err != nil {
		return nil, err
	}
	role, err := pki.ParseRole(r.Role)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	tok, err := s.c.tokens.Create(ctx, r.Name, role, authz.Quota{MaxJobs: int(r.MaxJobs), MaxSlots: int(r.MaxSlots)})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s.c.logger.Info("token created", "name", r.Name, "role", role, "by", principalName(ctx))
	return &weirv1.CreateTokenResponse{Token: tok}, nil
}

func (s *jobService) ListTokens(ctx context.Context, _ *weirv1.ListTokensRequest) (*weirv1.ListTokensResponse, error) {
	if err := s.c.tokensKept(); err != nil {
		return nil, err
	}
	all, err := s.c.tokens.List(ctx)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	resp := &weirv1.ListTokensResponse{}
	for _, in := range all {
		resp.Tokens = append(resp.Tokens, &weirv1.TokenInfo{Name: in.Name, Role: string(in.Role), CreatedUnixMs: in.CreatedMs,
			MaxJobs: int32(in.MaxJobs), MaxSlots: int32(in.MaxSlots)})
	}
	return resp, nil
}

func (s *jobService) RevokeToken(ctx context.Context, r *weirv1.RevokeTokenRequest) (*weirv1.RevokeTokenResponse, error) {
	if err := s.c.tokensKept(); err != nil {
		return nil, err
	}
	if err := s.c.tokens.Revoke(ctx, r.Name); err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	s.c.logger.Info("token revoked", "name", r.Name, "by", principalName(ctx))
	return &weirv1.RevokeTokenResponse{}, nil
}

// tokensKept says whether the coordinator has its token store (Run makes
// it; test harnesses may not).
func (c *Coordinator) tokensKept() error {
	if c.tokens == nil {
		return status.Error(codes.Unavailable, "this coordinator keeps no tokens")
	}
	return nil
}
