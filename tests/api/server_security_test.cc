// The real server against a hostile client: what a prompt-injected agent
// can send over MCP must not stall the loop that serves everyone else.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "tests/test_util.h"
#include "tools/http_call.h"
#include "tools/server_process.h"

namespace cde {
namespace {

using nlohmann::json;

class ServerSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start(dir_.Sub("data"), dir_.Sub("server.log")));
    mcp_ = std::make_unique<McpClient>(server_.base());
    ASSERT_TRUE(mcp_->Initialize());
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.Terminate(), 0);
    }
  }

  test::TempDir dir_;
  ServerProcess server_{CDE_ORCHESTRATOR_PATH};
  std::unique_ptr<McpClient> mcp_;
};

// The ReDoS of the issue: `^(a+)+$` against 30 a's and a b took a
// backtracking engine minutes on the loop thread, and the server answered
// nothing meanwhile. Now the input is refused at once, again and again,
// while health probes and another saga go on.
TEST_F(ServerSecurityTest, ExponentialPatternIsMatchedInLinearTime) {
  json r =
      mcp_->Call("register_workflow",
                 {{"definition",
                   {{"name", "evil"},
                    {"version", 1},
                    {"input_schema",
                     {{"type", "object"},
                      {"properties",
                       {{"s", {{"type", "string"}, {"pattern", "^(a+)+$"}}}}}}},
                    {"steps", {{{"name", "a"}, {"action", "noop"}}}}}}});
  ASSERT_FALSE(r.contains("error")) << r.dump();
  r = mcp_->RegisterWorkflow("nap", {{{"name", "z"},
                                      {"action", "sleep"},
                                      {"params", {{"duration_ms", 200}}}}});
  ASSERT_FALSE(r.contains("error")) << r.dump();
  const json nap = mcp_->Call("start_workflow", {{"workflow", "nap"}});
  ASSERT_TRUE(nap.contains("saga_id")) << nap.dump();

  std::atomic<int> refused{0};
  std::thread attacker([&] {
    McpClient evil(server_.base());
    if (!evil.Initialize()) return;
    for (int i = 0; i < 20; ++i) {
      json e = evil.Call("start_workflow",
                         {{"workflow", "evil"},
                          {"input", {{"s", std::string(30, 'a') + "b"}}}});
      if (e.dump().find("input.s: must match pattern '^(a+)+$'") !=
          std::string::npos) {
        ++refused;
      }
    }
  });
  // Meanwhile the server answers probes, each within seconds.
  int probes_answered = 0;
  for (int i = 0; i < 20; ++i) {
    const HttpAnswer a = PerformHttpCall(
        {.url = server_.base() + "/health/liveness", .timeout_ms = 5000});
    probes_answered += a.status == 200;
  }
  attacker.join();
  EXPECT_EQ(probes_answered, 20);
  EXPECT_EQ(refused.load(), 20);
  // A matching input still starts, and the other saga completed.
  json good = mcp_->Call("start_workflow",
                         {{"workflow", "evil"}, {"input", {{"s", "aaaa"}}}});
  EXPECT_TRUE(good.contains("saga_id")) << good.dump();
  EXPECT_TRUE(Eventually([&] {
    return mcp_->Call("get_saga", {{"saga_id", nap["saga_id"]}})
               .value("state", "") == "completed";
  }));
}

// A pattern RE2 cannot run in linear time is refused at registration,
// naming the construct.
TEST_F(ServerSecurityTest,
       BackreferencesAndLookaroundAreRefusedAtRegistration) {
  for (const char* pattern : {"(a)\\1", "a(?!b)"}) {
    json r = mcp_->Call(
        "register_workflow",
        {{"definition",
          {{"name", "refused"},
           {"version", 1},
           {"input_schema", {{"type", "string"}, {"pattern", pattern}}},
           {"steps", {{{"name", "a"}, {"action", "noop"}}}}}}});
    ASSERT_TRUE(r.contains("error")) << pattern;
    EXPECT_NE(r["error"].dump().find(
                  "input_schema.pattern: is not a valid regular expression"),
              std::string::npos)
        << r.dump();
  }
  EXPECT_TRUE(
      mcp_->Call("list_workflows", json::object())["workflows"].empty());
}

// Over real connections, without tokens: one address that opens session
// after session evicts its own idle ones beyond
// http.max_sessions_per_client, never another address's, and every one of
// its initializes is answered.
TEST(ServerSessionsTest, AFloodFromOneAddressEvictsOnlyItsOwnSessions) {
  test::TempDir dir;
  ServerProcess server{CDE_ORCHESTRATOR_PATH};
  ASSERT_TRUE(server.Start(dir.Sub("data"), dir.Sub("server.log"), {},
                           {{"CDE_HTTP_MAX_SESSIONS", "8"},
                            {"CDE_HTTP_MAX_SESSIONS_PER_CLIENT", "3"}}));
  auto post = [&](const std::string& from, const json& body,
                  const std::string& sid) {
    HttpCall call{.method = "POST",
                  .url = server.base() + "/mcp",
                  .headers = {"Accept: application/json, text/event-stream",
                              "Content-Type: application/json"},
                  .body = body.dump(),
                  .local_address = from};
    if (!sid.empty()) call.headers.push_back("Mcp-Session-Id: " + sid);
    return PerformHttpCall(call);
  };
  const json initialize = {
      {"jsonrpc", "2.0"},
      {"id", 1},
      {"method", "initialize"},
      {"params",
       {{"protocolVersion", "2025-11-25"},
        {"capabilities", json::object()},
        {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}};
  const json list = {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/list"}};
  auto open = [&](const std::string& from) {
    HttpAnswer a = post(from, initialize, "");
    EXPECT_EQ(a.status, 200) << a.error << a.body;
    return a.header("mcp-session-id");
  };
  const std::string other = open("127.0.0.2");
  ASSERT_FALSE(other.empty());
  std::vector<std::string> flood;
  for (int i = 0; i < 50; ++i) flood.push_back(open("127.0.0.1"));
  EXPECT_EQ(post("127.0.0.2", list, other).status, 200)
      << "another address's session survives";
  EXPECT_EQ(post("127.0.0.1", list, flood[0]).status, 404)
      << "the flood's oldest was evicted";
  for (size_t i = flood.size() - 3; i < flood.size(); ++i) {
    EXPECT_EQ(post("127.0.0.1", list, flood[i]).status, 200) << i;
  }
  EXPECT_EQ(server.Terminate(), 0);
}

}  // namespace
}  // namespace cde
