// Package exchange moves frames between producer and consumer subtasks of one
// job attempt: credit-based channels, in memory when both subtasks run in the
// same job process and over DataService gRPC streams otherwise.
//
// It owns the channels, the consumer's input gate (fair delivery across
// channels, blocking for barrier alignment, end-of-input and broken-channel
// detection), flow control, and the DataService server and client side. It
// does not partition or encode records: callers hand it Frames that already
// hold a batch (~32 KiB of uvarint-length-prefixed records in Data, or on a
// local channel an opaque Local batch such as a []T, with the watermarks
// that fell inside it in Marks), barriers, watermarks and end markers. It never looks inside a batch, so its cost is per batch,
// not per record.
//
// # Topology
//
// A Network is one job process's endpoint. Each consumer subtask registers a
// Gate with all its input channels (ChannelID: edge, producer, consumer).
// Each producer subtask Opens a Sender per output channel; if the consumer's
// address is the process's own (SetLocalAddr) the channel is an in-memory
// queue, otherwise an Exchange stream on the one grpc.ClientConn shared per
// peer address. Producers may come up before their consumer's gate: they
// wait for it up to ~30 s.
//
// # Credit protocol
//
// Credit is counted in bytes. A record batch costs its encoded size (at
// least 1 KiB, so that a window of tiny batches is still a bounded number of
// frames), the end marker 1 KiB, and a local batch (Frame.Local, whose size
// is unknown) an eighth of the window. A producer sends a credit-costing
// frame only while it holds credit, any at all: a batch larger than what is
// left, or than the whole window, still goes. A channel therefore holds at
// most Options.Window bytes (1 MiB by default) and one more frame between
// producer and consumer (queued in the gate or on the wire), counting the
// one the consumer is processing: its credit goes back only on the
// consumer's following Gate.Next. A consumer that stops calling Next, or
// blocks a channel with Gate.Block, backpressures that channel's producer
// with bounded memory.
//
// The window is in bytes, not batches, because batches vary in size by two
// orders of magnitude and it must cover the round trip of credit. A batch is
// sent when the producer's input runs dry or at the flush deadline, so a
// channel that gets a few records per source batch (a join's side input)
// sends batches of a few dozen records; and getting credit back takes two
// hops through busy processes, where a Go process with one CPU and a busy
// goroutine polls the network only every 10 ms (sysmon). Eight credits of
// batches of any size (this package's first protocol) kept ~240 records in
// flight on such a channel, and its producer waited for credit most of the
// time; a megabyte of them does not.
//
// The window is fixed. A consumer that falls behind fills it, so up to a
// megabyte per channel waits ahead of an aligned barrier; on a keyed edge
// the producer's local channel (8 batches) usually fills first and holds
// the remote ones back. A window that follows the consumer's pace (Flink's
// buffer debloating) was tried and cost q8 at p=2 a tenth to a third of
// its rate (docs/decisions.md, "Credit in bytes").
//
// Control frames cost no credit:
// barriers, so that backpressure never holds a checkpoint back, and
// watermarks, so that they never wait behind it or take the window from
// records (when they cost one, every other frame was a watermark). They
// still queue behind the records sent before them (aligned barriers) and a
// gate coalesces a watermark with one queued right before it, so they stay
// few: producers put watermarks into the batch they fall in (Frame.Marks)
// and send one alone only for a channel without records, when they flush
// (at most once per flush). Overdraft batches (just before an unaligned barrier) cost
// none either.
//
// On the wire (proto/weir/v1/data_service.proto): the producer opens
// DataService.Exchange with the channel in its request headers (job,
// attempt, edge, producer, consumer) and the attempt's channel secret; it
// then holds no credit. Before it reads any frame the consumer's process
// checks the secret in constant time (Unauthenticated otherwise, logged at
// most once a minute per peer, never with what the peer sent) and the job
// and attempt (PermissionDenied), then waits for the gate that owns the
// channel (NotFound after ~30 s), accepts one producer per channel
// (AlreadyExists otherwise), and sends Credit{Options.Window}. After that
// it sends Credit{k} whenever frames costing k bytes were consumed; several
// consumptions coalesce into one message when the producer side lags. The producer sends EndOfPartition last and
// half-closes; the consumer ends the stream with OK once it has read it, and
// the producer's Close waits for that status before cancelling so that no
// frame in transit is lost. Any other end of a stream before EndOfPartition
// breaks the channel: Gate.Next reports ErrChannelBroken naming it. Channels
// do not reconnect: a broken channel fails the attempt and the job lifecycle
// restarts it.
//
// In memory the same accounting runs on counters under the gate's lock.
//
// # Delivery order
//
// Gate.Next takes the channel furthest behind in event time: of those with
// a frame ready, the one whose newest delivered watermark (a batch's last
// mark, or a watermark frame) is lowest; channels take turns among equals
// and until they have delivered a watermark, so without event time it is
// plain turns. The consumer then sees its inputs merged in about event-time
// order, to within a batch, however far one producer runs ahead within its
// window. That is what keeps a join's or a session window's waiting state
// small: with turns, a producer ahead by its queue delivered records whose
// partners from the lagging one had not come yet (at p=2, a third of q4's
// bids came before their auction and waited in state; a fifth now). It is
// Flink's watermark alignment done where the inputs meet, with no setting:
// the leading producers are held back only by their credit. A lagging
// channel passes over the one whose turn it is at most 16 frames in a row,
// so one whose watermark is stuck cannot starve the others.
//
// # Ownership
//
// A local channel's Send takes ownership of Frame.Data and Frame.Local: it
// passes the very slice or pointer to the consumer, so the producer must not
// touch them after Send. A remote Sender has marshalled Data into its gRPC
// message by the time Send returns, so the producer may reuse the buffer for
// its next batch (IsLocal tells the two apart). Frames returned by Gate.Next
// belong to the consumer; remote Data is a fresh slice.
//
// # Server setup
//
// The caller owns the grpc.Server: build it with ServerOptions (8 KiB of
// request headers, 8192 streams per connection, 64 MiB messages, keepalive) and call Network.Register before serving.
package exchange
