// Package pki owns the cluster's certificates: a cluster CA, the certificates
// it issues to coordinators, workers, etcd members and clients, the identity
// the cluster reads back from a peer's certificate, and TLS configurations
// that pick up rotated files without a restart.
//
// An identity is a role and a name, carried in one URI SAN of the form
//
//	weir://<role>/<name>       e.g. weir://worker/worker-1
//
// so it survives any choice of host names, and a certificate names exactly
// one principal. Host names and IP addresses in the certificate (DNS and IP
// SANs) are only for the TLS host check of servers; they never grant a role.
//
// Keys are ECDSA P-256 (stdlib crypto/x509; every TLS stack and etcd accept
// it) and are written with mode 0600.
package pki
