// Package web serves the coordinator's status page and the JSON API under
// /api/v1 that the page and scripts share.
//
// Pages are rendered on the server with html/template from embedded
// assets; no front-end build step exists. A page holds its live part in one
// element, which Server-Sent Events replace once a second with a fresh
// rendering of the same template, so the first paint and every update
// share one code path and the JavaScript stays small. The job graph's
// layout and the charts' geometry are computed in Go (layout.go,
// chart.go), as pure functions.
//
// The package knows the coordinator only through Backend, which the
// coordinator implements; it never reaches into leader state.
package web
