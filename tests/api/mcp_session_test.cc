// An MCP session over a real engine (memory store, real loop): lifecycle,
// version negotiation, tools/list, and tool calls with their results and
// errors as a client sees them on the wire.
#include "api/mcp_session.h"

#include <gmock/gmock.h>

#include "api/jsonrpc.h"
#include "tests/engine/engine_harness.h"

namespace cde {
namespace {

using nlohmann::json;

class McpSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(h_.Open(""));
    session_ = McpSession::Create(
        &h_.engine(), h_.loop(), [this](std::string frame, const json&) {
          sent_.push_back(json::parse(frame));
        });
  }

  // Sends a request and runs the loop until its reply arrives.
  json Call(const std::string& method, json params = json::object()) {
    const int id = next_id_++;
    session_->OnFrame(json{
        {"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}
                          .dump());
    json reply;
    h_.RunUntil([&] {
      for (const json& m : sent_) {
        if (m.value("id", json()) == id) {
          reply = m;
          return true;
        }
      }
      return false;
    });
    return reply;
  }
  json Tool(const std::string& name, json args) {
    return Call("tools/call", {{"name", name}, {"arguments", args}});
  }
  void Initialize() {
    Call("initialize", {{"protocolVersion", "2025-06-18"},
                        {"capabilities", json::object()},
                        {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
    session_->OnFrame(
        R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  }

  test::EngineHarness h_;
  std::shared_ptr<McpSession> session_;
  std::vector<json> sent_;
  int next_id_ = 1;
};

TEST_F(McpSessionTest, InitializeNegotiatesTheProtocolVersion) {
  json r = Call("initialize", {{"protocolVersion", "2025-06-18"}});
  EXPECT_EQ(r["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(r["result"]["serverInfo"]["name"], "cde-orchestrator");
  EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
  json newer = Call("initialize", {{"protocolVersion", "2099-01-01"}});
  EXPECT_EQ(newer["result"]["protocolVersion"], "2025-11-25");
}

TEST_F(McpSessionTest, RequestsBeforeInitializeAreRefusedButPingWorks) {
  EXPECT_EQ(Call("ping")["result"], json::object());
  EXPECT_EQ(Call("tools/list")["error"]["code"], jsonrpc::kInvalidRequest);
}

TEST_F(McpSessionTest, ToolsListDescribesEveryToolWithSchemas) {
  Initialize();
  json tools = Call("tools/list")["result"]["tools"];
  std::vector<std::string> names;
  for (const json& t : tools) {
    names.push_back(t["name"].get<std::string>());
    EXPECT_EQ(t["inputSchema"]["type"], "object") << t["name"];
    EXPECT_EQ(t["outputSchema"]["type"], "object") << t["name"];
    EXPECT_TRUE(t["inputSchema"]["properties"].is_object()) << t["name"];
    EXPECT_TRUE(t["annotations"].contains("readOnlyHint"));
  }
  EXPECT_THAT(names,
              ::testing::IsSupersetOf(
                  {"list_workflows", "register_workflow", "start_workflow",
                   "get_saga", "cancel_saga", "replay_saga", "engine_stats"}));
}

TEST_F(McpSessionTest, RegisterStartAndFollowASaga) {
  Initialize();
  json reg = Tool("register_workflow",
                  {{"definition",
                    {{"name", "hello"},
                     {"version", 1},
                     {"steps",
                      {{{"name", "greet"},
                        {"action", "echo"},
                        {"params", {{"who", "${input.who}"}}}}}}}}});
  ASSERT_EQ(reg["result"]["isError"], false) << reg.dump();
  EXPECT_EQ(reg["result"]["structuredContent"],
            json({{"name", "hello"}, {"version", 1}}));

  json started = Tool("start_workflow", {{"workflow", "hello"},
                                         {"input", {{"who", "world"}}},
                                         {"idempotency_key", "k1"}});
  ASSERT_EQ(started["result"]["isError"], false) << started.dump();
  const auto id =
      started["result"]["structuredContent"]["saga_id"].get<std::string>();
  ASSERT_OK(h_.AwaitInactive(id).status());
  json saga = Tool("get_saga", {{"saga_id", id}});
  EXPECT_EQ(saga["result"]["structuredContent"]["state"], "completed");
  EXPECT_EQ(saga["result"]["structuredContent"]["steps"][0]["output"],
            json({{"who", "world"}}));
  json again = Tool("start_workflow",
                    {{"workflow", "hello"}, {"idempotency_key", "k1"}});
  EXPECT_EQ(again["result"]["structuredContent"]["saga_id"], id);
  EXPECT_EQ(again["result"]["structuredContent"]["created"], false);
}

TEST_F(McpSessionTest, ToolFailuresAreIsErrorWithAStableCode) {
  Initialize();
  json bad = Tool("register_workflow",
                  {{"definition", {{"name", "x"}, {"version", 0}}}});
  EXPECT_EQ(bad["result"]["isError"], true);
  EXPECT_EQ(bad["result"]["structuredContent"]["error"]["code"],
            "invalid_argument");
  EXPECT_NE(bad["result"]["structuredContent"]["error"]["message"]
                .get<std::string>()
                .find("version: must be"),
            std::string::npos);
  json missing = Tool("get_saga", {{"saga_id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}});
  EXPECT_EQ(missing["result"]["structuredContent"]["error"]["code"],
            "not_found");
  json no_arg = Tool("start_workflow", json::object());
  EXPECT_EQ(no_arg["result"]["structuredContent"]["error"]["message"],
            "arguments.workflow: required");
}

TEST_F(McpSessionTest, ProtocolErrorsUseJsonRpcCodes) {
  Initialize();
  EXPECT_EQ(Call("no/such/method")["error"]["code"], jsonrpc::kMethodNotFound);
  EXPECT_EQ(Tool("no_such_tool", json::object())["error"]["code"],
            jsonrpc::kInvalidParams);
  session_->OnFrame("{not json");
  EXPECT_EQ(sent_.back()["error"]["code"], jsonrpc::kParseError);
  EXPECT_TRUE(sent_.back()["id"].is_null());
}

}  // namespace
}  // namespace cde
