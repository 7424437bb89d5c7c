// SPDX-License-Identifier: GPL-2.0 OR MIT
// For backends of uc-lb's XDP fast path whose kernel has no ipip device
// (CONFIG_NET_IPIP unset), or that want decapsulation before the stack:
// strips the outer IPv4 header of IPIP packets (protocol 4) so the inner
// packet, addressed to the VIP (on lo), goes up as if sent directly.
// Everything else passes unchanged. Katran ships the same (decap).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *outer = (void *)(eth + 1);
	if ((void *)(outer + 1) > data_end || outer->protocol != IPPROTO_IPIP ||
	    outer->ihl != 5)
		return XDP_PASS;
	struct iphdr *inner = outer + 1;
	if ((void *)(inner + 1) > data_end || inner->version != 4)
		return XDP_PASS;
	struct ethhdr copy;
	__builtin_memcpy(&copy, eth, sizeof(copy));
	if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct iphdr)))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth, &copy, sizeof(copy));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
