"""Checks flake.lock offline: every input of flake.nix is locked to a full
revision with a narHash, follows are wired, and where a local clone of an
input exists (/var/tmp/<repo>, or $ULTRACLOUD_DISKO for disko) the narHash is recomputed
from that revision with `nix hash path` and compared."""
import json
import os
import re
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
lock = json.load(open(os.path.join(root, "flake.lock")))
flake = open(os.path.join(root, "flake.nix")).read()
failures = []

if lock.get("version") != 7:
    failures.append(f"flake.lock version {lock.get('version')}, expected 7")
nodes = lock["nodes"]
root_inputs = nodes[lock["root"]]["inputs"]
inputs_block = flake.split("\n  inputs = {", 1)[1].split("\n  };", 1)[0]
declared = set(re.findall(r"^    ([a-z][a-z0-9-]*)(?:\.url| = \{)", inputs_block, re.M))
if declared != set(root_inputs):
    failures.append(f"flake.nix declares inputs {sorted(declared)}, flake.lock locks {sorted(root_inputs)}")

for name, node_name in root_inputs.items():
    node = nodes[node_name]
    locked = node.get("locked", {})
    if not re.fullmatch(r"[0-9a-f]{40}", locked.get("rev", "")):
        failures.append(f"{name}: not locked to a full 40-hex rev")
    if not locked.get("narHash", "").startswith("sha256-"):
        failures.append(f"{name}: no narHash")
    for inp, target in node.get("inputs", {}).items():
        if isinstance(target, list) and target[0] not in root_inputs:
            failures.append(f"{name}.inputs.{inp} follows unknown input {target}")
    clone = f"/var/tmp/{locked.get('repo')}"
    if name == "disko":
        clone = os.environ.get("ULTRACLOUD_DISKO", clone)
    if os.path.isdir(os.path.join(clone, ".git")):
        with tempfile.TemporaryDirectory() as tree:
            archive = subprocess.run(["git", "-C", clone, "archive", locked["rev"]], capture_output=True)
            if archive.returncode != 0:
                print(f"note: {clone} lacks {locked['rev']}; narHash of {name} not recomputed")
                continue
            subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
            got = subprocess.run(
                ["nix", "--extra-experimental-features", "nix-command", "hash", "path", tree],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
            if got != locked["narHash"]:
                failures.append(f"{name}: narHash {locked['narHash']} but {locked['rev']} hashes to {got}")
            else:
                print(f"ok   {name}: narHash recomputed from {clone} at {locked['rev'][:12]}")

for f in failures:
    print(f"FAIL flake.lock: {f}")
if failures:
    sys.exit(1)
print(f"flake.lock: {len(root_inputs)} inputs locked")
