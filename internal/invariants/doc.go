// Package invariants holds repository-wide checks that no single package can
// make: the import rules and pure packages of docs/architecture.md
// ("Packages and import rules": job binaries link only sdk; sdk's runtime
// never imports sdk; the coordinator and workers never link job code), and
// that the docs (README.md, docs/*.md, Go comments) name only files that
// exist in the repository and flags the weir CLI has.
package invariants
