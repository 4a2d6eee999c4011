// Package invariants holds repository-wide checks that no single package can
// make, starting with the import rules: which trees of the module may import
// which (job binaries link only sdk; sdk's runtime never imports sdk; the
// coordinator and workers never link job code), and which packages must stay
// pure state machines, taking time as input and doing no I/O.
package invariants
