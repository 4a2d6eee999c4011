// Package etcdkeys owns the layout of weir's keys in etcd and the observation
// of the leading coordinator (CurrentLeader, Watch), which followers, workers
// and CLIs share; workers may not import coordinator packages. Campaigning and
// fenced writes are coordinator/leader's.
//
//	/weir/leader/<lease>   election candidates; the oldest holds the leader's API address
//	/weir/jobs/<id>        JobStatus records (protobuf), written fenced by the leader
//	/weir/checkpoints/<job>/<id>  completed checkpoints (CheckpointInfo)
//	/weir/checkpoint-ids/<job>    the job's checkpoint id counter
//	/weir/workers/<id>     a worker's liveness key, under its own lease
//	/weir/tokens/<sha256>  a bearer token's name and role (internal/tokens)
//	/weir/cluster-secret   the key attempts' data-channel secrets derive from
//	/weir/job-keys/<id>    a job's data key, wrapped by the KEK, or its purge tombstone (internal/sealing)
//	/weir/secrets/<name>   a secret for jobs, wrapped by the KEK (weir secret set)
package etcdkeys

import "errors"

const (
	// Election is the prefix coordinators campaign on. Only candidate keys
	// may live under it: every key there counts as a candidate.
	Election = "/weir/leader"
	// Jobs prefixes the job records.
	Jobs = "/weir/jobs/"
	// Checkpoints prefixes completed checkpoints: /weir/checkpoints/<job>/<id>.
	Checkpoints = "/weir/checkpoints/"
	// CheckpointIDs prefixes each job's checkpoint id counter, which never
	// goes backwards, across leaders.
	CheckpointIDs = "/weir/checkpoint-ids/"
	// Workers prefixes the workers' liveness keys. Each worker writes its
	// own under a lease it keeps alive (TTL: the leader's worker timeout),
	// so the key exists exactly while the worker is alive and reaches etcd.
	// Workers write them unfenced: they are facts about workers, not
	// decisions of a leader.
	Workers = "/weir/workers/"
	// Coordinators holds each coordinator's addresses under its own lease,
	// for the status page's list of coordinators.
	Coordinators = "/weir/coordinators/"
	// Tokens prefixes the bearer tokens, each under the SHA-256 of the
	// token itself.
	Tokens = "/weir/tokens/"
	// ClusterSecret holds 32 random bytes, made by the first leader: each
	// attempt's data-channel secret is an HMAC of it, so every leader
	// derives the same secret for a running attempt and no job record
	// (which the API shows) carries one.
	ClusterSecret = "/weir/cluster-secret"
	// JobKeys prefixes each job's data key, wrapped by the cluster's KEK
	// (weirv1.StoredJobKey). Purging a job overwrites it with a tombstone:
	// the only copy of the key is gone, and so is every copy of the job's
	// state.
	JobKeys = "/weir/job-keys/"
	// Secrets prefixes the named secrets jobs may read (weirv1.StoredSecret),
	// each value wrapped by the cluster's KEK.
	Secrets = "/weir/secrets/"
)

// ErrNoLeader means no coordinator currently leads.
var ErrNoLeader = errors.New("etcdkeys: no leader elected")
