#!/usr/bin/env python3
"""Checks a release's SBOM (scripts/test-release runs it):

    python3 tests/check_sbom.py SBOM CARGO_LOCK BINARY [BINARY ...]

- it is valid CycloneDX 1.5 JSON by the official schema, as
  cyclonedx-python-lib (PyPI, the CycloneDX project's own) ships and checks
  it, strictly (no property the schema does not define);
- its crates (berth and every library component) are exactly each
  BINARY's embedded inventory, as `scripts/dep-inventory BINARY` prints it,
  and each crate's version is the one Cargo.lock pins;
- it names each BINARY as a file with the binary's SHA-256;
- every reference in its dependency graph names a component in it.
Prints one line per failure and exits 1, or one summary line.
"""

import hashlib
import json
import os
import subprocess
import sys
import tomllib

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    sbom_path, lock_path, binaries = argv[1], argv[2], argv[3:]
    with open(sbom_path) as f:
        text = f.read()
    failures = []
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    if error is not None:
        failures.append(f"not valid CycloneDX 1.5: {str(error).splitlines()[0]}")
    bom = json.loads(text)
    root = bom["metadata"]["component"]
    crates = {(root["name"], root["version"])}
    crates |= {(c["name"], c["version"]) for c in bom.get("components", []) if c["type"] == "library"}

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "dep-inventory")
    for binary in binaries:
        out = subprocess.run([sys.executable, script, binary], check=True, capture_output=True, text=True).stdout
        embedded = {tuple(line.split(" ", 1)) for line in out.splitlines()}
        if embedded != crates:
            failures.append(
                f"{binary}: the SBOM's crates differ from the embedded inventory: "
                f"only in the SBOM {sorted(crates - embedded)}, only in the binary {sorted(embedded - crates)}"
            )

    with open(lock_path, "rb") as f:
        locked = {(p["name"], p["version"]) for p in tomllib.load(f)["package"]}
    for crate in sorted(crates - locked):
        failures.append(f"{crate[0]} {crate[1]} is not what Cargo.lock pins")

    files = {c["name"]: c for c in bom.get("components", []) if c["type"] == "file"}
    for binary in binaries:
        with open(binary, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        c = files.get(os.path.basename(binary))
        hashes = {h["alg"]: h["content"] for h in (c or {}).get("hashes", [])}
        if hashes.get("SHA-256") != digest:
            failures.append(f"the SBOM does not name {os.path.basename(binary)} with its SHA-256 {digest}")

    refs = {root["bom-ref"]} | {c["bom-ref"] for c in bom.get("components", [])}
    for d in bom.get("dependencies", []):
        for r in [d["ref"], *d.get("dependsOn", [])]:
            if r not in refs:
                failures.append(f"the dependency graph names {r!r}, which no component is")

    for line in failures:
        print(f"check_sbom: {sbom_path}: {line}", file=sys.stderr)
    if failures:
        sys.exit(1)
    print(
        f"valid CycloneDX 1.5 (schema, strict); {len(crates)} crates = the inventory of "
        f"{len(binaries)} binaries and Cargo.lock; {len(files)} files with their SHA-256"
    )


if __name__ == "__main__":
    main(sys.argv)
