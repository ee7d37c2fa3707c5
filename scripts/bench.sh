#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md in one run (release builds; the local
# Redis and PostgreSQL servers for the driver comparisons; Node.js for the
# BentoCache baseline). Output goes to stdout; numbers are copied by hand
# into BENCHMARKS.md together with the machine they came from.
#
# `scripts/bench.sh compare [--rounds N] [l1] [redis] [rss]` instead runs
# only the interleaved side-by-side harness of issue 12 (benchmarks/src/bin/
# compare): bento next to quick_cache, moka, amalgam-cache, BentoCache
# under Node and raw redis-rs, in alternating rounds, with ratios and their
# spread. Its report goes to stdout (markdown) and is copied into
# BENCHMARKS.md with the machine load it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/start-services.sh

if [ "${1:-}" = compare ]; then
  shift
  cargo build --release -p bento-benchmarks --bin compare
  # Separately: with --bin, cargo would build no library (cdylib) target.
  cargo build --release -p bento-driver-redis-plugin -p bento-bus-redis-plugin
  if command -v node >/dev/null && command -v npm >/dev/null; then
    (cd benchmarks/node && npm ci --no-audit --no-fund --silent)
  fi
  exec target/release/compare "$@"
fi

plugins=(bento-driver-memory bento-driver-redis bento-driver-postgres bento-driver-mysql bento-driver-file bento-driver-sqlite)
# Each plugin file lib<name>.so is built by the thin package <name>-plugin.
build=(-p bento-conformance)
for p in "${plugins[@]}"; do build+=(-p "$p-plugin"); done
cargo build --release "${build[@]}"

quick=(-- --warm-up-time 1 --measurement-time 3)
echo "== FFI overhead: memory driver via plugin vs native"
cargo bench -p bento-benchmarks --bench ffi_overhead "${quick[@]}"
echo "== L1 hit through the full API vs bare quick_cache"
cargo bench -p bento --bench l1_hit "${quick[@]}"
echo "== tiered get_or_set miss vs raw L2 round trips"
cargo bench -p bento --bench tiered "${quick[@]}"
echo "== L1 memory for 1 M entries"
cargo run --release -p bento --example l1_memory
echo "== redis plugin vs raw redis-rs"
cargo bench -p bento-driver-redis --bench redis_vs_raw "${quick[@]}"
echo "== postgres plugin vs raw tokio-postgres"
cargo bench -p bento-driver-postgres --bench postgres_vs_raw "${quick[@]}"
echo "== file and sqlite ops/s"
cargo bench -p bento-driver-file --bench file_ops "${quick[@]}"
cargo bench -p bento-driver-sqlite --bench sqlite_ops "${quick[@]}"

echo "== conformance --bench per plugin"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
conformance=target/release/conformance
"$conformance" target/release/libbento_driver_memory.so --bench
"$conformance" target/release/libbento_driver_file.so --bench --options "{\"directory\":\"$work/files\"}"
"$conformance" target/release/libbento_driver_sqlite.so --bench --options "{\"path\":\"$work/bench.sqlite\"}"
"$conformance" target/release/libbento_driver_redis.so --bench --options "{\"url\":\"${BENTO_REDIS_URL:-redis://127.0.0.1:6379}\"}"
"$conformance" target/release/libbento_driver_postgres.so --bench \
  --options "{\"url\":\"${BENTO_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}\",\"table\":\"bento_bench_$$\"}"
"$conformance" target/release/libbento_driver_mysql.so --bench \
  --options "{\"url\":\"${BENTO_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}\",\"table\":\"bento_bench_$$\"}"

if command -v node >/dev/null && command -v npm >/dev/null; then
  echo "== BentoCache 1.6.1 (Node) L1 hit, same machine"
  (cd benchmarks/node && npm install --no-audit --no-fund --silent && node l1_hit.mjs)
fi
