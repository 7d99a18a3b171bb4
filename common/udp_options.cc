#include "common/udp_options.h"

#include <netinet/in.h>
#include <netinet/udp.h>

#include <cstring>

namespace peerrelay {

void SetSocketBuffers(int fd, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0) {
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
  }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) != 0) {
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
  }
}

void SetUdpSegment(msghdr* m, void* ctrl, uint16_t seg) {
  std::memset(ctrl, 0, kUdpSegmentSpace);
  m->msg_control = ctrl;
  m->msg_controllen = kUdpSegmentSpace;
  cmsghdr* c = CMSG_FIRSTHDR(m);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  std::memcpy(CMSG_DATA(c), &seg, sizeof(seg));
}

size_t UdpGroSize(const msghdr& m) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr;
       c = CMSG_NXTHDR(const_cast<msghdr*>(&m), c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int v = 0;
      std::memcpy(&v, CMSG_DATA(c), sizeof(v));
      return size_t(v);
    }
  }
  return 0;
}

}  // namespace peerrelay
