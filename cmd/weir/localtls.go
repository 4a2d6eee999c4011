package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/weir-run/weir/internal/pki"
)

// localCerts is the throwaway CA of `weir local --tls` and the certificates
// it issues: one per part of the local cluster and one for its user.
type localCerts struct {
	dir string
}

// Names of the local cluster's certificates.
const (
	localEtcdCert  = "local-etcd"
	localCoordCert = "local-coordinator"
	localUserCert  = "local-admin"
)

// ensureLocalCerts makes dir/certs's CA and certificates, keeping those a
// previous run made, so that a restarted weir local keeps its identities.
func ensureLocalCerts(dataDir string, workers []string) (localCerts, error) {
	c := localCerts{dir: filepath.Join(dataDir, "certs")}
	if _, err := os.Stat(filepath.Join(c.dir, pki.CAFile)); errors.Is(err, fs.ErrNotExist) {
		if err := pki.InitCA(c.dir, 10*8760*time.Hour, time.Now()); err != nil {
			return c, err
		}
	}
	want := []pki.Identity{{Role: pki.RoleEtcd, Name: localEtcdCert}, {Role: pki.RoleCoordinator, Name: localCoordCert},
		{Role: pki.RoleClient, Name: localUserCert}}
	for _, w := range workers {
		want = append(want, pki.Identity{Role: pki.RoleWorker, Name: w})
	}
	for _, id := range want {
		if _, err := os.Stat(pki.CertFile(c.dir, id.Name)); err == nil {
			continue
		}
		if err := pki.Issue(c.dir, pki.IssueRequest{Identity: id, Valid: 8760 * time.Hour}, time.Now()); err != nil {
			return c, fmt.Errorf("weir local --tls: %w", err)
		}
	}
	return c, nil
}

func (c localCerts) files(name string) pki.Files {
	return pki.Files{CA: filepath.Join(c.dir, pki.CAFile), Cert: pki.CertFile(c.dir, name), Key: pki.KeyFile(c.dir, name)}
}

func (c localCerts) source(name string) (*pki.Source, error) {
	return pki.NewSource(c.files(name))
}
