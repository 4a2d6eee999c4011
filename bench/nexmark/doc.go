// Package nexmark owns the Nexmark benchmark's data model: the person,
// auction and bid events, a deterministic generator of them, their binary
// codec, the output record of every query and the order-independent
// checksum by which the bench harness compares a weir job's output with its
// single-threaded baseline's.
//
// It imports nothing of weir's but internal/uvarintframe (the framing of
// its codec, itself standard library only): the job (bench/job), the baselines
// (bench/baseline) and the Beam peer (bench/peers/beam, its own module) all
// use this one copy, so the three see the same events and hash the same
// outputs. The query semantics every implementation follows are in
// QUERIES.md beside this file.
package nexmark
