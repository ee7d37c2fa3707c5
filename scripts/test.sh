#!/usr/bin/env bash
# The whole test suite: build every crate (plugins are cdylibs the tests
# load from the target directory), then run every test. Tests that need a
# server (Redis, PostgreSQL, MariaDB, NATS) print a SKIP line when it is
# unreachable, or fail when BENTO_REQUIRE_SERVICES=1. Local servers that are
# installed but stopped are started first (scripts/start-services.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/start-services.sh
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
