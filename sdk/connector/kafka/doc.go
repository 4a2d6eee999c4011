// Package kafka reads and writes Apache Kafka topics, exactly once.
//
// Source reads partitions that it assigns to its subtasks itself (no
// consumer group: a rebalance inside a job would break its checkpoints), with
// read_committed isolation, and keeps each partition's next offset (and,
// with watermarks, the partition's watermark) in the job's checkpoints. It
// finds partitions added while the job runs.
//
// Its stream is of Record[T], whose codec the connector provides: a Filter
// or Map over it, or a Map to Records, needs no sdk.WithCodec (Record[T]
// implements sdk.CodecProvider with a codec built from T's).
//
// Sink writes a stream of Record[T]; SinkKeyed writes a stream of any type,
// such as keyed aggregates or window panes, with a key function and a value
// encoder (any sdk.Codec). Both write with a delivery guarantee: none,
// at-least-once (flushed on every checkpoint), or exactly-once, the default
// when the job takes checkpoints. Exactly-once is a two-phase commit: each
// sink subtask writes inside a Kafka transaction; the checkpoint barrier
// flushes it and records (transactional id, producer id, epoch) in the
// checkpoint; the completed checkpoint commits it. A job restored from that
// checkpoint commits it again with a raw EndTxn (already committed is fine),
// then fences the subtask's other transactional ids, which aborts what a
// failed attempt left open. Downstream read_committed consumers therefore
// see every record once.
//
// Every connection goes through franz-go (kgo, and kmsg for the raw
// requests). segmentio/kafka-go cannot do this: it has no transactional
// producer, its Produce always writes producer id -1, and its ReadCommitted
// reader returns aborted records and control batches (its issues #797, #897
// and #1332).
package kafka
