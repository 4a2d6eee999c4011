package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weir-run/weir/internal/authz"
	"github.com/weir-run/weir/internal/etcdkeys"
	"github.com/weir-run/weir/internal/pki"
)

// prefix marks weir tokens, so a leaked one is recognisable (and secret
// scanners can be taught it).
const prefix = "weir_"

// cacheFor is how long a verified token is trusted without asking etcd
// again: a revoked token stops working within this time.
const cacheFor = 5 * time.Second

// Info is what etcd holds about a token.
type Info struct {
	Name      string   `json:"name"`
	Role      pki.Role `json:"role"`
	CreatedMs int64    `json:"created_unix_ms"`
	authz.Quota
}

// Store keeps tokens in etcd.
type Store struct {
	kv  clientv3.KV
	now func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	p     authz.Principal
	until time.Time
}

// NewStore returns a Store over kv.
func NewStore(kv clientv3.KV) *Store {
	return &Store{kv: kv, now: time.Now, cache: make(map[string]cached)}
}

// ErrUnknown means the token is not (or no longer) known.
var ErrUnknown = errors.New("unknown or revoked token")

func key(token string) string {
	sum := sha256.Sum256([]byte(token))
	return etcdkeys.Tokens + hex.EncodeToString(sum[:])
}

// Create makes a token granting role to name and returns it; it is never
// shown again. Names are unique: revoke the old token first.
func (s *Store) Create(ctx context.Context, name string, role pki.Role, quota authz.Quota) (string, error) {
	if err := pki.CheckName(name); err != nil {
		return "", err
	}
	if quota.MaxJobs < 0 || quota.MaxSlots < 0 {
		return "", errors.New("a token's quotas are 0 (no limit) or more")
	}
	switch role {
	case pki.RoleViewer, pki.RoleOperator, pki.RoleSubmitter, pki.RoleAdmin:
	default:
		return "", fmt.Errorf("a token's role is viewer, operator, submitter or admin, not %q", role)
	}
	all, err := s.list(ctx)
	if err != nil {
		return "", err
	}
	for _, in := range all {
		if in.Name == name {
			return "", fmt.Errorf("a token named %q exists; revoke it first (weir token revoke %s)", name, name)
		}
	}
	b := make([]byte, 32)
	rand.Read(b)
	token := prefix + base64.RawURLEncoding.EncodeToString(b)
	v, _ := json.Marshal(Info{Name: name, Role: role, CreatedMs: s.now().UnixMilli(), Quota: quota})
	if _, err := s.kv.Put(ctx, key(token), string(v)); err != nil {
		return "", fmt.Errorf("store the token in etcd: %w", err)
	}
	return token, nil
}

// VerifyToken resolves token to its principal (authz.TokenVerifier).
func (s *Store) VerifyToken(ctx context.Context, token string) (authz.Principal, error) {
	if !strings.HasPrefix(token, prefix) || len(token) > 100 {
		return authz.Principal{}, ErrUnknown
	}
	k := key(token)
	now := s.now()
	s.mu.Lock()
	c, ok := s.cache[k]
	s.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.p, nil
	}
	resp, err := s.kv.Get(ctx, k)
	if err != nil {
		return authz.Principal{}, fmt.Errorf("cannot check the token: etcd: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return authz.Principal{}, ErrUnknown
	}
	var in Info
	if err := json.Unmarshal(resp.Kvs[0].Value, &in); err != nil {
		return authz.Principal{}, fmt.Errorf("token record: %w", err)
	}
	p := authz.Principal{Name: in.Name, Role: in.Role, Via: "token", Quota: in.Quota}
	s.mu.Lock()
	if len(s.cache) > 10000 {
		clear(s.cache) // bounded: a cache miss costs one etcd read
	}
	s.cache[k] = cached{p: p, until: now.Add(cacheFor)}
	s.mu.Unlock()
	return p, nil
}

// Revoke deletes name's token. It stops working everywhere within 5 s.
func (s *Store) Revoke(ctx context.Context, name string) error {
	resp, err := s.kv.Get(ctx, etcdkeys.Tokens, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	for _, kv := range resp.Kvs {
		var in Info
		if json.Unmarshal(kv.Value, &in) == nil && in.Name == name {
			if _, err := s.kv.Delete(ctx, string(kv.Key)); err != nil {
				return fmt.Errorf("etcd: %w", err)
			}
			s.mu.Lock()
			delete(s.cache, string(kv.Key))
			s.mu.Unlock()
			return nil
		}
	}
	return fmt.Errorf("no token named %q", name)
}

// List returns the tokens' names and roles (never the tokens), by name.
func (s *Store) List(ctx context.Context) ([]Info, error) {
	all, err := s.list(ctx)
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all, err
}

func (s *Store) list(ctx context.Context) ([]Info, error) {
	resp, err := s.kv.Get(ctx, etcdkeys.Tokens, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	out := make([]Info, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var in Info
		if json.Unmarshal(kv.Value, &in) == nil {
			out = append(out, in)
		}
	}
	return out, nil
}
