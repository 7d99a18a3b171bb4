// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* relayd's XDP tier: forwards Geneve data datagrams between the two bound
 * sides of an endpoint in the driver hook, and hands everything else to the
 * sockets unchanged (docs/xdp.md).
 *
 * A datagram is forwarded only when every one of these holds; the first
 * that does not sends it up the stack as it came (XDP_PASS):
 *   Ethernet II carrying IPv4 (no options, not a fragment) or IPv6 (UDP as
 *   the first next header); IP and UDP lengths agree and fit the MTU; to one
 *   of the relay's addresses and its port; at least a Geneve header; the
 *   control bit clear; a bound pair for the VNI; the source is one side's
 *   exact address and port; the kernel's FIB has a resolved next hop for the
 *   other side. The datagram then leaves from the address it arrived on and
 *   the relay's port, to the other side's address and port, with TTL / hop
 *   limit XDP_OUT_TTL, checksums fixed (a zero IPv4 UDP checksum stays
 *   zero), its UDP payload untouched.
 *
 * relayd fills `pairs` and `local_addrs`, reads `stats` and `passes`, and
 * sets the constants below before loading. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "engine/xdp_abi.h"

#define AF_INET 2
#define AF_INET6 10
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define GENEVE_HEADER 8

/* Set by relayd before load. */
const volatile __be16 relay_port = 0;
/* The largest IP datagram the attached interfaces carry (their MTU): a
 * larger one can only be several datagrams merged by GRO (generic mode sees
 * skbs after GRO), which must not be forwarded as one. */
const volatile __u32 max_ip_len = 1500;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, __u32);
  __type(value, struct xdp_pair);
  __uint(max_entries, 65536);
} pairs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32);
  __type(value, struct xdp_slot_stats);
  __uint(max_entries, 65536);
} stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, struct xdp_local_addr);
  __type(value, __u8);
  __uint(max_entries, 256);
} local_addrs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32);
  __type(value, __u64);
  __uint(max_entries, XDP_PASS_REASONS);
} passes SEC(".maps");

static __always_inline int pass(__u32 reason) {
  __u64 *n = bpf_map_lookup_elem(&passes, &reason);
  if (n) *n += 1;
  return XDP_PASS;
}

/* One's-complement sum helpers (RFC 1624 incremental update). */
static __always_inline __u32 add16(__u32 sum, __u16 w) { return sum + w; }
static __always_inline __u32 sub16(__u32 sum, __u16 w) {
  return sum + (__u16)~w;
}
static __always_inline __u16 fold(__u32 sum) {
  sum = (sum & 0xFFFF) + (sum >> 16);
  sum = (sum & 0xFFFF) + (sum >> 16);
  return (__u16)sum;
}

/* The UDP checksum after the pseudo-header's source address and port and
 * destination address and port changed from (old_src, old_sport, ...) to
 * the new ones; `words` is the address length in 16-bit words. */
static __always_inline __u16 udp_csum_update(__u16 check, const __u16 *old_a,
                                             const __u16 *new_a,
                                             const __u16 *old_b,
                                             const __u16 *new_b, int words,
                                             __u16 old_sport, __u16 new_sport,
                                             __u16 old_dport,
                                             __u16 new_dport) {
  __u32 sum = (__u16)~check;
#pragma unroll
  for (int i = 0; i < 8; i++) {
    if (i < words) {
      sum = sub16(sum, old_a[i]);
      sum = add16(sum, new_a[i]);
      sum = sub16(sum, old_b[i]);
      sum = add16(sum, new_b[i]);
    }
  }
  sum = sub16(sum, old_sport);
  sum = add16(sum, new_sport);
  sum = sub16(sum, old_dport);
  sum = add16(sum, new_dport);
  __u16 out = (__u16)~fold(sum);
  return out == 0 ? 0xFFFF : out;
}

static __always_inline __u16 ipv4_header_csum(struct iphdr *ip) {
  __u16 *w = (__u16 *)ip;
  __u32 sum = 0;
  ip->check = 0;
#pragma unroll
  for (int i = 0; i < 10; i++) sum += w[i];
  return (__u16)~fold(sum);
}

/* The pair's side that sent this datagram (0 or 1), or -1. */
static __always_inline int side_of(const struct xdp_pair *p, __u8 family,
                                   const void *addr, __be16 port) {
#pragma unroll
  for (int s = 0; s < 2; s++) {
    const struct xdp_side *side = &p->side[s];
    if (side->family != family || side->port != port) continue;
    if (family == XDP_FAMILY_IPV4) {
      if (*(const __u32 *)side->addr == *(const __u32 *)addr) return s;
    } else {
      const __u64 *a = (const __u64 *)side->addr;
      const __u64 *b = (const __u64 *)addr;
      if (a[0] == b[0] && a[1] == b[1]) return s;
    }
  }
  return -1;
}

/* Why a FIB lookup that did not succeed sends the datagram up. */
static __always_inline int pass_fib(int rc) {
  if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) return pass(XDP_PASS_NO_NEIGHBOUR);
  if (rc == BPF_FIB_LKUP_RET_FWD_DISABLED)
    return pass(XDP_PASS_FORWARDING_OFF);
  return pass(XDP_PASS_NO_ROUTE);
}

static __always_inline int transmit(struct xdp_md *ctx, struct ethhdr *eth,
                                    struct bpf_fib_lookup *fib) {
  __builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
  __builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
  if (fib->ifindex == ctx->ingress_ifindex) return XDP_TX;
  return bpf_redirect(fib->ifindex, 0);
}

static __always_inline void count(const struct xdp_pair *p, int from,
                                  __u32 payload) {
  __u32 slot = p->slot;
  struct xdp_slot_stats *st = bpf_map_lookup_elem(&stats, &slot);
  if (!st) return;
  if (from == 0) {
    st->packets[0] += 1;
    st->bytes[0] += payload;
  } else {
    st->packets[1] += 1;
    st->bytes[1] += payload;
  }
}

/* The other side of the bound pair this datagram (UDP header `udp`, from
 * `saddr` of `family`) belongs to, with *from set to the sender's side; or
 * null with *reason set: no whole Geneve header, the control bit, no bound
 * pair for the VNI, or a source that is neither side. */
static __always_inline const struct xdp_side *
peer_of(struct udphdr *udp, void *end, __u8 family, const void *saddr,
        const struct xdp_pair **pair, int *from, __u32 *reason) {
  __u8 *g = (__u8 *)(udp + 1);
  if ((void *)(g + GENEVE_HEADER) > end) {
    *reason = XDP_PASS_SHORT;
    return 0;
  }
  if (g[1] & 0x80) {
    *reason = XDP_PASS_CONTROL;
    return 0;
  }
  __u32 vni = ((__u32)g[4] << 16) | ((__u32)g[5] << 8) | g[6];
  const struct xdp_pair *p = bpf_map_lookup_elem(&pairs, &vni);
  if (!p) {
    *reason = XDP_PASS_UNKNOWN_VNI;
    return 0;
  }
  *from = side_of(p, family, saddr, udp->source);
  if (*from < 0) {
    *reason = XDP_PASS_UNKNOWN_SOURCE;
    return 0;
  }
  *pair = p;
  return &p->side[*from ^ 1];
}

static __always_inline int relay_ipv4(struct xdp_md *ctx, struct ethhdr *eth,
                                      void *end) {
  struct iphdr *ip = (struct iphdr *)(eth + 1);
  if ((void *)(ip + 1) > end) return XDP_PASS;
  if (ip->version != 4 || ip->protocol != IPPROTO_UDP) return XDP_PASS;
  struct udphdr *udp = (struct udphdr *)(ip + 1);
  /* Options move the UDP header; whether it is ours cannot be read at a
   * fixed place, so the stack decides (it is counted when it is ours). */
  if (ip->ihl != 5) {
    struct udphdr *u = (struct udphdr *)((__u8 *)ip + ip->ihl * 4);
    if (ip->ihl > 5 && (void *)(u + 1) <= end && u->dest == relay_port)
      return pass(XDP_PASS_IP_OPTIONS);
    return XDP_PASS;
  }
  if ((void *)(udp + 1) > end) return XDP_PASS;
  if (udp->dest != relay_port) return XDP_PASS;
  struct xdp_local_addr local = {.family = XDP_FAMILY_IPV4};
  __builtin_memcpy(local.addr, &ip->daddr, 4);
  if (!bpf_map_lookup_elem(&local_addrs, &local)) return XDP_PASS;
  if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
    return pass(XDP_PASS_FRAGMENT);
  __u32 ip_len = bpf_ntohs(ip->tot_len);
  __u32 udp_len = bpf_ntohs(udp->len);
  if (ip_len > max_ip_len || (void *)ip + ip_len > end ||
      udp_len != ip_len - sizeof(*ip) || udp_len < sizeof(*udp))
    return pass(XDP_PASS_BAD_LENGTH);

  __u32 reason = 0;
  const struct xdp_pair *p = 0;
  int from = 0;
  const struct xdp_side *to = peer_of(udp, end, XDP_FAMILY_IPV4, &ip->saddr,
                                      &p, &from, &reason);
  if (!to) return pass(reason);

  __be32 new_dst;
  __builtin_memcpy(&new_dst, to->addr, 4);
  struct bpf_fib_lookup fib = {};
  fib.family = AF_INET;
  fib.l4_protocol = IPPROTO_UDP;
  fib.sport = relay_port;
  fib.dport = to->port;
  fib.tot_len = ip_len;
  fib.tos = ip->tos;
  fib.ipv4_src = ip->daddr;
  fib.ipv4_dst = new_dst;
  fib.ifindex = ctx->ingress_ifindex;
  const int rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
  if (rc != BPF_FIB_LKUP_RET_SUCCESS) return pass_fib(rc);

  const __be32 old_src = ip->saddr, old_dst = ip->daddr;
  const __be16 old_sport = udp->source, old_dport = udp->dest;
  if (udp->check != 0) {
    udp->check = udp_csum_update(udp->check, (const __u16 *)&old_src,
                                 (const __u16 *)&new_dst,
                                 (const __u16 *)&old_dst,
                                 (const __u16 *)&old_dst, 2, old_sport,
                                 relay_port, old_dport, to->port);
  }
  ip->saddr = old_dst;
  ip->daddr = new_dst;
  ip->ttl = XDP_OUT_TTL;
  ip->check = ipv4_header_csum(ip);
  udp->source = relay_port;
  udp->dest = to->port;
  count(p, from, udp_len - sizeof(*udp));
  return transmit(ctx, eth, &fib);
}

static __always_inline int relay_ipv6(struct xdp_md *ctx, struct ethhdr *eth,
                                      void *end) {
  struct ipv6hdr *ip = (struct ipv6hdr *)(eth + 1);
  if ((void *)(ip + 1) > end) return XDP_PASS;
  if (ip->version != 6) return XDP_PASS;
  /* Extension headers move the UDP header: the stack's. */
  if (ip->nexthdr != IPPROTO_UDP) return XDP_PASS;
  struct udphdr *udp = (struct udphdr *)(ip + 1);
  if ((void *)(udp + 1) > end) return XDP_PASS;
  if (udp->dest != relay_port) return XDP_PASS;
  struct xdp_local_addr local = {.family = XDP_FAMILY_IPV6};
  __builtin_memcpy(local.addr, &ip->daddr, 16);
  if (!bpf_map_lookup_elem(&local_addrs, &local)) return XDP_PASS;
  __u32 payload_len = bpf_ntohs(ip->payload_len);
  __u32 udp_len = bpf_ntohs(udp->len);
  if (payload_len + sizeof(*ip) > max_ip_len ||
      (void *)(udp) + payload_len > end || udp_len != payload_len ||
      udp_len < sizeof(*udp))
    return pass(XDP_PASS_BAD_LENGTH);
  if (udp->check == 0) return pass(XDP_PASS_ZERO_CHECKSUM6);

  __u32 reason = 0;
  const struct xdp_pair *p = 0;
  int from = 0;
  const struct xdp_side *to = peer_of(udp, end, XDP_FAMILY_IPV6, &ip->saddr,
                                      &p, &from, &reason);
  if (!to) return pass(reason);

  struct bpf_fib_lookup fib = {};
  fib.family = AF_INET6;
  fib.l4_protocol = IPPROTO_UDP;
  fib.sport = relay_port;
  fib.dport = to->port;
  fib.tot_len = payload_len + sizeof(*ip);
  __builtin_memcpy(fib.ipv6_src, &ip->daddr, 16);
  __builtin_memcpy(fib.ipv6_dst, to->addr, 16);
  fib.ifindex = ctx->ingress_ifindex;
  const int rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
  if (rc != BPF_FIB_LKUP_RET_SUCCESS) return pass_fib(rc);

  struct in6_addr old_src = ip->saddr, old_dst = ip->daddr, new_dst;
  __builtin_memcpy(&new_dst, to->addr, 16);
  udp->check = udp_csum_update(udp->check, (const __u16 *)&old_src,
                               (const __u16 *)&new_dst,
                               (const __u16 *)&old_dst,
                               (const __u16 *)&old_dst, 8, udp->source,
                               relay_port, udp->dest, to->port);
  ip->saddr = old_dst;
  ip->daddr = new_dst;
  ip->hop_limit = XDP_OUT_TTL;
  udp->source = relay_port;
  udp->dest = to->port;
  count(p, from, udp_len - sizeof(*udp));
  return transmit(ctx, eth, &fib);
}

SEC("xdp")
int relay_xdp(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end) return XDP_PASS;
  if (eth->h_proto == bpf_htons(ETH_P_IP)) return relay_ipv4(ctx, eth, end);
  if (eth->h_proto == bpf_htons(ETH_P_IPV6)) return relay_ipv6(ctx, eth, end);
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
