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
	"google.golang.org/grpc/credentials/insecure"
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
}

func (f *clientFlags) register(cmd *cobra.Command, s streams) {
	def := s.getenv(coordinatorEnv)
	if def == "" {
		def = defaultCoordinator
	}
	cmd.Flags().StringVar(&f.coordinator, "coordinator", def,
		"coordinator API address host:port, or several comma-separated, tried in turn when one is down ($"+coordinatorEnv+" sets the default)")
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
// With several addresses, a call the current coordinator cannot answer
// (Unavailable: dead, or partitioned away) is tried on the others in turn,
// so an attached `weir run` outlives the coordinator it started with.
type follower struct {
	others []string // the addresses after the first
	mu     sync.Mutex
	conn   *grpc.ClientConn
}

var leaderAt = regexp.MustCompile(`standby; the leader is at (\S+)$`)

func (f *follower) current() *grpc.ClientConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conn
}

// follow returns a connection to the leader named by err, if it names one.
func (f *follower) follow(err error) *grpc.ClientConn {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return nil
	}
	m := leaderAt.FindStringSubmatch(st.Message())
	if m == nil {
		return nil
	}
	conn, derr := newConn(m[1], nil)
	if derr != nil {
		return nil
	}
	f.use(conn)
	return conn
}

// use makes conn the connection for later calls.
func (f *follower) use(conn *grpc.ClientConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil && f.conn != conn {
		f.conn.Close()
	}
	f.conn = conn
}

func (f *follower) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var err error
	if lc := f.current(); lc != nil {
		err = lc.Invoke(ctx, method, req, reply, opts...)
	} else {
		err = invoke(ctx, method, req, reply, cc, opts...)
	}
	if lc := f.follow(err); lc != nil {
		return lc.Invoke(ctx, method, req, reply, opts...)
	}
	if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
		return err
	}
	for _, a := range f.others {
		conn, derr := newConn(a, nil)
		if derr != nil {
			continue
		}
		aerr := conn.Invoke(ctx, method, req, reply, opts...)
		if lc := f.follow(aerr); lc != nil {
			conn.Close()
			return lc.Invoke(ctx, method, req, reply, opts...)
		}
		if status.Code(aerr) != codes.Unavailable {
			f.use(conn)
			return aerr
		}
		conn.Close()
	}
	return err
}

func (f *follower) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if lc := f.current(); lc != nil {
		return lc.NewStream(ctx, desc, method, opts...)
	}
	return streamer(ctx, desc, cc, method, opts...)
}

func (f *follower) close() {
	if lc := f.current(); lc != nil {
		lc.Close()
	}
}

func newConn(addr string, f *follower) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: connectTimeout}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
	}
	if f != nil {
		opts = append(opts, grpc.WithUnaryInterceptor(f.unary), grpc.WithStreamInterceptor(f.stream))
	}
	return grpc.NewClient(addr, opts...)
}

// dial prepares a connection to addr. It does no I/O: the first call
// connects, and reports an unreachable coordinator through rpcError.
func dial(list string) (*client, error) {
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
	f := &follower{others: addrs[1:]}
	conn, err := newConn(addr, f)
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
	if strings.Contains(msg, "server preface") {
		return "it accepted the connection but did not answer (is it a weir coordinator?)"
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
		return fmt.Errorf("coordinator at %s did not answer within %v", c.addr, rpcTimeout)
	case codes.Unavailable:
		// Transport failures carry gRPC's own wording; a coordinator that
		// is up but cannot serve (not the leader, shutting down) sends its
		// own message.
		if strings.Contains(msg, "produced zero addresses") || strings.Contains(msg, "no such host") {
			return fmt.Errorf("cannot reach coordinator at %s: unknown host", c.addr)
		}
		if isTransportMessage(msg) {
			return fmt.Errorf("cannot reach coordinator at %s: %s", c.addr, dialReason(msg))
		}
		return errors.New(msg)
	case codes.Unimplemented:
		return fmt.Errorf("coordinator at %s does not support this request (is it an older weir?): %s", c.addr, msg)
	case codes.Internal, codes.Unknown, codes.DataLoss:
		if isTransportMessage(msg) {
			return fmt.Errorf("lost connection to coordinator at %s: %s", c.addr, dialReason(msg))
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
