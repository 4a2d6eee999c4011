package authz

import "github.com/weir-run/weir/internal/pki"

var (
	view    = Right{Least: pki.RoleViewer}
	operate = Right{Least: pki.RoleOperator}
	submit  = Right{Least: pki.RoleSubmitter, Submits: true}
	admin   = Right{Least: pki.RoleAdmin}
	worker  = Right{Daemon: pki.RoleWorker}
	public  = Right{Public: true}
)

// Methods is every gRPC method a coordinator serves and what it needs. A
// method missing here is refused (a test checks the table covers the
// services' descriptors).
var Methods = map[string]Right{
	"/weir.v1.JobService/StatBinary":         submit,
	"/weir.v1.JobService/UploadBinary":       submit,
	"/weir.v1.JobService/SubmitJob":          submit,
	"/weir.v1.JobService/ListJobs":           view,
	"/weir.v1.JobService/GetJob":             view,
	"/weir.v1.JobService/ListWorkers":        view,
	"/weir.v1.JobService/ListCheckpoints":    view,
	"/weir.v1.JobService/CancelJob":          operate,
	"/weir.v1.JobService/TriggerSavepoint":   operate,
	"/weir.v1.JobService/Tail":               operate,
	"/weir.v1.JobService/CreateToken":        admin,
	"/weir.v1.JobService/ListTokens":         admin,
	"/weir.v1.JobService/RevokeToken":        admin,
	"/weir.v1.ClusterService/Connect":        worker,
	"/weir.v1.ClusterService/DownloadBinary": worker,
	// Health checks by load balancers and orchestrators.
	"/grpc.health.v1.Health/Check": public,
	"/grpc.health.v1.Health/Watch": public,
}
