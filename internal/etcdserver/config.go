package etcdserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/weir-run/weir/internal/pki"
)

// Defaults applied by Start and Validate to zero fields of Config.
const (
	DefaultName      = "default"
	DefaultClientURL = "http://127.0.0.1:2379"
	DefaultPeerURL   = "http://127.0.0.1:2380"

	ClusterStateNew      = "new"
	ClusterStateExisting = "existing"
)

// ErrInvalidConfig is wrapped by every error Validate returns. It is fatal:
// retrying with the same Config cannot succeed.
var ErrInvalidConfig = errors.New("etcdserver: invalid config")

// Config describes one etcd member. Zero fields take the defaults above.
type Config struct {
	// Name is the member name, unique within the cluster. Default "default".
	Name string
	// DataDir holds the member's WAL and snapshots. Required: a member that
	// silently wrote into the working directory would lose the cluster's
	// metadata on the next deploy.
	DataDir string
	// ClientURL is where clients connect, e.g. "http://127.0.0.1:2379"; a bare
	// "127.0.0.1:2379" means http. Port 0 picks a free port (see
	// Server.ClientEndpoints). A host name is advertised as given and the
	// member listens on all interfaces for it, since etcd binds only to IPs.
	ClientURL string
	// PeerURL is where other members connect, as for ClientURL. If empty it
	// is taken from this member's entry in InitialCluster, else
	// DefaultPeerURL. Port 0 is allowed only for a single node without an
	// InitialCluster: other members could not know the port.
	PeerURL string
	// InitialCluster lists every member as "name=peerURL,..." when
	// bootstrapping a cluster. Empty means a single node Name=PeerURL.
	InitialCluster string
	// ClusterState is "new" (default) to bootstrap, or "existing" to join a
	// running cluster after `member add`. It is ignored once DataDir holds
	// a member.
	ClusterState string
	// Logger receives etcd's own logs; nil discards them.
	Logger *slog.Logger
	// TLS, when set, serves clients and peers over TLS with client
	// certificates from the cluster CA required on both, and admits only
	// certificates of the cluster's own processes (pki.DaemonNames): a
	// person's certificate, whatever its role, cannot touch etcd. URLs
	// become https.
	TLS *pki.Files
	// InsecurePlaintext allows plaintext beyond loopback.
	InsecurePlaintext bool
	// LogLevel is the least severe of etcd's logs passed to Logger; nil
	// means slog.LevelError, because etcd logs routine events at info and
	// warn (peer reconnects, slow applies) that bury weir's own logs.
	LogLevel slog.Leveler
}

// Validate reports whether Start could start a member from c, after
// defaults. It does no I/O: a port in use is found only by Start.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

// resolved is a validated Config in the shape embed wants.
type resolved struct {
	name    string
	dataDir string
	state   string

	clientListen, clientAdvertise url.URL
	peerListen, peerAdvertise     url.URL
	tls                           *pki.Files

	// initialCluster is empty for a single node; it is filled in from
	// peerAdvertise once a port 0 has been replaced by a real port.
	initialCluster string
}

func (c Config) resolve() (resolved, error) {
	r := resolved{name: c.Name, dataDir: c.DataDir, state: c.ClusterState, tls: c.TLS}
	if r.name == "" {
		r.name = DefaultName
	}
	if strings.ContainsAny(r.name, "=, \t\n") {
		return r, fmt.Errorf("%w: name %q contains '=', ',' or white space", ErrInvalidConfig, r.name)
	}
	if r.dataDir == "" {
		return r, fmt.Errorf("%w: data dir is required", ErrInvalidConfig)
	}
	switch r.state {
	case "":
		r.state = ClusterStateNew
	case ClusterStateNew, ClusterStateExisting:
	default:
		return r, fmt.Errorf("%w: cluster state %q is neither %q nor %q", ErrInvalidConfig, r.state, ClusterStateNew, ClusterStateExisting)
	}

	clientURL := c.ClientURL
	if clientURL == "" {
		clientURL = DefaultClientURL
	}
	client, err := parseURL(clientURL)
	if err != nil {
		return r, fmt.Errorf("%w: client URL: %w", ErrInvalidConfig, err)
	}
	r.clientListen, r.clientAdvertise = listenURL(client), advertiseURL(client)

	var selfURLs []url.URL
	if c.InitialCluster != "" {
		members, err := parseCluster(c.InitialCluster)
		if err != nil {
			return r, fmt.Errorf("%w: initial cluster: %w", ErrInvalidConfig, err)
		}
		var parts []string
		for _, m := range members {
			if m.name == r.name {
				selfURLs = append(selfURLs, m.url)
			}
			parts = append(parts, m.name+"="+m.url.String())
		}
		if len(selfURLs) == 0 {
			return r, fmt.Errorf("%w: initial cluster %q has no member named %q", ErrInvalidConfig, c.InitialCluster, r.name)
		}
		r.initialCluster = strings.Join(parts, ",")
	} else if r.state == ClusterStateExisting {
		return r, fmt.Errorf("%w: joining an existing cluster needs its members in initial cluster", ErrInvalidConfig)
	}

	var peer url.URL
	switch {
	case c.PeerURL != "":
		if peer, err = parseURL(c.PeerURL); err != nil {
			return r, fmt.Errorf("%w: peer URL: %w", ErrInvalidConfig, err)
		}
	case len(selfURLs) > 0:
		peer = selfURLs[0]
	default:
		peer, _ = parseURL(DefaultPeerURL)
	}
	if len(selfURLs) > 0 {
		found := false
		for _, u := range selfURLs {
			found = found || u == peer
		}
		if !found {
			return r, fmt.Errorf("%w: peer URL %s is not %q's URL in initial cluster %q", ErrInvalidConfig, peer.String(), r.name, c.InitialCluster)
		}
		if peer.Port() == "0" {
			return r, fmt.Errorf("%w: peer URL %s: port 0 needs a single node without initial cluster, other members could not find it", ErrInvalidConfig, peer.String())
		}
		if ip := net.ParseIP(peer.Hostname()); ip != nil && ip.IsUnspecified() {
			return r, fmt.Errorf("%w: peer URL %s: other members cannot dial an unspecified address", ErrInvalidConfig, peer.String())
		}
	}
	r.peerListen, r.peerAdvertise = listenURL(peer), advertiseURL(peer)
	if r.clientListen.Host == r.peerListen.Host && peer.Port() != "0" {
		return r, fmt.Errorf("%w: client and peer URLs share %s", ErrInvalidConfig, r.clientListen.Host)
	}
	for _, l := range []struct{ flag, addr string }{{"--client", r.clientListen.Host}, {"--peer", r.peerListen.Host}} {
		if err := pki.CheckListen(l.flag, l.addr, c.TLS != nil, c.InsecurePlaintext); err != nil {
			return r, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if c.TLS != nil {
		if c.TLS.CA == "" || c.TLS.Cert == "" || c.TLS.Key == "" {
			return r, fmt.Errorf("%w: TLS needs --tls-ca, --tls-cert and --tls-key", ErrInvalidConfig)
		}
		for _, u := range []*url.URL{&r.clientListen, &r.clientAdvertise, &r.peerListen, &r.peerAdvertise} {
			u.Scheme = "https"
		}
		r.initialCluster = strings.ReplaceAll(r.initialCluster, "http://", "https://")
	}
	return r, nil
}

type member struct {
	name string
	url  url.URL
}

func parseCluster(s string) ([]member, error) {
	var out []member
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		name, raw, ok := strings.Cut(part, "=")
		if !ok || name == "" || raw == "" {
			return nil, fmt.Errorf("entry %q is not name=peerURL", part)
		}
		u, err := parseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("member %q: %w", name, err)
		}
		out = append(out, member{name: name, url: u})
	}
	return out, nil
}

// parseURL accepts "http://host:port" and bare "host:port". TLS and unix
// sockets are not offered: weir's etcd listens on a private network or
// loopback, and a scheme we would silently serve as plain http is worse
// than a refusal.
func parseURL(s string) (url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return url.URL{}, err
	}
	if u.Scheme != "http" {
		return url.URL{}, fmt.Errorf("%q: scheme %q is not supported, use http", s, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return url.URL{}, fmt.Errorf("%q: want only scheme, host and port", s)
	}
	host, p, err := net.SplitHostPort(u.Host)
	if err != nil {
		return url.URL{}, fmt.Errorf("%q: %w", s, err)
	}
	if host == "" {
		return url.URL{}, fmt.Errorf("%q: missing host", s)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return url.URL{}, fmt.Errorf("%q: bad port %q", s, p)
	}
	return url.URL{Scheme: "http", Host: u.Host}, nil
}

// listenURL is the address to bind for u. etcd binds only to IPs, so a host
// name (as in a Kubernetes StatefulSet) binds all interfaces on its port.
func listenURL(u url.URL) url.URL {
	h := u.Hostname()
	if h == "localhost" || net.ParseIP(h) != nil {
		return u
	}
	u.Host = net.JoinHostPort("0.0.0.0", u.Port())
	return u
}

// advertiseURL is the address others are told to dial for u. An unspecified
// IP cannot be dialled, so a member bound to all interfaces advertises
// loopback; a multi-member cluster is refused such a peer URL in resolve.
func advertiseURL(u url.URL) url.URL {
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
		lo := "127.0.0.1"
		if ip.To4() == nil {
			lo = "::1"
		}
		u.Host = net.JoinHostPort(lo, u.Port())
	}
	return u
}
