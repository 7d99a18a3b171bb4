// relayd's configuration: every flag, checked, in one struct. What
// --check_config reports and what serving uses.
#ifndef PEERRELAY_TOOLS_RELAYD_CONFIG_H_
#define PEERRELAY_TOOLS_RELAYD_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/socket_address.h"
#include "disco/key.h"
#include "disco/message.h"
#include "engine/relay.h"

namespace peerrelay {

// An --advertise entry, parsed once: its port is the relay's unless given.
struct AdvertiseSpec {
  SocketAddress addr;
  bool explicit_port = false;
};

// Everything the flags say, checked: what --check_config reports and what
// serving uses.
struct RelaydConfig {
  std::optional<disco::KeyPair> key_pair;  // always set by ParseConfig
  std::string key_file;
  bool key_missing = false;  // --check_config with a key file not there yet
  uint16_t port = 0;
  SocketAddress listen;
  std::vector<AdvertiseSpec> advertise;
  disco::Dialect dialect = disco::Dialect::kCurrent;
  std::string engine = "auto";  // a row of engine/engines.h, or auto
  int workers = 0;
  bool pin_cpus = false;
  absl::Duration bind_lifetime, steady_state_lifetime;
  uint32_t max_endpoints = 0;
  std::string max_endpoints_why;  // how an automatic cap was sized
  uint32_t max_endpoints_per_caller = 0;
  double alloc_rate_total = 0, alloc_burst_total = 0;
  absl::flat_hash_set<disco::DiscoKey> allowlist;
  std::string token;
  std::string read_token;
  std::string bridge_token;
  std::optional<SocketAddress> admin_listen;
  std::optional<SocketAddress> metrics_listen;
  log::Level log_level = log::Level::kInfo;
  double alloc_rate = 0, alloc_burst = 0;
  absl::Duration stats_interval, run_for, drain_timeout, stop_timeout;
  std::string status_file;  // --status_file; empty: none
  // Opt-in recording of the relay's traffic (empty: off).
  std::string capture_file;
  uint64_t capture_max_bytes = 0;
  engine::UringOptions uring;
  // The XDP tier: "off", "auto", "native" or "generic", on these
  // interfaces, for at most this many pairs.
  std::string xdp = "off";
  std::vector<std::string> xdp_interfaces;
  uint32_t xdp_max_pairs = 65536;
};

// Reads and checks every flag except --print_public_key and --check_config.
// `read_only` (those two modes): the key file is read, never created.
absl::StatusOr<RelaydConfig> ParseConfig(bool read_only);

// --check_config's report (stdout); returns the exit code.
int PrintCheck(const RelaydConfig& c);

// The addresses handed to clients: --advertise (the relay's port where none
// was given), else a specific listen address, else the host's addresses.
std::vector<SocketAddress> Advertised(const RelaydConfig& c,
                                      uint16_t bound_port);

// Why an advertised address may not be reachable by clients elsewhere:
// "loopback", "private (RFC 1918)", "shared (RFC 6598 CGNAT)",
// "unique local (ULA)", "link-local", "unspecified"; empty for a global
// address.
std::string AddressScope(const SocketAddress& a);

// Logs a warning (auto-detected addresses) or a notice (--advertise) for
// every advertised address that is not global.
void WarnAboutAdvertised(const RelaydConfig& c,
                         const std::vector<SocketAddress>& advertised);

// The files SIGHUP reloads. Secret paths may be "credential:NAME", a file
// in systemd's $CREDENTIALS_DIRECTORY (LoadCredential=).
absl::StatusOr<absl::flat_hash_set<disco::DiscoKey>> LoadAllowlist(
    const std::string& path);
absl::StatusOr<std::string> LoadToken(const std::string& path);
// The --allocate_allowlist, --admin_token_file, --admin_read_token_file and
// --admin_bridge_token_file values.
std::string AllowlistFlag();
bool CheckConfigFlag();
bool PrintPublicKeyFlag();
std::string TokenFlag();
std::string ReadTokenFlag();
std::string BridgeTokenFlag();

}  // namespace peerrelay

#endif  // PEERRELAY_TOOLS_RELAYD_CONFIG_H_
