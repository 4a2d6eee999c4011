// Package etcdserver owns weir's embedded etcd member: turning a small
// weir-shaped Config into go.etcd.io/etcd/server/v3/embed settings, starting
// the member and waiting until it serves, reporting the client endpoints it
// really listens on, and shutting it down.
//
// It is used by `weir etcd` (a standalone node, or one member of a 3-member
// cluster) and by `weir local` (in-process, next to the coordinator). It knows
// nothing about what weir stores in etcd; the election and the fenced metadata
// store live in coordinator/leader.
//
// etcd's own zap logs are bridged into the caller's *slog.Logger, at error
// level unless Config.LogLevel says otherwise: a healthy member is chatty, and
// its info logs drown weir's.
package etcdserver
