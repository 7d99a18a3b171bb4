/* The XDP tier's maps as both sides see them: the BPF program
 * (xdp_relay.bpf.c, C for the BPF target) and relayd (xdp_tier.cc, C++).
 * Plain C with fixed-size fields and explicit padding, so the two compilers
 * lay them out the same; xdp_tier.cc checks the sizes against the BTF of
 * the loaded object. Addresses and ports are in network byte order, as they
 * sit in the packet. */
#ifndef PEERRELAY_ENGINE_XDP_ABI_H_
#define PEERRELAY_ENGINE_XDP_ABI_H_

#include <linux/types.h>

/* One bound side: IPv4 in the first 4 bytes of addr (the rest zero), or
 * IPv6. */
struct xdp_side {
  __u8 addr[16];
  __be16 port;
  __u8 family; /* XDP_FAMILY_* */
  __u8 pad;
};

#define XDP_FAMILY_IPV4 4
#define XDP_FAMILY_IPV6 6

/* pairs: VNI -> the two sides of a bound endpoint (both of one family) and
 * the slot of its traffic figures in `stats`. */
struct xdp_pair {
  struct xdp_side side[2];
  __u32 slot;
};

/* stats (per CPU): what the program forwarded *from* side i, in datagrams
 * and UDP payload bytes. Slots are relayd's to hand out and to zero. */
struct xdp_slot_stats {
  __u64 packets[2];
  __u64 bytes[2];
};

/* local_addrs: the relay's own addresses (the destinations it answers on);
 * the value is unused. */
struct xdp_local_addr {
  __u8 addr[16];
  __u8 family;
  __u8 pad[3];
};

/* passes (per CPU): datagrams for the relay's port the program handed to
 * the sockets unchanged, by why. Only traffic to a local address and the
 * relay port is counted; everything else on the interface is not ours. */
enum xdp_pass_reason {
  XDP_PASS_IP_OPTIONS = 0,  /* IPv4 options or IPv6 extension headers */
  XDP_PASS_FRAGMENT,        /* an IPv4 fragment */
  XDP_PASS_BAD_LENGTH,      /* IP and UDP lengths disagree, or over MTU */
  XDP_PASS_SHORT,           /* no whole Geneve header */
  XDP_PASS_CONTROL,         /* control bit set: the slow path's */
  XDP_PASS_UNKNOWN_VNI,     /* no bound pair with this VNI */
  XDP_PASS_UNKNOWN_SOURCE,  /* from neither side's address and port */
  XDP_PASS_NO_ROUTE,        /* the FIB has no unicast route out */
  XDP_PASS_NO_NEIGHBOUR,    /* the next hop's MAC is not resolved yet */
  XDP_PASS_FORWARDING_OFF,  /* forwarding is off on the interface: the
                               kernel's FIB lookup refuses (docs/xdp.md) */
  XDP_PASS_ZERO_CHECKSUM6,  /* IPv6 UDP with checksum 0 (invalid) */
  XDP_PASS_REASONS
};

/* The TTL / hop limit forwarded datagrams leave with: the socket path
 * originates them anew with the kernel's default, 64. */
#define XDP_OUT_TTL 64

#endif /* PEERRELAY_ENGINE_XDP_ABI_H_ */
