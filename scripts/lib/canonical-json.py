"""Reads JSON on stdin, writes it with sorted keys and two-space indents: the
form golden manifests are stored in, so that diffs are readable."""
import json
import sys

json.dump(json.load(sys.stdin), sys.stdout, indent=2, sort_keys=True)
sys.stdout.write("\n")
