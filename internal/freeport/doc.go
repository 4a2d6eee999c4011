// Package freeport owns picking TCP ports for processes that must know
// their address before they bind it: etcd members advertising their URLs
// to each other, and the daemons tests and benchmarks start. A port is
// free only until its owner binds it, so two owners asking at nearly the
// same time could be given the same one; freeport never hands a port out
// twice in a process.
package freeport
