// Fuzzes the http destination policy (engine/destination_policy.h): its
// entries, the URLs whose host it judges (with curl's own URL parser, odd
// encodings, IPv6, userinfo, IDN) and the addresses it matches.
//
// Input: the first line is a URL; each further line an entry, "+" for
// allow or "-" for deny followed by the entry (other lines are skipped).
//
// Checks beyond "no crash, no UB, no leak":
//   - an address printed and parsed again is the same address;
//   - for a URL whose host is an IP literal, the host check and the
//     address check agree (one refuses exactly when the other does), and
//     a mapped IPv4 address is judged as the IPv4 address it is;
//   - an address inside an accepted allow CIDR is allowed, and one inside
//     an accepted deny CIDR (and no allow CIDR) is refused;
//   - a host name is judged the same whatever its case.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "engine/destination_policy.h"

namespace {

using namespace cde;

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_destination_policy: %s: %s\n", what,
               detail.c_str());
  std::abort();
}

std::vector<std::string> Lines(std::string_view data) {
  std::vector<std::string> out;
  while (!data.empty()) {
    const size_t nl = data.find('\n');
    out.emplace_back(data.substr(0, nl));
    if (nl == std::string_view::npos) break;
    data.remove_prefix(nl + 1);
  }
  return out;
}

bool Refused(const DestinationPolicy& p, const std::string& host, bool client) {
  std::string reason;
  return p.CheckHost(host, client, &reason) ==
         DestinationPolicy::Verdict::kRefused;
}

// Whether one of `networks` holds `a`: allowed by that entry alone, when
// everything else is denied.
bool InAny(const std::vector<DestinationRule>& networks, const IpAddress& a) {
  for (const DestinationRule& n : networks) {
    auto only = DestinationPolicy::Compile(
        {.allow = {n.text}, .deny = {"0.0.0.0/0", "::/0"}});
    if (only.ok() && only->CheckAddress(a, true).empty()) return true;
  }
  return false;
}

void CheckRoundTrip(const IpAddress& a) {
  const std::string text = a.ToString();
  auto again = IpAddress::FromLiteral(text);
  if (!again || again->bytes != a.bytes) Fail("round trip", text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::vector<std::string> lines =
      Lines({reinterpret_cast<const char*>(data), size});
  if (lines.empty()) return 0;
  HttpPolicy config;
  std::vector<DestinationRule> allow_networks, deny_networks;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (line.empty() || (line[0] != '+' && line[0] != '-')) continue;
    const std::string entry = line.substr(1);
    auto rule = ParseDestinationRule(entry);
    if (!rule.ok()) continue;
    (line[0] == '+' ? config.allow : config.deny).push_back(entry);
    if (rule->kind == DestinationRule::Kind::kNetwork) {
      (line[0] == '+' ? allow_networks : deny_networks).push_back(*rule);
    }
  }
  auto compiled = DestinationPolicy::Compile(config);
  if (!compiled.ok())
    Fail("entries parsed alone do not compile", compiled.status().ToString());
  const DestinationPolicy& policy = *compiled;

  for (const auto* rules : {&allow_networks, &deny_networks}) {
    for (const DestinationRule& r : *rules) {
      IpAddress a;
      a.bytes = r.address;
      a.port = 443;
      CheckRoundTrip(a);
      const bool allowed = policy.CheckAddress(a, true).empty();
      if (rules == &allow_networks && !allowed) Fail("allow CIDR", r.text);
      if (rules == &deny_networks && allowed && !InAny(allow_networks, a)) {
        Fail("deny CIDR", r.text);
      }
    }
  }

  auto host = HostOfUrl(lines[0]);
  if (!host.ok()) return 0;
  for (bool client : {false, true}) {
    if (auto literal = IpAddress::FromLiteral(*host)) {
      CheckRoundTrip(*literal);
      const bool by_host = Refused(policy, *host, client);
      const bool by_address = !policy.CheckAddress(*literal, client).empty();
      if (by_host != by_address) Fail("host and address disagree", *host);
      // ::ffff:a.b.c.d and a.b.c.d are one address.
      auto printed = IpAddress::FromLiteral(literal->ToString());
      if (Refused(policy, literal->ToString(), client) != by_host ||
          printed->bytes != literal->bytes) {
        Fail("mapped address judged apart", *host);
      }
    } else {
      std::string upper = *host;
      for (char& c : upper) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
      std::string r1, r2;
      if (policy.CheckHost(*host, client, &r1) !=
          policy.CheckHost(upper, client, &r2)) {
        Fail("case changes the verdict", *host);
      }
    }
  }
  return 0;
}
