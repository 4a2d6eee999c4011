// Package tokens keeps the cluster's bearer tokens: people and scripts that
// hold no client certificate authenticate with one (weir token create).
//
// A token is "weir_" and 32 random bytes (base64url), shown once at
// creation. etcd holds only its SHA-256, under /weir/tokens/<hex>, with the
// name and role it grants: a token is looked up by its hash, so nothing
// compares secrets byte by byte, and a copy of etcd grants nothing. Tokens
// are random, not chosen by people, so a fast hash is enough.
package tokens
