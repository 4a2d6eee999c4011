package exchange

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// A stream names its channel and proves it belongs to the attempt in its
// request headers (gRPC metadata), which the server reads before it decodes
// any message: a stranger is refused before a byte of its payload is parsed,
// and HTTP/2's header-list limit (ServerOptions) caps what it can send first.
const (
	mdSecret   = "weir-channel-secret"
	mdJob      = "weir-job"
	mdAttempt  = "weir-attempt"
	mdEdge     = "weir-edge"
	mdProducer = "weir-producer"
	mdConsumer = "weir-consumer"

	// maxHeaderListBytes caps a stream's request headers, ours being ~200
	// bytes.
	maxHeaderListBytes = 8 << 10
	// maxConcurrentStreams per connection: one stream per channel between a
	// pair of processes, so a job with several edges at high parallelism
	// needs thousands; more is an attack.
	maxConcurrentStreams = 8192
)

func (n *Network) channelMD(id ChannelID) metadata.MD {
	return metadata.Pairs(
		mdSecret, n.opts.ChannelSecret,
		mdJob, n.jobID,
		mdAttempt, strconv.FormatInt(n.attempt, 10),
		mdEdge, strconv.Itoa(int(id.Edge)),
		mdProducer, strconv.Itoa(int(id.Producer)),
		mdConsumer, strconv.Itoa(int(id.Consumer)),
	)
}

// admit checks a stream's headers: the channel secret first (in constant
// time), then that it is a channel of this job attempt. The error is the
// status to end the stream with; its text holds nothing the peer sent.
func (n *Network) admit(md metadata.MD) (ChannelID, error) {
	one := func(k string) string {
		if v := md.Get(k); len(v) == 1 {
			return v[0]
		}
		return ""
	}
	secret := one(mdSecret)
	if subtle.ConstantTimeCompare([]byte(secret), []byte(n.opts.ChannelSecret)) != 1 {
		return ChannelID{}, status.Error(codes.Unauthenticated, "exchange: stream without this attempt's channel secret")
	}
	if one(mdJob) != n.jobID || one(mdAttempt) != strconv.FormatInt(n.attempt, 10) {
		return ChannelID{}, status.Errorf(codes.PermissionDenied, "exchange: producer of another job or attempt; this process runs job %q attempt %d", n.jobID, n.attempt)
	}
	var id ChannelID
	for _, f := range []struct {
		key string
		dst *int32
	}{{mdEdge, &id.Edge}, {mdProducer, &id.Producer}, {mdConsumer, &id.Consumer}} {
		v, err := strconv.ParseInt(one(f.key), 10, 32)
		if err != nil || v < 0 {
			return ChannelID{}, status.Errorf(codes.InvalidArgument, "exchange: bad or missing %s header", f.key)
		}
		*f.dst = int32(v)
	}
	return id, nil
}

// refusalLog logs refused streams at most once per peer per interval, so a
// peer that hammers the port cannot fill the disk. It logs the peer's
// address and our reason, never what the peer sent.
type refusalLog struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
	// suppressed counts refusals not logged since the peer's last line.
	suppressed map[string]int
}

// maxRefusalPeers bounds the log's memory under a flood from many addresses.
const maxRefusalPeers = 1024

func newRefusalLog(log *slog.Logger, interval time.Duration) *refusalLog {
	return &refusalLog{log: log, interval: interval, now: time.Now,
		last: make(map[string]time.Time), suppressed: make(map[string]int)}
}

func (r *refusalLog) refused(p *peer.Peer, err error) {
	addr := "unknown"
	if p != nil && p.Addr != nil {
		addr = p.Addr.String()
	}
	now := r.now()
	r.mu.Lock()
	last, seen := r.last[addr]
	if seen && now.Sub(last) < r.interval {
		r.suppressed[addr]++
		r.mu.Unlock()
		return
	}
	if len(r.last) >= maxRefusalPeers {
		for k, t := range r.last {
			if now.Sub(t) >= r.interval {
				delete(r.last, k)
				delete(r.suppressed, k)
			}
		}
		if len(r.last) >= maxRefusalPeers {
			r.mu.Unlock()
			return // flooded from too many addresses: drop the line
		}
	}
	n := r.suppressed[addr]
	r.last[addr] = now
	delete(r.suppressed, addr)
	r.mu.Unlock()
	r.log.Warn("exchange: refused stream", "peer", addr, "reason", status.Convert(err).Message(),
		"refused_since_last_line", n, "next_line_after", fmt.Sprint(r.interval))
}
