package coordinator

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weir-run/weir/internal/etcdkeys"
	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// Secrets for jobs: a value set once (weir secret set NAME), stored in etcd
// only encrypted by the cluster's KEK, and handed to the processes of the
// jobs submitted with --secret NAME in their assignment, never in an
// argument, an environment variable or a file. The API gives names and
// dates back, never values.

// maxSecretBytes bounds a secret: credentials and certificates, not data.
const maxSecretBytes = 64 << 10

var secretName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`)

func checkSecretName(name string) error {
	if !secretName.MatchString(name) {
		return status.Errorf(codes.InvalidArgument, "secret name %q: want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

func (s *jobService) SetSecret(ctx context.Context, r *weirv1.SetSecretRequest) (*weirv1.SetSecretResponse, error) {
	if err := checkSecretName(r.Name); err != nil {
		return nil, err
	}
	switch {
	case s.c.kek == nil:
		return nil, status.Error(codes.FailedPrecondition, "secrets are stored encrypted by the cluster's key-encryption key, and this coordinator has none (--kek)")
	case len(r.Value) == 0:
		return nil, status.Errorf(codes.InvalidArgument, "secret %s: empty value", r.Name)
	case len(r.Value) > maxSecretBytes:
		return nil, status.Errorf(codes.InvalidArgument, "secret %s: %d bytes, more than %d", r.Name, len(r.Value), maxSecretBytes)
	}
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	wrapped, err := s.c.kek.Encrypt(ctx, r.Value, "secret "+r.Name)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", oneLine(err))
	}
	rec, _ := proto.Marshal(&weirv1.StoredSecret{Wrapped: wrapped, UpdatedUnixMs: time.Now().UnixMilli(),
		UpdatedBy: principalName(ctx), SizeBytes: int64(len(r.Value))})
	_, existed, err := st.store.Get(ctx, etcdkeys.Secrets+r.Name)
	if err == nil {
		err = st.store.Put(ctx, etcdkeys.Secrets+r.Name, rec)
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "store secret %s: %v", r.Name, oneLine(err))
	}
	st.logger.Info("secret set", "secret", r.Name, "by", principalName(ctx), "replaced", existed)
	return &weirv1.SetSecretResponse{Replaced: existed}, nil
}

func (s *jobService) ListSecrets(ctx context.Context, _ *weirv1.ListSecretsRequest) (*weirv1.ListSecretsResponse, error) {
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := st.store.List(ctx, etcdkeys.Secrets)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "list secrets: %v", oneLine(err))
	}
	resp := &weirv1.ListSecretsResponse{}
	for key, b := range recs {
		var rec weirv1.StoredSecret
		if proto.Unmarshal(b, &rec) != nil {
			continue
		}
		resp.Secrets = append(resp.Secrets, &weirv1.SecretInfo{Name: strings.TrimPrefix(key, etcdkeys.Secrets),
			UpdatedUnixMs: rec.UpdatedUnixMs, UpdatedBy: rec.UpdatedBy, SizeBytes: rec.SizeBytes})
	}
	sort.Slice(resp.Secrets, func(i, j int) bool { return resp.Secrets[i].Name < resp.Secrets[j].Name })
	return resp, nil
}

func (s *jobService) DeleteSecret(ctx context.Context, r *weirv1.DeleteSecretRequest) (*weirv1.DeleteSecretResponse, error) {
	if err := checkSecretName(r.Name); err != nil {
		return nil, err
	}
	st, err := s.c.leading(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok, err := st.store.Get(ctx, etcdkeys.Secrets+r.Name); err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", oneLine(err))
	} else if !ok {
		return nil, status.Errorf(codes.NotFound, "no secret %s", r.Name)
	}
	if err := st.store.Delete(ctx, etcdkeys.Secrets+r.Name); err != nil {
		return nil, status.Errorf(codes.Unavailable, "delete secret %s: %v", r.Name, oneLine(err))
	}
	st.logger.Info("secret deleted", "secret", r.Name, "by", principalName(ctx))
	return &weirv1.DeleteSecretResponse{}, nil
}

// errNoSecret is a job's secret that does not exist.
var errNoSecret = errors.New("no such secret")

// loadSecrets reads and decrypts the secrets names, for a job's
// processes.
func (c *Coordinator) loadSecrets(ctx context.Context, names []string) (map[string][]byte, error) {
	if len(names) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, jobKeyTimeout)
	defer cancel()
	out := make(map[string][]byte, len(names))
	for _, name := range names {
		if err := checkSecretName(name); err != nil {
			return nil, err
		}
		resp, err := c.etcd.Get(ctx, etcdkeys.Secrets+name)
		if err != nil {
			return nil, fmt.Errorf("read secret %s: %w", name, err)
		}
		if len(resp.Kvs) == 0 {
			return nil, fmt.Errorf("secret %s: %w (weir secret set %s)", name, errNoSecret, name)
		}
		if c.kek == nil {
			return nil, fmt.Errorf("secret %s: this coordinator has no key-encryption key (--kek) to decrypt it", name)
		}
		var rec weirv1.StoredSecret
		if err := proto.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
		v, err := c.kek.Decrypt(ctx, rec.Wrapped, "secret "+name)
		if err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, nil
}
