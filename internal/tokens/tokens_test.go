package tokens

import (
	"github.com/weir-run/weir/internal/authz"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/etcdtest"
	"github.com/weir-run/weir/internal/pki"
)

func TestCreateVerifyRevoke(t *testing.T) {
	cli := etcdtest.Start(t)
	ctx := t.Context()
	s := NewStore(cli)
	now := time.Now()
	s.now = func() time.Time { return now }

	tok, err := s.Create(ctx, "ci", pki.RoleOperator, authz.Quota{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "weir_") || len(tok) < 40 {
		t.Fatalf("token %q", tok)
	}
	p, err := s.VerifyToken(ctx, tok)
	if err != nil || p.Name != "ci" || p.Role != pki.RoleOperator || p.Via != "token" {
		t.Fatalf("VerifyToken = %+v, %v", p, err)
	}
	// etcd holds the hash only.
	resp, err := cli.Get(ctx, etcdkeys.Tokens, clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("etcd holds %v, %v", resp, err)
	}
	if strings.Contains(string(resp.Kvs[0].Key)+string(resp.Kvs[0].Value), tok[5:]) {
		t.Fatal("etcd holds the token itself")
	}

	for _, bad := range []string{"", "weir_", tok + "x", strings.ToUpper(tok), "Bearer " + tok, tok[:len(tok)-1]} {
		if _, err := s.VerifyToken(ctx, bad); err == nil {
			t.Errorf("VerifyToken(%q) succeeded", bad)
		}
	}
	if _, err := s.Create(ctx, "ci", pki.RoleViewer, authz.Quota{}); err == nil || !strings.Contains(err.Error(), "revoke it first") {
		t.Errorf("a second token named ci: %v", err)
	}
	for _, role := range []pki.Role{pki.RoleWorker, pki.RoleCoordinator, pki.RoleClient, "root"} {
		if _, err := s.Create(ctx, "x", role, authz.Quota{}); err == nil {
			t.Errorf("created a token with role %s", role)
		}
	}
	if _, err := s.Create(ctx, "bad name", pki.RoleViewer, authz.Quota{}); err == nil {
		t.Error("created a token with a bad name")
	}

	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "ci" {
		t.Fatalf("List = %+v, %v", list, err)
	}

	// Revoked: this store forgets it at once, another within cacheFor.
	other := NewStore(cli)
	other.now = s.now
	if _, err := other.VerifyToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyToken(ctx, tok); err == nil {
		t.Error("the revoking store still accepts the token")
	}
	now = now.Add(cacheFor)
	if _, err := other.VerifyToken(ctx, tok); err == nil {
		t.Error("another store accepts a revoked token after the cache time")
	}
	if err := s.Revoke(ctx, "ci"); err == nil {
		t.Error("revoked a token twice")
	}
}
