#!/usr/bin/env bash
# The main job: build the conformance tool and the bundled plugins that need
# no server (memory, file, sqlite), and run the full conformance suite
# against each. With `--all`, also the server-backed plugins (redis,
# postgres, mysql) against the servers named by BENTO_REDIS_URL,
# BENTO_POSTGRES_URL and BENTO_MYSQL_URL (defaults: the local servers), and
# the bus suite against the bus plugins (redis, nats; BENTO_NATS_URL).
set -euo pipefail
cd "$(dirname "$0")/.."

# BENTO_PROFILE=debug reuses a debug build (CI builds debug for the tests).
profile="${BENTO_PROFILE:-release}"
if [ "$profile" = release ]; then profile_flag=(--release); else profile_flag=(); fi
target_dir="${CARGO_TARGET_DIR:-target}/$profile"

plugins=(bento-driver-memory bento-driver-file bento-driver-sqlite)
if [ "${1:-}" = "--all" ]; then
  plugins+=(bento-driver-redis bento-driver-postgres bento-driver-mysql bento-bus-redis bento-bus-nats)
fi

# Each plugin file lib<name>.so is built by the thin package <name>-plugin.
build_args=(-p bento-conformance)
for p in "${plugins[@]}"; do build_args+=(-p "$p-plugin"); done
cargo build ${profile_flag[@]+"${profile_flag[@]}"} "${build_args[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
run_id="$$"

options_for() {
  case "$1" in
    bento-driver-memory) echo '{}' ;;
    bento-driver-file) echo "{\"directory\":\"$work/files\"}" ;;
    bento-driver-sqlite) echo "{\"path\":\"$work/cache.sqlite\"}" ;;
    bento-driver-redis) echo "{\"url\":\"${BENTO_REDIS_URL:-redis://127.0.0.1:6379}\"}" ;;
    bento-driver-postgres) echo "{\"url\":\"${BENTO_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}\",\"table\":\"bento_conformance_$run_id\"}" ;;
    bento-driver-mysql) echo "{\"url\":\"${BENTO_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}\",\"table\":\"bento_conformance_$run_id\"}" ;;
    bento-bus-redis) echo "{\"url\":\"${BENTO_REDIS_URL:-redis://127.0.0.1:6379}\"}" ;;
    bento-bus-nats) echo "{\"url\":\"${BENTO_NATS_URL:-nats://127.0.0.1:4222}\"}" ;;
  esac
}

# Private storage (memory, a fresh directory or file, a fresh table) may run
# the cases where the driver owns its whole keyspace; a shared Redis may not.
empty_prefix_flag() {
  case "$1" in bento-driver-redis | bento-bus-*) ;; *) echo --allow-empty-prefix ;; esac
}

failed=0
for p in "${plugins[@]}"; do
  lib="$target_dir/lib${p//-/_}.so"
  echo "== conformance $lib"
  if ! "$target_dir/conformance" "$lib" --options "$(options_for "$p")" $(empty_prefix_flag "$p"); then
    failed=1
  fi
done
exit "$failed"
