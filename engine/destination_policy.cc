#include "engine/destination_policy.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <tuple>

namespace cde {
namespace {

using Bytes = std::array<uint8_t, 16>;

constexpr Bytes kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool InNetwork(const Bytes& a, const Bytes& network, int prefix) {
  for (int bit = 0; bit < prefix; ++bit) {
    const int byte = bit / 8;
    const uint8_t mask = static_cast<uint8_t>(0x80 >> (bit % 8));
    if ((a[byte] & mask) != (network[byte] & mask)) return false;
  }
  return true;
}

struct BuiltInRange {
  const char* cidr;
  const char* what;
  bool clients_only;
};

// The ranges rule 3 and 4 of the header deny.
constexpr BuiltInRange kBuiltIn[] = {
    {"0.0.0.0/8", "the unspecified address (it reaches this host)", false},
    {"::/128", "the unspecified address (it reaches this host)", false},
    {"169.254.0.0/16", "link-local (cloud metadata services live there)",
     false},
    {"fe80::/10", "link-local", false},
    {"127.0.0.0/8", "loopback", true},
    {"::1/128", "loopback", true},
    {"10.0.0.0/8", "a private range", true},
    {"172.16.0.0/12", "a private range", true},
    {"192.168.0.0/16", "a private range", true},
    {"100.64.0.0/10", "a private (carrier-grade NAT) range", true},
    {"fc00::/7", "a private (unique local) range", true},
    {"fec0::/10", "a private (site-local) range", true},
};

const std::vector<DestinationRule>& BuiltInRules() {
  static const auto* rules = [] {
    auto* out = new std::vector<DestinationRule>;
    for (const BuiltInRange& r : kBuiltIn) {
      out->push_back(ParseDestinationRule(r.cidr).value());
    }
    return out;
  }();
  return *rules;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

// A DNS name of ASCII letters, digits and hyphens in non-empty labels.
bool IsHostName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return false;
    }
    if (++label > 63) return false;
  }
  return label > 0;
}

std::string NormalName(std::string_view host) {
  std::string name = Lower(host);
  if (!name.empty() && name.back() == '.') name.pop_back();
  return name;
}

bool NameMatches(const DestinationRule& rule, const std::string& name) {
  if (rule.kind == DestinationRule::Kind::kName) return name == rule.name;
  if (rule.kind == DestinationRule::Kind::kWildcard) {
    return name.size() > rule.name.size() && name.ends_with(rule.name);
  }
  return false;
}

bool AddressMatches(const DestinationRule& rule, const IpAddress& a) {
  return rule.kind == DestinationRule::Kind::kNetwork &&
         InNetwork(a.bytes, rule.address, rule.prefix);
}

// built_in[4..5] are loopback.
bool IsLoopbackOrUnspecified(const IpAddress& a) {
  const auto& built_in = BuiltInRules();
  return a.IsUnspecified() || AddressMatches(built_in[4], a) ||
         AddressMatches(built_in[5], a);
}

}  // namespace

std::optional<IpAddress> IpAddress::FromSockaddr(const sockaddr* addr) {
  IpAddress out;
  if (addr->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    out.bytes = kMappedPrefix;
    std::memcpy(&out.bytes[12], &in->sin_addr, 4);
    out.port = ntohs(in->sin_port);
    return out;
  }
  if (addr->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    std::memcpy(out.bytes.data(), &in6->sin6_addr, 16);
    out.port = ntohs(in6->sin6_port);
    return out;
  }
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::FromLiteral(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  // inet_pton wants a terminated string and no zone ("fe80::1%eth0").
  const std::string s(text.substr(0, text.find('%')));
  IpAddress out;
  in_addr v4;
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    out.bytes = kMappedPrefix;
    std::memcpy(&out.bytes[12], &v4, 4);
    return out;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out.bytes.data(), &v6, 16);
    return out;
  }
  return std::nullopt;
}

std::string IpAddress::ToString() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (std::equal(kMappedPrefix.begin(), kMappedPrefix.begin() + 12,
                 bytes.begin())) {
    inet_ntop(AF_INET, &bytes[12], text, sizeof text);
  } else {
    inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
  }
  return text;
}

bool IpAddress::IsUnspecified() const {
  const auto& built_in = BuiltInRules();
  return AddressMatches(built_in[0], *this) ||
         AddressMatches(built_in[1], *this);
}

Result<DestinationRule> ParseDestinationRule(std::string_view entry) {
  DestinationRule rule;
  rule.text = std::string(entry);
  const auto invalid = [&](const std::string& why) {
    return Status::InvalidArgument("'" + rule.text + "': " + why);
  };
  if (entry.empty()) return invalid("empty");
  const size_t slash = entry.find('/');
  const std::string_view host = entry.substr(0, slash);
  if (auto address = IpAddress::FromLiteral(host)) {
    const bool v4 = host.find(':') == std::string_view::npos;
    rule.kind = DestinationRule::Kind::kNetwork;
    rule.address = address->bytes;
    rule.prefix = 128;
    if (slash != std::string_view::npos) {
      const std::string_view bits = entry.substr(slash + 1);
      const int max = v4 ? 32 : 128;
      int n = 0;
      if (bits.empty() || bits.size() > 3 ||
          !std::all_of(bits.begin(), bits.end(),
                       [](char c) { return c >= '0' && c <= '9'; }) ||
          (n = std::stoi(std::string(bits))) > max) {
        return invalid("the prefix length must be a number from 0 to " +
                       std::to_string(max));
      }
      rule.prefix = v4 ? 96 + n : n;
    }
    return rule;
  }
  if (slash != std::string_view::npos) {
    return invalid("a prefix length needs an IPv4 or IPv6 address before it");
  }
  std::string name = NormalName(entry);
  if (name.starts_with("*.")) {
    rule.kind = DestinationRule::Kind::kWildcard;
    name.erase(0, 1);  // keeps the dot
    if (!IsHostName(name.substr(1))) {
      return invalid(
          "after '*.' comes a host name (ASCII letters, digits, "
          "'-' and '.'; an IDN in its xn-- form)");
    }
  } else if (!IsHostName(name)) {
    return invalid(
        "not an address, a CIDR, a host name or '*.' and a "
        "domain (names are ASCII: an IDN in its xn-- form)");
  }
  rule.name = std::move(name);
  return rule;
}

Result<DestinationPolicy> DestinationPolicy::Compile(const HttpPolicy& config) {
  DestinationPolicy policy;
  for (auto [entries, out, key] :
       {std::tuple{&config.allow, &policy.allow_, "allow"},
        std::tuple{&config.deny, &policy.deny_, "deny"}}) {
    for (size_t i = 0; i < entries->size(); ++i) {
      auto rule = ParseDestinationRule((*entries)[i]);
      if (!rule.ok()) {
        return Status::InvalidArgument(std::string("actions.http.") + key +
                                       "[" + std::to_string(i) +
                                       "]: " + rule.status().message());
      }
      out->push_back(std::move(rule).value());
    }
  }
  return policy;
}

void DestinationPolicy::AddOwnListener(const IpAddress& listener) {
  own_listeners_.push_back(listener);
}

std::optional<DestinationPolicy::Verdict> DestinationPolicy::CheckHost(
    std::string_view host, bool client, std::string* reason) const {
  const std::string name = NormalName(host);
  if (auto literal = IpAddress::FromLiteral(name)) {
    // Without a port: the listener rule needs one, and waits for connect.
    std::string why = CheckAddress(*literal, client);
    if (why.empty()) return std::nullopt;
    *reason = std::move(why);
    return Verdict::kRefused;
  }
  for (const DestinationRule& rule : allow_) {
    if (NameMatches(rule, name)) return Verdict::kAllowed;
  }
  for (const DestinationRule& rule : deny_) {
    if (NameMatches(rule, name)) {
      *reason =
          "host " + name + " matches '" + rule.text + "' in actions.http.deny";
      return Verdict::kRefused;
    }
  }
  return std::nullopt;
}

std::string DestinationPolicy::CheckAddress(const IpAddress& addr, bool client,
                                            bool host_allowed) const {
  const std::string text = addr.ToString();
  const auto& built_in = BuiltInRules();
  // Before `allow`: allowing loopback must not open the server's own API.
  if (addr.port != 0) {
    for (const IpAddress& own : own_listeners_) {
      if (own.port != addr.port) continue;
      // Loopback is treated as one host: 127.0.0.2 reaches a listener on
      // 0.0.0.0 as well as 127.0.0.1 does.
      if (own.bytes == addr.bytes ||
          (IsLoopbackOrUnspecified(own) && IsLoopbackOrUnspecified(addr))) {
        return "address " + text + " port " + std::to_string(addr.port) +
               " is this server's own listener";
      }
    }
  }
  if (host_allowed) return "";
  for (const DestinationRule& rule : allow_) {
    if (AddressMatches(rule, addr)) return "";
  }
  for (const DestinationRule& rule : deny_) {
    if (AddressMatches(rule, addr)) {
      return "address " + text + " matches '" + rule.text +
             "' in actions.http.deny";
    }
  }
  for (size_t i = 0; i < built_in.size(); ++i) {
    if (kBuiltIn[i].clients_only && !client) continue;
    if (AddressMatches(built_in[i], addr)) {
      return "address " + text + " is " + kBuiltIn[i].what +
             (kBuiltIn[i].clients_only
                  ? ", which definitions registered by clients may not reach"
                  : "") +
             "; list it in actions.http.allow to allow it";
    }
  }
  return "";
}

Result<std::string> HostOfUrl(const std::string& url) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(),
                                                        &curl_url_cleanup);
  if (u == nullptr) return Status::IOError("curl_url: out of memory");
  if (CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0);
      rc != CURLUE_OK) {
    return Status::InvalidArgument("url '" + url +
                                   "': " + curl_url_strerror(rc));
  }
  char* host = nullptr;
  CURLUcode rc = curl_url_get(u.get(), CURLUPART_HOST, &host, CURLU_PUNYCODE);
  if (rc != CURLUE_OK) {
    curl_free(host);  // null, or what curl left
    return Status::InvalidArgument("url '" + url +
                                   "': " + curl_url_strerror(rc));
  }
  std::string out = host;
  curl_free(host);
  if (out.size() >= 2 && out.front() == '[' && out.back() == ']') {
    out = out.substr(1, out.size() - 2);
  }
  return out;
}

}  // namespace cde
