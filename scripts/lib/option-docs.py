"""Renders the option list from checks/schema/options.nix (JSON on stdin) as
docs/options.md (stdout); exits 1 naming any option without a description."""
import json
import sys

options = json.load(sys.stdin)
undocumented = [o["name"] for o in options if not o["description"]]
if undocumented:
    sys.exit("options without a description: " + ", ".join(undocumented))


def code(text):
    if text is None:
        return ""
    text = " ".join(text.split()).replace("|", "\\|")
    return f"`{text}`"


out = [
    "# Option reference",
    "",
    "Generated from `lib/schema/` by `scripts/render-goldens`; do not edit by hand.",
    "The guide to these options is [schema.md](schema.md).",
    "",
]
for o in options:
    out.append(f"## `{o['name']}`")
    out.append("")
    out.append(o["description"].strip())
    out.append("")
    out.append(f"- type: {o['type']}" + (" (read-only)" if o["readOnly"] else ""))
    if o["default"] is not None:
        out.append(f"- default: {code(o['default'])}")
    if o["example"] is not None:
        out.append(f"- example: {code(o['example'])}")
    out.append("")
sys.stdout.write("\n".join(out))
