// The http action under its destination policy, against a real server on
// 127.0.0.1: what a client's definition may not reach (loopback by address,
// by a name that resolves to it, by odd spellings, through a redirect), what
// nobody may reach (link-local, the server's own listener), and what the
// configuration lets through. A refused attempt fails with kind "policy"
// and the server never sees the request.
#include <gtest/gtest.h>

#include <string>

#include "engine/action_policy.h"
#include "engine/async_action.h"
#include "tests/engine/async_action_fixture.h"
#include "tools/test_http_server.h"

namespace cde {
namespace {

using json = nlohmann::json;

class HttpPolicyTest : public AsyncActionFixture {
 protected:
  HttpPolicyTest() : AsyncActionFixture("trip", "book", 1) {}
  void SetUp() override {
    server_.Start();
    server_.Respond("/ok", 200, R"({"ok": true})");
  }
  void TearDown() override {
    CloseAndDrain();
    server_.Stop();
  }

  // Starts the action for a client's (or an operator's) definitions under
  // `config`; `own_port` > 0 marks 127.0.0.1:own_port as our listener.
  void Use(HttpPolicy config, bool client, int own_port = 0) {
    auto compiled = DestinationPolicy::Compile(config);
    ASSERT_TRUE(compiled.ok()) << compiled.status().ToString();
    auto policy =
        std::make_shared<DestinationPolicy>(std::move(compiled).value());
    if (own_port > 0) {
      auto own = IpAddress::FromLiteral("127.0.0.1");
      own->port = static_cast<uint16_t>(own_port);
      policy->AddOwnListener(*own);
    }
    Init([policy, client](uv_loop_t* loop) {
      return NewHttpAction(loop, policy, client);
    });
  }

  std::string At(const std::string& host, const std::string& path) {
    return "http://" + host + ":" + std::to_string(server_.port()) + path;
  }

  // Runs a GET of `url`, expects the policy to refuse it with a message
  // holding `why`, and the server to have seen nothing.
  void ExpectRefused(const std::string& url, const std::string& why) {
    ActionResult r = Run({{"url", url}});
    ASSERT_FALSE(r.ok) << url;
    EXPECT_EQ(r.error.kind, kPolicyErrorKind) << r.error.message;
    EXPECT_NE(r.error.message.find("refused by the action policy"),
              std::string::npos)
        << r.error.message;
    EXPECT_NE(r.error.message.find(why), std::string::npos) << r.error.message;
    EXPECT_EQ(server_.request_count(), 0u) << url;
  }

  TestHttpServer server_;
};

TEST_F(HttpPolicyTest, ClientMayNotReachLoopbackByAddress) {
  Use({}, /*client=*/true);
  ExpectRefused(server_.url("/ok"), "loopback");
  ExpectRefused(At("[::ffff:127.0.0.1]", "/ok"), "loopback");
  ExpectRefused(At("2130706433", "/ok"), "loopback");
  ExpectRefused(At("127.1", "/ok"), "loopback");
}

TEST_F(HttpPolicyTest, ClientMayNotReachLoopbackByANameThatResolvesThere) {
  Use({}, /*client=*/true);
  // Resolved from /etc/hosts; checked at connect time, after resolution.
  ExpectRefused(At("localhost", "/ok"), "is loopback");
  ExpectRefused(At("LOCALHOST", "/ok"), "is loopback");
}

TEST_F(HttpPolicyTest, NobodyMayReachMetadataOrTheUnspecifiedAddress) {
  for (bool client : {false, true}) {
    Use({}, client);
    ExpectRefused("http://169.254.169.254/latest/meta-data/", "link-local");
    ExpectRefused("http://169.254.169.254.:80/latest/meta-data/", "link-local");
    ExpectRefused("http://[fe80::1]/", "link-local");
    ExpectRefused(At("0.0.0.0", "/ok"), "unspecified");
    CloseAndDrain();
  }
}

TEST_F(HttpPolicyTest, OperatorDefinitionsReachLoopback) {
  Use({}, /*client=*/false);
  ActionResult r = Run({{"url", server_.url("/ok")}});
  ASSERT_TRUE(r.ok) << r.error.message;
  r = Run({{"url", At("localhost", "/ok")}});
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(server_.request_count(), 2u);
}

TEST_F(HttpPolicyTest, AllowLetsAClientReachAnAddressOrAName) {
  Use({.allow = {"127.0.0.1"}}, /*client=*/true);
  ActionResult r = Run({{"url", server_.url("/ok")}});
  ASSERT_TRUE(r.ok) << r.error.message;
  CloseAndDrain();

  Use({.allow = {"localhost"}}, /*client=*/true);
  r = Run({{"url", At("localhost", "/ok")}});
  ASSERT_TRUE(r.ok) << r.error.message;
  EXPECT_EQ(server_.request_count(), 2u);
}

TEST_F(HttpPolicyTest, DenyAppliesToOperatorsByAddressAndByName) {
  Use({.deny = {"127.0.0.0/8", "*.internal.test"}}, /*client=*/false);
  ExpectRefused(server_.url("/ok"), "'127.0.0.0/8' in actions.http.deny");
  ExpectRefused("http://db.internal.test/", "'*.internal.test'");
}

TEST_F(HttpPolicyTest, TheServersOwnListenerIsRefusedEvenWhenAllowed) {
  Use({.allow = {"127.0.0.0/8"}}, /*client=*/false, server_.port());
  ExpectRefused(server_.url("/ok"), "this server's own listener");
  ExpectRefused(At("localhost", "/ok"), "this server's own listener");
}

TEST_F(HttpPolicyTest, RedirectsAreNotFollowedAndSayWhere) {
  Use({.allow = {"127.0.0.1"}}, /*client=*/true);
  server_.Redirect("/moved", "http://127.0.0.1:1/admin");
  ActionResult r = Run({{"url", server_.url("/moved")}});
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error.kind, "http_302");
  EXPECT_NE(r.error.message.find("redirects are not followed; Location: "
                                 "http://127.0.0.1:1/admin"),
            std::string::npos)
      << r.error.message;
  EXPECT_EQ(server_.request_count(), 1u);
}

TEST_F(HttpPolicyTest, AClientsTransferDoesNotUseAProxyFromTheEnvironment) {
  // Through a proxy, the policy would see only the proxy's address, and
  // the proxy would go wherever the URL says. Our server stands in for the
  // proxy: a proxied request would reach it with the whole URL as target.
  Use({.allow = {"127.0.0.1"}}, /*client=*/true);
  setenv("http_proxy", At("127.0.0.1", "").c_str(), 1);
  unsetenv("no_proxy");
  unsetenv("NO_PROXY");
  ActionResult r = Run({{"url", At("localhost", "/ok")}});
  unsetenv("http_proxy");
  ASSERT_TRUE(r.ok) << r.error.message;
  ASSERT_EQ(server_.request_count(), 1u);
  EXPECT_EQ(server_.requests()[0].path, "/ok");
}

}  // namespace
}  // namespace cde
