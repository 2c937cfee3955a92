// DestinationPolicy: where the `http` action may connect. A step's URL can
// be built by a template from a saga's input, and the definition itself may
// come from an agent that a document has prompt-injected; without this, any
// client could read a cloud metadata service or the server's own API.
//
// The decision is made twice: on the URL's host name before the transfer
// (names in `allow` and `deny`), and on each address curl is about to
// connect to, after DNS resolution, so a name that resolves inside cannot
// slip through. In order, the first rule that matches decides:
//   0. the server's own listeners: refused, for every definition;
//   1. an `allow` entry (a name, an address or a CIDR): allowed;
//   2. a `deny` entry: refused;
//   3. built in, for every definition: the unspecified addresses
//      (0.0.0.0/8, ::), link-local (169.254.0.0/16, fe80::/10, where
//      metadata services live);
//   4. built in, for client definitions only: loopback (127.0.0.0/8, ::1)
//      and private ranges (10/8, 172.16/12, 192.168/16, 100.64/10,
//      fc00::/7, fec0::/10);
//   5. anything else: allowed.
// An allow-list is `deny: ["0.0.0.0/0", "::/0"]` plus the `allow` entries.
//
// Thread safety: const methods may run concurrently with each other, not
// with AddOwnListener.
#ifndef CDE_ENGINE_DESTINATION_POLICY_H_
#define CDE_ENGINE_DESTINATION_POLICY_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/status.h"

namespace cde {

// The configuration (actions.http in the server's configuration). Entries:
// an IPv4 or IPv6 address ("10.1.2.3", "::1", "[::1]"), a CIDR
// ("10.0.0.0/8", "fd00::/8"), a host name ("api.example.com", matched
// without regard to case) or a wildcard ("*.example.com": its subdomains,
// not example.com itself). Names are ASCII; an IDN is written in its
// xn-- form.
struct HttpPolicy {
  std::vector<std::string> allow;
  std::vector<std::string> deny;

  friend bool operator==(const HttpPolicy&, const HttpPolicy&) = default;
};

// One parsed entry.
struct DestinationRule {
  enum class Kind { kNetwork, kName, kWildcard };
  Kind kind = Kind::kName;
  std::string text;  // as configured, for messages
  // kNetwork: an IPv6 (or IPv4-mapped) address and prefix length over 128.
  std::array<uint8_t, 16> address{};
  int prefix = 0;
  // kName: the name; kWildcard: the suffix with its dot (".example.com").
  std::string name;
};

// Parses one entry; InvalidArgument saying what is wrong with it.
Result<DestinationRule> ParseDestinationRule(std::string_view entry);

// An address as 16 bytes: IPv6 as it is, IPv4 as ::ffff:a.b.c.d, so one
// comparison covers both (and a mapped address cannot dodge an IPv4 rule).
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  uint16_t port = 0;  // 0: any

  static std::optional<IpAddress> FromSockaddr(const sockaddr* addr);
  // A literal ("10.0.0.1", "::1", "[::1]"); nullopt if it is not one.
  static std::optional<IpAddress> FromLiteral(std::string_view text);
  std::string ToString() const;  // without the port
  bool IsUnspecified() const;    // 0.0.0.0/8 or ::
};

class DestinationPolicy {
 public:
  // InvalidArgument naming the entry ("actions.http.deny[1]: ...").
  static Result<DestinationPolicy> Compile(const HttpPolicy& config);

  // Denies connections to `listener`, an address and port of this server,
  // for every definition and whatever `allow` says. The caller adds one
  // per local address for a listener on an unspecified address; loopback
  // addresses are treated as one.
  void AddOwnListener(const IpAddress& listener);

  // The decision on a URL's host name before any address is known:
  // allowed or refused by a name (or literal address) rule, or nullopt
  // when the addresses decide. `host` as curl gives it (lower case, IDN
  // in punycode, IPv6 without brackets). `reason` gets why it was refused.
  enum class Verdict { kAllowed, kRefused };
  std::optional<Verdict> CheckHost(std::string_view host, bool client,
                                   std::string* reason) const;

  // "" if a connection to `addr` may be made (client: for a definition
  // registered by a client), else the reason it may not. With
  // `host_allowed` (CheckHost allowed the name), only the server's own
  // listeners are refused.
  std::string CheckAddress(const IpAddress& addr, bool client,
                           bool host_allowed = false) const;

 private:
  std::vector<DestinationRule> allow_;
  std::vector<DestinationRule> deny_;
  std::vector<IpAddress> own_listeners_;
};

// The host of an http(s) URL as curl will resolve it (see CheckHost), or
// InvalidArgument if curl cannot parse the URL.
Result<std::string> HostOfUrl(const std::string& url);

}  // namespace cde

#endif  // CDE_ENGINE_DESTINATION_POLICY_H_
