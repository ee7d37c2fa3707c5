#!/usr/bin/env bash
# The declared MSRV (workspace `rust-version`) is true: no locked dependency
# built for this host declares a newer `rust-version` than the workspace.
# Dependencies only built under cfgs nobody sets here (other OSes, `loom`)
# are left out via `cargo metadata --filter-platform`.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
cargo metadata --format-version 1 --locked --filter-platform "$host" | python3 -c '
import json, sys

def version(text):
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

metadata = json.load(sys.stdin)
members = set(metadata["workspace_members"])
used = {node["id"] for node in metadata["resolve"]["nodes"]}
packages = [p for p in metadata["packages"] if p["id"] in used]
declared = {p["rust_version"] for p in packages if p["id"] in members and p.get("rust_version")}
if len(declared) != 1:
    sys.exit(f"check-msrv: workspace members declare rust-version {sorted(declared)}; expected one value")
msrv = declared.pop()
newer = sorted(
    (p["name"], p["version"], p["rust_version"])
    for p in packages
    if p["id"] not in members and p.get("rust_version") and version(p["rust_version"]) > version(msrv)
)
for name, package_version, rust_version in newer:
    print(f"check-msrv: {name} {package_version} needs rust {rust_version} > declared {msrv}", file=sys.stderr)
if newer:
    sys.exit(1)
highest = max((version(p["rust_version"]) for p in packages if p.get("rust_version")), default=(0, 0, 0))
highest = "%d.%d.%d" % highest
print(f"check-msrv: rust-version {msrv} covers every locked dependency (highest needed: {highest})")
'
