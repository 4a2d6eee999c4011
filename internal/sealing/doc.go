// Package sealing owns encryption at rest: the cluster's key-encryption key
// (KEK), each job's data key, and the sealing of every object a job writes
// to the store.
//
// Envelope encryption. At submit the leader makes a job a data key
// (JobKey: two Tink keysets, one streaming AEAD and one PRF), wraps it with
// the KEK and stores only the wrapped form in etcd (etcdkeys.JobKey). The
// KEK comes from gocloud.dev/secrets — a local key file for one machine, a
// cloud KMS in production — and never leaves the coordinators: the leader
// unwraps a job's key and hands it to the job's processes with their
// assignment, over the authenticated control streams.
//
// Objects. Every object of a checkpoint or savepoint (Pebble tables, other
// state files, manifests) is written through JobKey.Seal: Tink's
// AES-256-GCM-HKDF streaming AEAD, in 4 KiB segments, each authenticated
// with its index and a last-segment flag, under a key derived per object,
// with the object's key in the store as associated data. A flipped byte, a
// truncated object or an object copied to another key fails to open with
// ErrAuthentication naming the object. Content-addressed tables are named
// by a keyed hash of their plaintext (JobKey.ContentName), so equal files
// of two jobs do not reveal each other.
//
// Crypto-shredding. Purging a job replaces its wrapped key in etcd with a
// tombstone: every copy of its objects, backups included, is then
// unreadable by anyone.
//
// A nil *JobKey seals nothing: the same code paths serve a cluster without
// a KEK (--kek none), whose objects are plaintext as before.
package sealing
