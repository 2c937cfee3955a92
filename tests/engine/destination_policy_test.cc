// The http destination policy on its own: entries, the order of the rules,
// built-in ranges, names and the forms an address can take in a URL.
#include "engine/destination_policy.h"

#include <gtest/gtest.h>

#include <string>

namespace cde {
namespace {

IpAddress Ip(const std::string& text, uint16_t port = 0) {
  auto a = IpAddress::FromLiteral(text);
  EXPECT_TRUE(a.has_value()) << text;
  IpAddress out = a.value_or(IpAddress{});
  out.port = port;
  return out;
}

DestinationPolicy Compiled(HttpPolicy config) {
  auto p = DestinationPolicy::Compile(config);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? std::move(p).value() : DestinationPolicy{};
}

// The reason CheckHost refuses `host`, "" if it does not.
std::string HostRefusal(const DestinationPolicy& p, const std::string& host,
                        bool client) {
  std::string reason;
  const auto verdict = p.CheckHost(host, client, &reason);
  return verdict == DestinationPolicy::Verdict::kRefused ? reason : "";
}

TEST(DestinationRuleTest, ParsesAddressesNetworksNamesAndWildcards) {
  EXPECT_EQ(ParseDestinationRule("10.1.2.3")->prefix, 128);
  EXPECT_EQ(ParseDestinationRule("10.0.0.0/8")->prefix, 96 + 8);
  EXPECT_EQ(ParseDestinationRule("fd00::/8")->prefix, 8);
  EXPECT_EQ(ParseDestinationRule("[::1]")->kind,
            DestinationRule::Kind::kNetwork);
  EXPECT_EQ(ParseDestinationRule("API.Example.com.")->name, "api.example.com");
  auto wildcard = ParseDestinationRule("*.example.com");
  ASSERT_TRUE(wildcard.ok());
  EXPECT_EQ(wildcard->kind, DestinationRule::Kind::kWildcard);
  EXPECT_EQ(wildcard->name, ".example.com");
}

TEST(DestinationRuleTest, RefusesWhatItCannotMatchSayingWhy) {
  for (const char* bad :
       {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "name/8", "*.",
        "*", "a..b", "bücher.example", "http://example.com", "example.com:80",
        "a b"}) {
    auto r = ParseDestinationRule(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find(bad), std::string::npos);
    }
  }
}

TEST(DestinationPolicyTest, CompileNamesTheEntryThatIsWrong) {
  auto p =
      DestinationPolicy::Compile({.allow = {}, .deny = {"10.0.0.1", "x/3"}});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("actions.http.deny[1]"),
            std::string::npos)
      << p.status().message();
}

TEST(DestinationPolicyTest, MetadataUnspecifiedAndLinkLocalAreRefusedForAll) {
  DestinationPolicy p = Compiled({});
  for (bool client : {false, true}) {
    for (const char* a : {"169.254.169.254", "fe80::1", "0.0.0.0",
                          "::", "0.1.2.3", "::ffff:169.254.169.254"}) {
      EXPECT_NE(p.CheckAddress(Ip(a, 80), client), "") << a;
      EXPECT_NE(HostRefusal(p, a, client), "") << a;
    }
  }
  EXPECT_NE(p.CheckAddress(Ip("169.254.169.254"), false).find("link-local"),
            std::string::npos);
}

TEST(DestinationPolicyTest, LoopbackAndPrivateRangesAreRefusedForClientsOnly) {
  DestinationPolicy p = Compiled({});
  for (const char* a :
       {"127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1", "10.0.0.7",
        "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "fd12::1",
        "fc00::1", "fec0::1"}) {
    EXPECT_NE(p.CheckAddress(Ip(a, 443), /*client=*/true), "") << a;
    EXPECT_EQ(p.CheckAddress(Ip(a, 443), /*client=*/false), "") << a;
  }
  for (const char* a :
       {"8.8.8.8", "172.32.0.1", "2001:db8::1", "100.128.0.1"}) {
    EXPECT_EQ(p.CheckAddress(Ip(a, 443), /*client=*/true), "") << a;
  }
}

TEST(DestinationPolicyTest, AllowBeatsDenyAndBuiltInRules) {
  DestinationPolicy p =
      Compiled({.allow = {"10.1.0.0/16", "169.254.169.254", "internal.example"},
                .deny = {"0.0.0.0/0", "::/0"}});
  EXPECT_EQ(p.CheckAddress(Ip("10.1.2.3", 80), true), "");
  EXPECT_EQ(p.CheckAddress(Ip("169.254.169.254", 80), true), "");
  EXPECT_NE(p.CheckAddress(Ip("10.2.0.1", 80), true).find("actions.http.deny"),
            std::string::npos);
  EXPECT_NE(p.CheckAddress(Ip("8.8.8.8", 80), false), "");
  EXPECT_NE(p.CheckAddress(Ip("2001:db8::1", 80), false), "");
  std::string reason;
  EXPECT_EQ(p.CheckHost("INTERNAL.example.", true, &reason),
            DestinationPolicy::Verdict::kAllowed);
  // A name the allow list holds skips the address rules, but not the
  // server's own listener.
  EXPECT_EQ(p.CheckAddress(Ip("127.0.0.1", 80), true, /*host_allowed=*/true),
            "");
}

TEST(DestinationPolicyTest, DeniedNamesAndWildcards) {
  DestinationPolicy p = Compiled({.deny = {"evil.example", "*.corp.example"}});
  EXPECT_NE(HostRefusal(p, "Evil.Example", false), "");
  EXPECT_NE(HostRefusal(p, "db.corp.example", false), "");
  EXPECT_NE(HostRefusal(p, "a.b.corp.example.", false), "");
  EXPECT_EQ(HostRefusal(p, "corp.example", false), "");
  EXPECT_EQ(HostRefusal(p, "xcorp.example", false), "");
  EXPECT_EQ(HostRefusal(p, "notevil.example", false), "");
  std::string reason;
  EXPECT_FALSE(p.CheckHost("api.example.com", true, &reason).has_value());
}

TEST(DestinationPolicyTest, OwnListenerIsRefusedEvenWhenAllowed) {
  DestinationPolicy p = Compiled({.allow = {"127.0.0.0/8", "::1"}});
  p.AddOwnListener(Ip("127.0.0.1", 8000));
  EXPECT_NE(p.CheckAddress(Ip("127.0.0.1", 8000), false).find("own listener"),
            std::string::npos);
  // Loopback is one host: another loopback address reaches it as well.
  EXPECT_NE(p.CheckAddress(Ip("::1", 8000), false), "");
  EXPECT_NE(p.CheckAddress(Ip("127.0.0.1", 8000), true, true), "");
  EXPECT_EQ(p.CheckAddress(Ip("127.0.0.1", 8001), false), "");
  EXPECT_EQ(p.CheckAddress(Ip("127.0.0.1", 8001), true), "");
  p.AddOwnListener(Ip("192.0.2.10", 9000));
  EXPECT_NE(p.CheckAddress(Ip("192.0.2.10", 9000), false), "");
  EXPECT_EQ(p.CheckAddress(Ip("192.0.2.11", 9000), false), "");
}

TEST(HostOfUrlTest, GivesTheHostCurlConnectsTo) {
  EXPECT_EQ(*HostOfUrl("http://user:pw@Example.COM:8080/p?q#f"), "Example.COM");
  EXPECT_EQ(*HostOfUrl("http://[::ffff:127.0.0.1]:80/"), "::ffff:127.0.0.1");
  EXPECT_EQ(*HostOfUrl("https://xn--bcher-kva.example/"),
            "xn--bcher-kva.example");
  EXPECT_FALSE(HostOfUrl("http://").ok());
  EXPECT_FALSE(HostOfUrl("http://exa mple.com/").ok());
}

TEST(HostOfUrlTest, OddSpellingsOfLoopbackAreStillLoopback) {
  DestinationPolicy p = Compiled({});
  // Each of these reaches 127.0.0.1 (or the metadata address); whether the
  // host check or the connect check catches it, one of them must.
  for (const char* url :
       {"http://2130706433/", "http://0x7f.1/", "http://127.1/",
        "http://[::ffff:7f00:1]/", "http://0177.0.0.1/"}) {
    auto host = HostOfUrl(url);
    ASSERT_TRUE(host.ok()) << url;
    auto literal = IpAddress::FromLiteral(*host);
    ASSERT_TRUE(literal.has_value()) << url << " -> " << *host;
    EXPECT_NE(p.CheckAddress(*literal, true), "") << url << " -> " << *host;
  }
}

}  // namespace
}  // namespace cde
