// Package baseline owns the COST baselines of the Nexmark bench: each query
// hand-written as a single-threaded Go loop over the generator's events in
// index order, with no framework, hashing its outputs into the same
// nexmark.Checksum the weir job's sink computes. A weir query is correct
// when its checksum equals its baseline's, and fast when its throughput
// compares well with the baseline's (McSherry et al., "Scalability! But at
// what COST?"). Semantics: bench/nexmark/QUERIES.md.
package baseline
