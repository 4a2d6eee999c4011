// Package deploy holds no code: it owns the tests of the deployment
// artifacts beside it. deploy/image is the one image every role runs,
// deploy/compose the highly available layout on one Docker host,
// deploy/kubernetes the kustomize base and HA overlay, deploy/systemd the
// unit files. Its tests decode every Kubernetes manifest strictly into typed
// objects and check their cross references, verify the units with
// systemd-analyze, and run the compose layout on real containers through a
// worker kill, a leader partition, an etcd member loss and a rolling restart
// (docs/deploy.md).
package deploy
