// Package invariants holds repository-wide checks that no single package can
// make, starting with the import rules of the design (DESIGN §6).
package invariants
