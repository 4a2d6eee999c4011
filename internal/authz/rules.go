package authz

import "github.com/weir-run/weir/internal/pki"

// The rights methods and routes need.
var (
	View    = Right{Least: pki.RoleViewer}
	Operate = Right{Least: pki.RoleOperator}
	Submit  = Right{Least: pki.RoleSubmitter, Submits: true}
	Admin   = Right{Least: pki.RoleAdmin}
	Worker  = Right{Daemon: pki.RoleWorker}
	Public  = Right{Public: true}
)

// Methods is every gRPC method a coordinator serves and what it needs. A
// method missing here is refused (a test checks the table covers the
// services' descriptors).
var Methods = map[string]Right{
	"/weir.v1.JobService/StatBinary":         Submit,
	"/weir.v1.JobService/UploadBinary":       Submit,
	"/weir.v1.JobService/SubmitJob":          Submit,
	"/weir.v1.JobService/DescribeBinary":     Submit,
	"/weir.v1.JobService/ListJobs":           View,
	"/weir.v1.JobService/GetJob":             View,
	"/weir.v1.JobService/ListWorkers":        View,
	"/weir.v1.JobService/ListCheckpoints":    View,
	"/weir.v1.JobService/CancelJob":          Operate,
	"/weir.v1.JobService/TriggerSavepoint":   Operate,
	"/weir.v1.JobService/Tail":               Operate,
	"/weir.v1.JobService/DeleteJob":          Operate,
	"/weir.v1.JobService/CreateToken":        Admin,
	"/weir.v1.JobService/ListTokens":         Admin,
	"/weir.v1.JobService/RevokeToken":        Admin,
	"/weir.v1.JobService/PurgeJob":           Admin,
	"/weir.v1.JobService/SetSecret":          Submit,
	"/weir.v1.JobService/ListSecrets":        Submit,
	"/weir.v1.JobService/DeleteSecret":       Submit,
	"/weir.v1.JobService/RotateKeys":         Admin,
	"/weir.v1.JobService/ExportJobKey":       Admin,
	"/weir.v1.JobService/ImportJobKey":       Admin,
	"/weir.v1.ClusterService/Connect":        Worker,
	"/weir.v1.ClusterService/DownloadBinary": Worker,
	// Health checks by load balancers and orchestrators.
	"/grpc.health.v1.Health/Check": Public,
	"/grpc.health.v1.Health/Watch": Public,
}
