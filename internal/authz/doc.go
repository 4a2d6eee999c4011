// Package authz decides who may call what: it turns a caller's verified
// client certificate or bearer token into a Principal and checks it against
// one table of rights per gRPC method and HTTP route. The gRPC interceptors
// and the HTTP middleware here are the one place a request is admitted;
// handlers behind them trust the Principal in their context.
//
// Rights grow with the role: viewer (list and read), operator (+ cancel,
// stop, savepoints, tail: tail shows data, so it is not a viewer's),
// submitter (+ upload and run), admin (+ tokens). The cluster's own
// processes have their own roles: a worker may connect as a worker and
// fetch binaries, nothing else.
//
// DataService (job process to job process) and TaskService (a worker's job
// processes) authenticate on their own, with the attempt's channel secret
// and the process token, and are outside this table.
package authz
