// SPDX-License-Identifier: GPL-2.0 OR MIT
// uc-lb's XDP fast path (Katran's design): packets to a VIP:port are sent
// to a backend chosen by the listener's Maglev table, remembered per flow
// in an LRU connection table so a flow keeps its backend when the set
// changes, IPIP-encapsulated and sent out (XDP_TX on the interface they came
// in, else XDP_REDIRECT) towards the backend, which decapsulates and answers
// the client directly (DSR). Everything else goes on to the kernel.
//
// The maps are fed by uc-lb (src/xdp/): layouts here and in src/xdp/maps.rs
// must match. Addresses and ports are kept in network byte order.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_VIPS 16
#define MAX_BACKENDS 4096
// Maglev's own table size, a prime: one ring per VIP (uc-lb's maglev.rs
// gives this size up to 655 backends of weight 1).
#define RING_SIZE 65537
#define CONNTRACK_SIZE 262144
#define IPIP_OVERHEAD ((int)sizeof(struct iphdr))

struct vip_key {
	__u32 addr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

struct vip_meta {
	__u32 index; // ring and counters of this VIP
};

struct flow_key {
	__u32 src;
	__u32 dst;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct backend {
	__u32 addr; // 0: no backend
};

struct counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;  // connection-table misses: a backend chosen by Maglev
	__u64 no_backend; // dropped: the VIP's ring is empty
	__u64 too_big;    // dropped: too big for the path to the backend after encapsulation
	__u64 no_route;   // passed to the kernel: no route or neighbour to the backend yet
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIPS);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
} vips SEC(".maps");

// MAX_VIPS rings of RING_SIZE backend ids each.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_VIPS * RING_SIZE);
	__type(key, __u32);
	__type(value, __u32);
} rings SEC(".maps");

// Backend ids are never reused for another address while uc-lb runs, so a
// remembered flow always reaches the backend it started on.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CONNTRACK_SIZE);
	__type(key, struct flow_key);
	__type(value, __u32); // backend id
} conntrack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_VIPS);
	__type(key, __u32);
	__type(value, struct counters);
} stats SEC(".maps");

// murmur3's finaliser; src/xdp/maps.rs has the same (flow_hash).
static __always_inline __u32 mix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 flow_hash(const struct flow_key *k)
{
	__u32 ports = (__u32)k->sport | ((__u32)k->dport << 16);
	__u32 h = 0x811c9dc5;
	h = mix(h ^ k->src);
	h = mix(h ^ k->dst);
	h = mix(h ^ ports);
	return mix(h ^ k->proto);
}

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

static __always_inline void ip_checksum(struct iphdr *ip)
{
	__u16 *words = (__u16 *)ip;
	__u64 sum = 0;
	ip->check = 0;
#pragma unroll
	for (int i = 0; i < (int)sizeof(struct iphdr) / 2; i++)
		sum += words[i];
	ip->check = csum_fold(sum);
}

SEC("xdp")
int balancer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl < 5)
		return XDP_PASS;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	// Fragments carry no ports: the kernel gets them.
	if (ip->frag_off & bpf_htons(0x3fff))
		return XDP_PASS;
	// Both TCP and UDP headers start with the two ports.
	__u16 *ports = (void *)ip + ip->ihl * 4;
	if ((void *)(ports + 2) > data_end)
		return XDP_PASS;

	struct vip_key vk = {
		.addr = ip->daddr, .port = ports[1], .proto = ip->protocol};
	struct vip_meta *vip = bpf_map_lookup_elem(&vips, &vk);
	if (!vip)
		return XDP_PASS;
	__u32 index = vip->index;
	struct counters *c = bpf_map_lookup_elem(&stats, &index);
	if (!c)
		return XDP_PASS;
	__u16 tot_len = bpf_ntohs(ip->tot_len);
	c->packets++;
	c->bytes += tot_len;

	struct flow_key fk = {
		.src = ip->saddr,
		.dst = ip->daddr,
		.sport = ports[0],
		.dport = ports[1],
		.proto = ip->protocol};
	__u32 *remembered = bpf_map_lookup_elem(&conntrack, &fk);
	__u32 backend_id;
	if (remembered) {
		backend_id = *remembered;
	} else {
		if (index >= MAX_VIPS)
			return XDP_PASS;
		__u32 slot = index * RING_SIZE + flow_hash(&fk) % RING_SIZE;
		__u32 *chosen = bpf_map_lookup_elem(&rings, &slot);
		if (!chosen || *chosen == 0) {
			c->no_backend++;
			return XDP_DROP;
		}
		backend_id = *chosen;
		c->new_flows++;
		bpf_map_update_elem(&conntrack, &fk, &backend_id, BPF_ANY);
	}
	struct backend *be = bpf_map_lookup_elem(&backends, &backend_id);
	if (!be || be->addr == 0) {
		c->no_backend++;
		return XDP_DROP;
	}

	// The route and neighbour towards the backend, as the kernel has them
	// (no next-hop map to keep in step with ARP), looked up as for a packet
	// this node sends out of the interface the packet came in on (Katran's
	// XDP_TX), with that route's source. The kernel answers only when the
	// interface has forwarding on: uc-lb turns it on while attached.
	struct bpf_fib_lookup fib = {};
	fib.family = 2; // AF_INET
	fib.l4_protocol = IPPROTO_IPIP;
	fib.tot_len = tot_len + IPIP_OVERHEAD;
	fib.ifindex = ctx->ingress_ifindex;
	fib.ipv4_dst = be->addr;
	int rc = bpf_fib_lookup(ctx, &fib, sizeof(fib),
				BPF_FIB_LOOKUP_OUTPUT | BPF_FIB_LOOKUP_SRC);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		c->too_big++;
		return XDP_DROP;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		// No route via this interface or no resolved neighbour (uc-lb's
		// health probes resolve it): the kernel gets the packet, and a
		// userspace listener on the VIP serves the flow.
		c->no_route++;
		return XDP_PASS;
	}

	if (bpf_xdp_adjust_head(ctx, -IPIP_OVERHEAD))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	struct ethhdr *new_eth = data;
	struct iphdr *outer = data + sizeof(struct ethhdr);
	if ((void *)(outer + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(new_eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(new_eth->h_source, fib.smac, ETH_ALEN);
	new_eth->h_proto = bpf_htons(ETH_P_IP);
	outer->version = 4;
	outer->ihl = 5;
	outer->tos = 0;
	outer->tot_len = bpf_htons(tot_len + IPIP_OVERHEAD);
	outer->id = 0;
	outer->frag_off = bpf_htons(0x4000); // DF
	outer->ttl = 64;
	outer->protocol = IPPROTO_IPIP;
	outer->saddr = fib.ipv4_src;
	outer->daddr = be->addr;
	ip_checksum(outer);
	if (fib.ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(fib.ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
