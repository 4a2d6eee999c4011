// Package e2e holds the end-to-end tests: they build the weir binary and the
// example jobs, start real clusters (weir local, or weir etcd + coordinator +
// workers as separate processes) and use them only through the CLI, as a
// user would. It contains no production code.
package e2e
