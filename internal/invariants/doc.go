// Package invariants holds repository-wide checks that no single package can
// make: the import rules and pure packages of docs/architecture.md
// ("Packages and import rules"), and that the docs (README.md, docs/*.md,
// Go comments) name only files that exist in the repository and flags the
// weir CLI has.
package invariants
