package kafka

import (
	"context"
	"encoding/binary"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-run/weir/sdk"
)

// benchCheckpointEvery is how many records pass between simulated
// checkpoints in the throughput benchmark.
const benchCheckpointEvery = 20000

// BenchmarkSinkThroughput writes 100-byte records to an in-process broker:
// bare franz-go, the sink at-least-once, and exactly-once, with a
// checkpoint (flush; for exactly-once also pre-commit and commit) every
// benchCheckpointEvery records. go test -bench SinkThroughput -benchtime 200000x
func BenchmarkSinkThroughput(b *testing.B) {
	value := string(make([]byte, 100))
	for _, mode := range []string{"bare-franz-go", "bare-franz-go-transactional", "at-least-once", "exactly-once"} {
		b.Run(mode, func(b *testing.B) {
			brokers := benchCluster(b, "out")
			b.ResetTimer()
			start := time.Now()
			switch mode {
			case "bare-franz-go":
				cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("out"), kgo.ProducerLinger(time.Millisecond))
				if err != nil {
					b.Fatal(err)
				}
				defer cl.Close()
				for i := range b.N {
					cl.Produce(context.Background(), &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(value)}, nil)
					if (i+1)%benchCheckpointEvery == 0 {
						cl.Flush(context.Background())
					}
				}
				if err := cl.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			case "bare-franz-go-transactional":
				// One long-lived transactional client, committing at each
				// checkpoint: the cost of transactions without weir.
				cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic("out"), kgo.ProducerLinger(time.Millisecond),
					kgo.TransactionalID("bench"))
				if err != nil {
					b.Fatal(err)
				}
				defer cl.Close()
				cl.BeginTransaction()
				for i := range b.N {
					cl.Produce(context.Background(), &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(value)}, nil)
					if (i+1)%benchCheckpointEvery == 0 {
						cl.Flush(context.Background())
						if err := cl.EndTransaction(context.Background(), kgo.TryCommit); err != nil {
							b.Fatal(err)
						}
						cl.BeginTransaction()
					}
				}
				cl.Flush(context.Background())
				if err := cl.EndTransaction(context.Background(), kgo.TryCommit); err != nil {
					b.Fatal(err)
				}
			default:
				d := AtLeastOnce
				if mode == "exactly-once" {
					d = ExactlyOnce
				}
				w, err := openWriter(task{parallelism: 1, job: "bench", uid: "sink", checkpointing: true},
					SinkConfig{Brokers: brokers, Topic: "out", Delivery: d}.withDefaults(), sdk.StringCodec{})
				if err != nil {
					b.Fatal(err)
				}
				id := int64(0)
				for i := range b.N {
					w.Write(Record[string]{Key: []byte(strconv.Itoa(i)), Value: value})
					if (i+1)%benchCheckpointEvery == 0 {
						id++
						checkpoint(b, w, id)
					}
				}
				if err := w.Finish(); err != nil {
					b.Fatal(err)
				}
				w.Close()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}

// BenchmarkSinkLatency measures, at a steady 2,000 records/s and a
// checkpoint every 200ms, the time from a record entering the sink until a
// read_committed consumer sees it: at-least-once vs exactly-once.
func BenchmarkSinkLatency(b *testing.B) {
	for _, d := range []Delivery{AtLeastOnce, ExactlyOnce} {
		b.Run(d.String(), func(b *testing.B) {
			brokers := benchCluster(b, "out")
			consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("out"),
				kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(10*time.Millisecond))
			if err != nil {
				b.Fatal(err)
			}
			defer consumer.Close()
			w, err := openWriter(task{parallelism: 1, job: "bench", uid: "sink", checkpointing: true},
				SinkConfig{Brokers: brokers, Topic: "out", Delivery: d}.withDefaults(), sdk.BytesCodec{})
			if err != nil {
				b.Fatal(err)
			}
			const n, rate, every = 4000, 2000, 200 * time.Millisecond
			var lat []time.Duration
			var seen atomic.Int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				for seen.Load() < n {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					fs := consumer.PollFetches(ctx)
					cancel()
					now := time.Now()
					fs.EachRecord(func(r *kgo.Record) {
						sent := time.Unix(0, int64(binary.BigEndian.Uint64(r.Value)))
						lat = append(lat, now.Sub(sent))
						seen.Add(1)
					})
				}
			}()
			b.ResetTimer()
			start, next, id := time.Now(), time.Now().Add(every), int64(0)
			for i := range n {
				time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / rate)))
				v := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
				w.Write(Record[[]byte]{Value: v})
				if time.Now().After(next) {
					next = next.Add(every)
					id++
					checkpoint(b, w, id)
				}
			}
			if err := w.Finish(); err != nil {
				b.Fatal(err)
			}
			<-done
			w.Close()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// checkpoint runs checkpoint id through w: barrier, then completion.
func checkpoint[T any](tb testing.TB, w *writer[T], id int64) {
	tb.Helper()
	if _, err := w.PreCommit(id); err != nil {
		tb.Fatal(err)
	}
	if err := w.Commit(id); err != nil {
		tb.Fatal(err)
	}
}
