#!/usr/bin/env python3
"""Rewrites a rendered manifest so that its whole cluster runs on this one
machine: every node's IPv4 addresses move to 127.80.0.<last octet> (each
node keeps its own loopback address, so ports do not collide), state
directories move under the demo directory, each service secret file gets
a demo file with random content, uc-dns answers on port 5300 instead
of 53 (no privileged port, no clash with a resolver already on :53), and
a load-balancer listener on a port below 1024 moves up by 10000 (80 to
10080).

    demo-localize.py MANIFEST DEMO_DIR > LOCAL_MANIFEST
"""
import ipaddress
import json
import os
import re
import secrets
import sys

DEMO_DNS_PORT = 5300
DEMO_LB_PORT_OFFSET = 10000


def main():
    manifest_path, demo = sys.argv[1], os.path.abspath(sys.argv[2])
    with open(manifest_path) as f:
        m = json.load(f)

    mapping = {}
    for node in m["nodes"].values():
        for addr in node["addresses"]:
            ip = ipaddress.ip_address(addr)
            if ip.version != 4:
                sys.exit(f"demo: IPv6 address {addr} cannot be mapped to loopback; use an IPv4 example")
            mapping[addr] = "127.80.0.%d" % ip.packed[3]
    # Longest first, and only whole addresses: 10.1.0.1 must not eat 10.1.0.11.
    pattern = re.compile(
        r"(?<![\d.])(" + "|".join(re.escape(a) for a in sorted(mapping, key=len, reverse=True)) + r")(?![\d])"
    )

    def rewrite(value, node=None):
        if isinstance(value, dict):
            return {k: rewrite(v, node) for k, v in value.items()}
        if isinstance(value, list):
            return [rewrite(v, node) for v in value]
        if isinstance(value, str):
            value = pattern.sub(lambda mo: mapping[mo.group(1)], value)
            if node and value.startswith("/var/lib/ultracloud/"):
                value = os.path.join(demo, "nodes", node, value[len("/var/lib/ultracloud/"):])
        return value

    for name, node in m["nodes"].items():
        m["nodes"][name] = rewrite(node, name)
    for key in ("services", "dns", "lb", "store", "rollout"):
        m[key] = rewrite(m[key])
    dns_port = m["dns"]["port"]
    if dns_port < 1024:
        m["dns"]["port"] = DEMO_DNS_PORT
        for node in m["nodes"].values():
            dns = node["daemons"].get("dns")
            if dns:
                dns["listen"] = [
                    re.sub(r":%d$" % dns_port, ":%d" % DEMO_DNS_PORT, a) for a in dns["listen"]
                ]
    localize_lb_ports(m)
    mgmt = m["networks"]["management"]
    mgmt["cidr"] = "127.80.0.0/24"
    mgmt["gateway"] = None
    mgmt["resolvers"] = []

    os.makedirs(os.path.join(demo, "secrets"), mode=0o700, exist_ok=True)
    for service in m["services"].values():
        for var, path in list(service["secretFiles"].items()):
            local = os.path.join(demo, "secrets", os.path.basename(path))
            if not os.path.exists(local):
                fd = os.open(local, os.O_WRONLY | os.O_CREAT, 0o600)
                os.write(fd, (secrets.token_hex(16) + "\n").encode())
                os.close(fd)
            service["secretFiles"][var] = local
    json.dump(m, sys.stdout, indent=1, sort_keys=True)


def localize_lb_ports(m):
    """Moves each listener on a privileged port up by DEMO_LB_PORT_OFFSET,
    unless something else of the cluster already uses the new port."""
    def strings(value):
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    taken = {p["port"] for s in m["services"].values() for p in s["ports"].values()}
    taken |= {listener["port"] for listener in m["lb"]["listeners"].values()}
    for node in m["nodes"].values():
        for value in strings(node["daemons"]):
            found = re.fullmatch(r"(?:https?://)?[^\s/]+:(\d+)/?", value)
            if found:
                taken.add(int(found.group(1)))
    for name, listener in sorted(m["lb"]["listeners"].items()):
        port = listener["port"]
        if port >= 1024:
            continue
        local = port + DEMO_LB_PORT_OFFSET
        if local in taken:
            sys.exit(f"demo: listener {name} would move from port {port} to {local}, which the cluster already uses")
        listener["port"] = local
        taken.add(local)


main()
