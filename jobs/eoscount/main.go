// Command eoscount counts Kafka records per key, exactly once.
//
//	eoscount -- --brokers B --input-topic T1 --output-topic T2
//
// For every record of T1 it writes one record to T2 with the same key and,
// as the value, the decimal count of T1's records with that key so far
// (counting this one). Counts live in keyed state; the output is written in
// Kafka transactions committed with checkpoints, so a read_committed
// consumer of T2 sees every count once, whatever fails. It runs until
// cancelled.
package main

import (
	"errors"
	"flag"
	"strconv"
	"strings"

	"github.com/weir-run/weir/sdk"
	"github.com/weir-run/weir/sdk/connector/kafka"
)

func main() { sdk.Main(build) }

func build(p *sdk.Pipeline, args []string) error {
	fs := flag.NewFlagSet("eoscount", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "Kafka bootstrap brokers, comma-separated")
	in := fs.String("input-topic", "", "topic to count")
	out := fs.String("output-topic", "", "topic for the running counts")
	delivery := fs.String("delivery", "default", "none, at-least-once or exactly-once (default: exactly-once with checkpoints)")
	txnTimeout := fs.Duration("transaction-timeout", kafka.DefaultTransactionTimeout, "Kafka transaction timeout of the exactly-once sink")
	compression := fs.String("compression", "none", "output compression: none, gzip, snappy, lz4 or zstd")
	secret := fs.String("kafka-secret", "", "job secret holding the brokers' SASL/TLS credentials (kafka.SASLFromSecret; submit with weir run --secret NAME)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *brokers == "":
		return errors.New("eoscount needs --brokers")
	case *in == "" || *out == "":
		return errors.New("eoscount needs --input-topic and --output-topic")
	}
	d, err := kafka.ParseDelivery(*delivery)
	if err != nil {
		return err
	}
	bs := strings.Split(*brokers, ",")
	p.SetName("eoscount")
	var auth kafka.Credentials
	if *secret != "" {
		auth = kafka.SASLFromSecret(*secret)
	}
	records := kafka.Source(p, kafka.SourceConfig{Brokers: bs, Topics: []string{*in}, Auth: auth}, sdk.BytesCodec{}, sdk.WithUID("input"))
	counts := sdk.Aggregate(sdk.KeyBy(records, func(r kafka.Record[[]byte]) string { return string(r.Key) }),
		sdk.Count[kafka.Record[[]byte]](), sdk.WithName("Count"), sdk.WithUID("count"))
	kafka.SinkKeyed(counts, kafka.SinkConfig{Brokers: bs, Topic: *out, Delivery: d, TransactionTimeout: *txnTimeout, Auth: auth,
		Compression: kafka.Compression(*compression)},
		func(kv count) string { return kv.Key }, kafka.EncoderFunc[count](appendDecimal), sdk.WithUID("output"))
	return nil
}

// count is a key's running count.
type count = sdk.KV[string, int64]

// appendDecimal writes a count's value in decimal.
func appendDecimal(dst []byte, kv count) []byte { return strconv.AppendInt(dst, kv.Value, 10) }
