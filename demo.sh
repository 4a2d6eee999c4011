#!/usr/bin/env bash
# The weir demo: builds weir and the wordcount example, starts `weir local`
# (embedded etcd, a coordinator and two workers in one process), submits
# wordcount over this repository's documentation at parallelism 2, prints the
# most frequent words and the job list, and shuts the cluster down.
# The cluster listens on free loopback ports (set WEIR_API / WEIR_HTTP to
# choose them); the demo talks only to the cluster it started.
# ./demo.sh --tls runs the same demo with TLS everywhere (weir local --tls):
# the CLI authenticates with the admin certificate weir local made.
set -euo pipefail
tls=()
if [ "${1:-}" = "--tls" ]; then tls=(--tls); fi
cd "$(dirname "$0")"
work=$(mktemp -d)
api=${WEIR_API:-127.0.0.1:0}
http=${WEIR_HTTP:-127.0.0.1:0}
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "== building weir and jobs/wordcount"
go build -o "$work/weir" ./cmd/weir
CGO_ENABLED=0 go build -o "$work/wordcount" ./jobs/wordcount

echo "== starting weir local (logs in $work/local.log)"
"$work/weir" local --data-dir "$work/data" --api "$api" --http "$http" ${tls[@]+"${tls[@]}"} >"$work/local.log" 2>&1 &
pid=$!
# Its banner names the ports it listens on; it appears once it answers.
api=
for _ in $(seq 300); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "demo: weir local did not start:" >&2
    tail -5 "$work/local.log" >&2
    exit 1
  fi
  api=$(sed -n 's/^  job API:  //p' "$work/local.log")
  [ -n "$api" ] && break
  sleep 0.1
done
if [ -z "$api" ]; then
  echo "demo: weir local did not answer within 30s; its log:" >&2
  tail -5 "$work/local.log" >&2
  exit 1
fi
echo "   job API $api, web page $(sed -n 's/^  web:      //p' "$work/local.log")"
if [ ${#tls[@]} -gt 0 ]; then
  certs="$work/data/certs"
  export WEIR_TLS_CA="$certs/ca.crt" WEIR_TLS_CERT="$certs/local-admin.crt" WEIR_TLS_KEY="$certs/local-admin.key"
  echo "   TLS: the CLI uses $WEIR_TLS_CERT"
fi

mkdir -p "$work/input"
cat README.md docs/*.md > "$work/input/docs.txt"
echo "== weir run -p 2 wordcount -- --input docs --output out"
"$work/weir" run --coordinator "$api" -p 2 "$work/wordcount" -- --input "$work/input" --output "$work/out"

echo "== ten most frequent words"
sort -t$'\t' -k2,2nr -k1,1 "$work/out"/part-* > "$work/top"
head -10 "$work/top"
echo "== weir list"
"$work/weir" list --coordinator "$api"
