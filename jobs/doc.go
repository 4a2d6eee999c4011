// Package jobs holds example jobs, each a main package built against sdk
// only: wordcount (a bounded file job), keyedcount (a paced generator with
// keyed state), eoscount (exactly-once counts from Kafka to Kafka),
// bayvisits (session windows, from files or Kafka), windowdemo (early,
// on-time and late firings with retractions) and tworegions (two pipelined
// regions that restart independently). The Nexmark bench's job is
// bench/job.
package jobs
