package exchange

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Kind says what a Frame carries.
type Kind uint8

const (
	// KindRecords is a batch of records in Data (remote or local) or Local
	// (local channels only).
	KindRecords Kind = iota + 1
	// KindBarrier is checkpoint barrier CheckpointID, triggered at Timestamp.
	KindBarrier
	// KindWatermark is watermark Timestamp, or the idle marker when Idle.
	KindWatermark
	// KindEnd ends the channel: the producer sends nothing after it.
	KindEnd
	// KindEndOfData says the producer's input ended and its operators
	// finished: no record follows, only barriers (its final checkpoint's)
	// and then KindEnd. A consumer that has it from every channel finishes
	// too without waiting for that checkpoint (Flink's EndOfData, FLIP-147),
	// so a bounded job's last results cross every stage at once instead of
	// one checkpoint per stage.
	KindEndOfData
)

func (k Kind) String() string {
	switch k {
	case KindRecords:
		return "records"
	case KindBarrier:
		return "barrier"
	case KindWatermark:
		return "watermark"
	case KindEnd:
		return "end"
	case KindEndOfData:
		return "end of data"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Frame is one unit on a channel. Record batches and the end marker cost
// their producer credit; barriers, watermarks, the end of data and Overdraft
// record batches do not (see cost).
//
// Remote channels carry records in Data (Count records, each a uvarint length
// then bytes, encoded by the caller). Local channels may instead carry Local,
// an opaque batch passed by pointer without encoding (for example a []T).
// Exactly one of Data/Local is used for records; a remote Sender refuses a
// frame with Local set.
//
// Ownership: a local channel's Send takes ownership of Data and Local. The
// producer must not modify or reuse them after calling it, whether it
// succeeded or not: it hands the very same slice or pointer to the consumer.
// A remote channel's Send has marshalled Data into its gRPC message when it
// returns, whatever it returns, so the producer may reuse Data (IsLocal tells
// the two apart). A frame returned by Gate.Next belongs to the consumer; for
// remote channels Data is a fresh slice that nothing else references.
type Frame struct {
	Kind  Kind
	Data  []byte
	Count int
	Local any
	// Marks (records) are watermarks in band: each comes after the first
	// At records of the batch. A producer puts a watermark into the batch
	// it falls in instead of flushing that batch, so batches fill whatever
	// the watermark cadence, and every record keeps its place relative to
	// every watermark. Owned like Data.
	Marks []Mark

	CheckpointID int64 // barrier
	Timestamp    int64 // barrier trigger time or watermark, unix ms
	Idle         bool  // watermark: the channel is idle
	Savepoint    bool  // barrier: of a savepoint
	// Unaligned (barrier): the barrier overtakes the frames queued ahead of
	// it at the consumer (Delivery.Overtaken).
	Unaligned bool
	// Overdraft (records): sent without credit. A producer flushes its
	// partial batches so just before an unaligned barrier, which must not
	// wait behind backpressure; at most one per channel and barrier.
	Overdraft bool
}

// Mark is a watermark at a position in a record batch.
type Mark struct {
	At        int   // records of the batch before the watermark, 0..Count
	Timestamp int64 // unix ms
}

// costsCredit reports whether sending f spends the channel's credit.
// Record batches and the end marker do. Barriers do not, so that
// backpressure never holds a checkpoint back at the producer; nor do
// Overdraft batches. Watermarks (and idle markers) do not, so that they
// neither wait behind backpressure nor use up the window records need (when
// every watermark cost a credit, half the window went to them): a gate
// coalesces a watermark with one queued just ahead of it, and producers
// send at most one per batch or flush, so they cannot pile up.
func (f *Frame) costsCredit() bool {
	return f.Kind != KindBarrier && f.Kind != KindWatermark && f.Kind != KindEndOfData && !f.Overdraft
}

// cost is the credit, in bytes, that sending f spends on a channel whose
// window is window bytes: its encoded size, at least minFrameCost so that
// a window bounds the number of frames too. A local batch (Local) has no
// size in bytes; it costs an eighth of the window, so that an in-memory
// channel, which needs no round trip to get credit back, holds 8 batches.
func (f *Frame) cost(window int) int {
	switch {
	case !f.costsCredit():
		return 0
	case f.Local != nil:
		return window / localBatches
	}
	return max(len(f.Data), minFrameCost)
}

// ChannelID names one channel: the edge of the job graph, the producing
// subtask and the consuming subtask.
type ChannelID struct{ Edge, Producer, Consumer int32 }

func (c ChannelID) String() string {
	return fmt.Sprintf("edge %d: %d->%d", c.Edge, c.Producer, c.Consumer)
}

// Options tune a Network. The zero value is usable.
type Options struct {
	// Window is how many bytes of record batches a channel holds between
	// its producer and its consumer (on the wire, queued, and the one being
	// processed), give or take one batch. Default 1 MiB: it has to cover the
	// round trip of credit, which is long when the consumer's process is
	// busy, for the small batches of a channel that carries few records
	// (see doc.go, "Credit protocol").
	Window int
	// DialTimeout bounds how long Open waits for a remote peer's connection
	// to become ready. Default 10 s.
	DialTimeout time.Duration
	// ChannelSecret is the attempt's shared secret: producers present it and
	// consumers refuse streams without it. Every process of an attempt must
	// have the same one; the coordinator makes a random one per attempt.
	ChannelSecret string
	// TLS dials every remote consumer over TLS, accepting only the
	// certificate its pin names (Network.SetPins); the process serves with
	// an Identity. Every process of an attempt runs the same way.
	TLS bool
}

const (
	defaultWindow = 1 << 20
	// minFrameCost is the least credit a frame costs, so that a window of
	// small frames is a bounded number of frames, messages and queue slots.
	minFrameCost = 1 << 10
	// localBatches is how many local batches fill a window (see cost).
	localBatches       = 8
	defaultDialTimeout = 10 * time.Second

	// gateWait is how long a producer waits for its consumer's gate to be
	// registered: subtasks of one deployment start concurrently, so a
	// producer may come up before its consumer.
	gateWait = 30 * time.Second

	// closeWait bounds how long Sender.Close waits for the consumer to
	// acknowledge the end of a remote stream. Cancelling earlier could drop
	// frames still in transit.
	closeWait = 10 * time.Second

	// maxMessageBytes is the gRPC message limit for DataService, both
	// directions. Batches target ~32 KiB but one large record makes a large
	// batch.
	maxMessageBytes = 64 << 20
	// maxFrameBytes leaves room for the DataFrame envelope and header.
	maxFrameBytes = maxMessageBytes - 4<<10
)

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = defaultWindow
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultDialTimeout
	}
	return o
}

var (
	// ErrChannelBroken means a channel ended without KindEnd: its remote
	// stream broke or its producer closed early. The error names the channel.
	ErrChannelBroken = errors.New("exchange: channel broken")
	// ErrClosed means the Sender, Gate or Network was closed.
	ErrClosed = errors.New("exchange: closed")
	// ErrRefused means the consumer refused a producer's channel: it belongs
	// to another job or attempt, the channel already has a producer, or no
	// gate registered the channel in time. Retrying the same channel will not
	// help; the job lifecycle decides what to do.
	ErrRefused = errors.New("exchange: channel refused")
)

// Sender is the producer end of one channel. Send is not safe for concurrent
// use (one producer subtask owns a channel); Close may be called concurrently
// with a blocked Send and unblocks it.
type Sender interface {
	// Send queues f on the channel, blocking while the producer holds no
	// credit (the channel's window is used up). A local channel takes
	// ownership of f.Data and f.Local (see Frame); a remote one is done with
	// f.Data when Send returns, whatever it returns, so the caller may reuse
	// it (IsLocal tells them apart). If ctx ends while Send waits for credit,
	// Send returns ctx.Err() and the frame is not sent; the channel stays
	// usable. After a KindEnd frame the channel is finished: further Sends
	// fail with ErrClosed and Close releases it.
	Send(ctx context.Context, f Frame) error
	// Close releases the channel. Closing before a KindEnd frame was sent
	// breaks the channel: the consumer gets ErrChannelBroken. After KindEnd,
	// Close of a remote channel waits (bounded) until the consumer has
	// received everything. Close is idempotent.
	Close() error
}

// IsLocal reports whether s is an in-memory channel, which accepts
// Frame.Local batches and skips encoding.
func IsLocal(s Sender) bool {
	_, ok := s.(*localSender)
	return ok
}

// ServerOptions returns the grpc.ServerOptions the grpc.Server given to
// Register needs; append them to the caller's own. They cap a stream's
// request headers at 8 KiB and a connection's streams at 8192, raise the
// message limit to 64 MiB for admitted streams (a batch exceeds 32 KiB when
// one record is big), give streams fixed 2 MiB windows so that a channel's
// window of credit (1 MiB by default) never waits for an HTTP/2 window
// update (credit, not HTTP/2 windows, bounds memory: the server always
// drains a stream into its gate), and enable keepalive so a producer whose
// machine vanished is detected. The options apply to every service on s.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMessageBytes),
		grpc.MaxSendMsgSize(maxMessageBytes),
		grpc.MaxHeaderListSize(maxHeaderListBytes),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.ReadBufferSize(256 << 10),
		grpc.InitialWindowSize(2 << 20),
		grpc.InitialConnWindowSize(8 << 20),
		grpc.WriteBufferSize(64 << 10),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
}
