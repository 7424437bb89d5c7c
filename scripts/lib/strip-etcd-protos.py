#!/usr/bin/env python3
"""Copies etcd 3.4's v3 API protos from Debian's golang-etcd-server-dev into
rust/crates/uc-proto/proto, stripped of the gogoproto and google.api.http
annotations (Go-only code generation hints; the wire format is unchanged).

    apt-get install golang-etcd-server-dev && scripts/lib/strip-etcd-protos.py
"""
import pathlib
import re
import sys

SRC = pathlib.Path("/usr/share/gocode/src/go.etcd.io/etcd")
FILES = ["etcdserver/etcdserverpb/rpc.proto", "mvcc/mvccpb/kv.proto", "auth/authpb/auth.proto"]
DEST = pathlib.Path(__file__).resolve().parents[2] / "rust/crates/uc-proto/proto/etcd"


def strip_blocks(text: str, opener: str) -> str:
    """Removes `option (google.api.http) = { ... };` with nested braces."""
    out, i = [], 0
    while True:
        j = text.find(opener, i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        k = text.index("{", j)
        depth = 0
        while True:
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        k = text.index(";", k) + 1
        i = k


def strip(text: str) -> str:
    text = strip_blocks(text, "option (google.api.http)")
    lines = []
    for line in text.splitlines():
        if re.match(r'\s*import "(gogoproto/gogo|google/api/annotations)\.proto";', line):
            continue
        if re.match(r"\s*option \(gogoproto\.[a-z_]+\) = \w+;", line):
            continue
        lines.append(line)
    text = "\n".join(lines) + "\n"
    # field options such as [(gogoproto.nullable) = false]
    text = re.sub(r"\s*\[\(gogoproto\.[a-z_]+\)\s*=\s*[^\]]+\]", "", text)
    # `rpc X(..) returns (..) {}` left empty by the stripping is valid proto3.
    return text


def main() -> int:
    if not SRC.is_dir():
        print(f"missing {SRC}: apt-get install golang-etcd-server-dev", file=sys.stderr)
        return 1
    for rel in FILES:
        target = DEST / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(strip((SRC / rel).read_text()))
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
