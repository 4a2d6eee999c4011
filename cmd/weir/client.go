package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

const (
	// defaultCoordinator is used when neither --coordinator nor
	// $WEIR_COORDINATOR is set; it is where `weir local` listens.
	defaultCoordinator = "127.0.0.1:7070"
	coordinatorEnv     = "WEIR_COORDINATOR"

	// rpcTimeout bounds every unary call, so a dead coordinator costs the
	// user seconds, not a hang.
	rpcTimeout = 5 * time.Second
	// connectTimeout bounds one connection attempt (TCP and the HTTP/2
	// handshake), shorter than rpcTimeout so that an address that does not
	// answer at all is reported as unreachable rather than as a slow call.
	connectTimeout = 3 * time.Second
	// maxRecvMsgSize allows large job lists: every JobStatus carries its
	// spec and graph.
	maxRecvMsgSize = 64 << 20
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	coordinator string
	tls         tlsFlags
	token       tokenFlags
}

func (f *clientFlags) register(cmd *cobra.Command, s streams) {
	def := s.getenv(coordinatorEnv)
	if def == "" {
		def = defaultCoordinator
	}
	cmd.Flags().StringVar(&f.coordinator, "coordinator", def,
		"coordinator API address host:port, or several comma-separated in any order, each tried when the current one is down ($"+coordinatorEnv+" sets the default)")
	f.tls.register(cmd.Flags(), s)
	f.token.register(cmd.Flags())
}

// dial prepares a connection to the coordinators the flags name.
func (f *clientFlags) dial(s streams) (*client, error) {
	sec, err := clientSecurity(&f.tls, &f.token, s)
	if err != nil {
		return nil, err
	}
	return dial(f.coordinator, sec)
}

// client is a connection to a coordinator's JobService.
type client struct {
	addr string
	conn *grpc.ClientConn
	jobs weirv1.JobServiceClient
	lead *follower
}

// follower sends calls to the leading coordinator when the one dialled is a
// standby: a standby refuses with "the leader is at ADDR", and the call is
// made again there, as are all later ones. So --coordinator may name any
// coordinator of the cluster.
//
// A call the current coordinator cannot answer (Unavailable: dead, or
// partitioned away) is tried on every listed address in turn, in any
// order relative to the leader: the one that answers, or the leader it
// names, takes the later calls. So an attached `weir run` outlives the
// coordinator it started with whichever address listed first.
type follower struct {
	addrs []string // every address listed
	sec   security // how to dial each of them
	mu    sync.Mutex
	conn  *grpc.ClientConn // where calls go once one was redirected or failed over; nil: the dialled one
	at    string           // conn's address, or the dialled one's
	// failed lists the addresses the last call could not reach, for the
	// error message.
	failed []string
}

var leaderAt = regexp.MustCompile(`standby; the leader is at (\S+)$`)

func (f *follower) current() (*grpc.ClientConn, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conn, f.at
}

// unreachable names the coordinators the last call could not reach.
func (f *follower) unreachable() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.failed) == 0 {
		return f.at
	}
	return strings.Join(f.failed, ", ")
}

// leader is the address a standby's refusal names, if err is one.
func leader(err error) (string, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return "", false
	}
	m := leaderAt.FindStringSubmatch(st.Message())
	if m == nil {
		return "", false
	}
	return m[1], true
}

// use makes conn, at addr, the connection for later calls.
func (f *follower) use(conn *grpc.ClientConn, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil && f.conn != conn {
		f.conn.Close()
	}
	f.conn, f.at = conn, addr
}

// call runs one call: on the current coordinator (first, when it is still
// the dialled one), then at the leader a standby names, then on every
// other listed address while none could be reached.
func (f *follower) call(ctx context.Context, first func() error, on func(*grpc.ClientConn) error) error {
	conn, at := f.current()
	var err error
	if conn == nil {
		err = first()
	} else {
		err = on(conn)
	}
	tried := map[string]bool{}
	var failed []string
	// try follows err's redirect, if any; it reports whether the call is
	// settled (answered, or failed for a reason other than reachability).
	try := func(addr string, err error, c *grpc.ClientConn) (error, bool) {
		tried[addr] = true
		if lead, ok := leader(err); ok && !tried[lead] {
			tried[lead] = true
			lc, derr := newConn(lead, f.sec, nil)
			if derr == nil {
				lerr := on(lc)
				if status.Code(lerr) != codes.Unavailable {
					f.use(lc, lead)
					return lerr, true
				}
				lc.Close()
				failed = append(failed, lead)
				return lerr, false
			}
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			if c != nil {
				f.use(c, addr)
			}
			return err, true
		}
		if _, redirect := leader(err); !redirect {
			failed = append(failed, addr)
		}
		return err, false
	}
	defer func() {
		f.mu.Lock()
		f.failed = failed
		f.mu.Unlock()
	}()
	if err, done := try(at, err, nil); done {
		return err
	}
	for _, a := range f.addrs {
		if tried[a] {
			continue
		}
		c, derr := newConn(a, f.sec, nil)
		if derr != nil {
			continue
		}
		aerr := on(c)
		var done bool
		if aerr, done = try(a, aerr, c); done {
			return aerr
		}
		c.Close()
		err = aerr
		if ctx.Err() != nil {
			break
		}
	}
	return err
}

func (f *follower) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return f.call(ctx, func() error { return invoke(ctx, method, req, reply, cc, opts...) },
		func(c *grpc.ClientConn) error { return c.Invoke(ctx, method, req, reply, opts...) })
}

func (f *follower) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if lc, _ := f.current(); lc != nil {
		return lc.NewStream(ctx, desc, method, opts...)
	}
	return streamer(ctx, desc, cc, method, opts...)
}

func (f *follower) close() {
	if lc, _ := f.current(); lc != nil {
		lc.Close()
	}
}

func newConn(addr string, sec security, f *follower) (*grpc.ClientConn, error) {
	opts := append(sec.dialOptions(),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: connectTimeout}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
	)
	if f != nil {
		opts = append(opts, grpc.WithUnaryInterceptor(f.unary), grpc.WithStreamInterceptor(f.stream))
	}
	return grpc.NewClient(addr, opts...)
}

// dial prepares a connection to addr. It does no I/O: the first call
// connects, and reports an unreachable coordinator through rpcError.
func dial(list string, sec security) (*client, error) {
	var addrs []string
	for _, addr := range strings.Split(list, ",") {
		addr = strings.TrimSpace(addr)
		for _, p := range []string{"http://", "grpc://"} {
			addr = strings.TrimPrefix(addr, p)
		}
		if addr = strings.TrimSuffix(addr, "/"); addr != "" {
			addrs = append(addrs, addr)
		}
	}
	if len(addrs) == 0 {
		return nil, usageErrorf("--coordinator is empty")
	}
	addr := addrs[0]
	f := &follower{addrs: addrs, at: addr, sec: sec}
	conn, err := newConn(addr, sec, f)
	if err != nil {
		return nil, usageErrorf("bad coordinator address %q: %v", addr, err)
	}
	return &client{addr: addr, conn: conn, jobs: weirv1.NewJobServiceClient(conn), lead: f}, nil
}

func (c *client) Close() error {
	c.lead.close()
	return c.conn.Close()
}

// unary runs one call with rpcTimeout and turns its error into a message
// for the user.
func unary[Req, Resp any](ctx context.Context, c *client, call func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	resp, err := unaryRaw(ctx, call, req)
	return resp, c.rpcError(ctx, err)
}

// unaryJob is unary for calls about one job: NotFound names the job.
func unaryJob[Req, Resp any](ctx context.Context, c *client, id string, call func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	resp, err := unaryRaw(ctx, call, req)
	if status.Code(err) == codes.NotFound && ctx.Err() == nil {
		return resp, fmt.Errorf("no job %s", id)
	}
	return resp, c.rpcError(ctx, err)
}

func unaryRaw[Req, Resp any](ctx context.Context, call func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	return call(ctx, req)
}

// dialReason extracts the cause from gRPC's transport error text, e.g.
// `connection error: desc = "transport: Error while dialing: dial tcp
// 127.0.0.1:1: connect: connection refused"` gives "connection refused".
var dialPrefix = regexp.MustCompile(`^(?:connection error: desc = "?)?(?:transport: )?(?:Error while dialing:? )?(?:dial \w+ \S+: )?(?:connect: )?`)

func dialReason(msg string) string {
	switch {
	case strings.Contains(msg, "server preface"):
		return "it accepted the connection but did not answer (is it a weir coordinator? if it uses TLS, set --tls-ca)"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "it does not speak TLS (is --tls-ca meant for another cluster?)"
	case strings.Contains(msg, "certificate signed by unknown authority"), strings.Contains(msg, "x509:"):
		return "its certificate is not from the CA given with --tls-ca"
	}
	r := dialPrefix.ReplaceAllString(msg, "")
	r = strings.TrimSuffix(r, `"`)
	if r == "" {
		return msg
	}
	return r
}

// rpcError maps a failed call to a one-line error. ctx is the context the
// call was derived from, to tell the user's interrupt from a timeout.
func (c *client) rpcError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return errInterrupted
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("coordinator at %s: %v", c.addr, err)
	}
	msg := oneLine(st.Message())
	switch st.Code() {
	case codes.Canceled:
		return errInterrupted
	case codes.DeadlineExceeded:
		return fmt.Errorf("coordinator at %s did not answer within %v", c.lead.unreachable(), rpcTimeout)
	case codes.Unavailable:
		// Transport failures carry gRPC's own wording; a coordinator that
		// is up but cannot serve (not the leader, shutting down) sends its
		// own message.
		if strings.Contains(msg, "produced zero addresses") || strings.Contains(msg, "no such host") {
			return fmt.Errorf("cannot reach coordinator at %s: unknown host", c.lead.unreachable())
		}
		if isTransportMessage(msg) {
			return fmt.Errorf("cannot reach coordinator at %s: %s", c.lead.unreachable(), dialReason(msg))
		}
		return errors.New(msg)
	case codes.Unimplemented:
		return fmt.Errorf("coordinator at %s does not support this request (is it an older weir?): %s", c.addr, msg)
	case codes.Internal, codes.Unknown, codes.DataLoss:
		if isTransportMessage(msg) {
			return fmt.Errorf("lost connection to coordinator at %s: %s", c.lead.unreachable(), dialReason(msg))
		}
		return fmt.Errorf("coordinator error: %s", msg)
	default:
		// InvalidArgument, NotFound, FailedPrecondition, AlreadyExists,
		// ResourceExhausted, PermissionDenied...: the server's message is
		// written for the user.
		return errors.New(msg)
	}
}

func isTransportMessage(msg string) bool {
	for _, s := range []string{"connection error", "transport:", "name resolver", "produced zero addresses", "error reading server preface", "connection closed", "dial "} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
