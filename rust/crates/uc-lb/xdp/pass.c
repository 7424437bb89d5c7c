// SPDX-License-Identifier: GPL-2.0 OR MIT
// Passes every packet on. For the peer of a veth that native XDP sends
// frames into (XDP_TX or XDP_REDIRECT): veth takes them only when its peer
// runs an XDP program. Used by uc-lb's tests and benchmark, and by an
// operator whose LB faces a veth (docs/lb.md).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
