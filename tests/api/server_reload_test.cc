// The real server under its configuration file: SIGHUP applies a good file
// and keeps the running configuration on a bad one; circuit breakers open
// and close against an endpoint that fails on demand; inbound calls over
// the rate limit are refused with a retry hint.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "tests/test_util.h"
#include "tools/server_process.h"
#include "tools/test_http_server.h"

namespace cde {
namespace {

using nlohmann::json;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

class ServerConfigTest : public ::testing::Test {
 protected:
  void Start(const json& config) {
    WriteFile(config_path_, config.dump());
    ASSERT_TRUE(
        server_.Start(dir_.Sub("data"), log_path_, {"--config", config_path_}));
    mcp_ = std::make_unique<McpClient>(server_.base());
    ASSERT_TRUE(mcp_->Initialize());
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.Terminate(), 0);
    }
  }
  void Register(const std::string& name, const json& steps) {
    json r = mcp_->RegisterWorkflow(name, steps);
    ASSERT_FALSE(r.contains("error")) << r.dump();
  }
  uint64_t Queued() {
    return mcp_->Call("engine_stats", json::object()).value("queued", 999u);
  }
  // Whether the server's log holds `text` now. The log is written
  // asynchronously: a line that should appear is waited for (LogShows).
  bool LogHas(const std::string& text) {
    return ReadFile(log_path_).find(text) != std::string::npos;
  }
  ::testing::AssertionResult LogShows(const std::string& text) {
    if (Eventually([&] { return LogHas(text); })) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "the log never showed " << text << "; it holds:\n"
           << ReadFile(log_path_);
  }
  // The complete lines of the log; a line still being written is left out.
  std::vector<std::string> LogLines() {
    std::vector<std::string> lines;
    std::istringstream in(ReadFile(log_path_));
    for (std::string line; std::getline(in, line);) {
      if (!in.eof()) lines.push_back(line);
    }
    return lines;
  }

  test::TempDir dir_;
  const std::string config_path_ = dir_.Sub("cde.json");
  const std::string log_path_ = dir_.Sub("server.log");
  ServerProcess server_{CDE_ORCHESTRATOR_PATH};
  std::unique_ptr<McpClient> mcp_;
};

TEST_F(ServerConfigTest, SighupAppliesAGoodFileAndKeepsTheOldOnABadOne) {
  Start({{"log", {{"level", "info"}}},
         {"limits", {{"max_concurrency", {{"napping", 1}}}}}});
  Register("napping", json::array({{{"name", "nap"},
                                    {"action", "sleep"},
                                    {"params", {{"duration_ms", 60000}}}}}));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(mcp_->Call("start_workflow", {{"workflow", "napping"}})
                    .contains("saga_id"));
  }
  ASSERT_TRUE(Eventually([&] { return Queued() == 2; }));

  // A misspelt key: the reload is refused, naming it, and nothing changes.
  WriteFile(config_path_, R"({"limits": {"max_concurency": {"napping": 3}}})");
  server_.Signal(SIGHUP);
  ASSERT_TRUE(LogShows("configuration reload failed"));
  EXPECT_TRUE(LogShows("limits.max_concurency: unknown key"));
  EXPECT_EQ(Queued(), 2u);

  // A good file: the queued sagas get their slots, and debug lines appear.
  EXPECT_FALSE(LogHas("\"level\":\"debug\""));
  WriteFile(config_path_,
            R"({"log": {"level": "debug"},
                "limits": {"max_concurrency": {"napping": 3}}})");
  server_.Signal(SIGHUP);
  ASSERT_TRUE(Eventually([&] { return Queued() == 0; }));
  EXPECT_TRUE(LogShows("configuration reloaded"));
  EXPECT_TRUE(LogShows("\"msg\":\"saga_dequeued\""));
  EXPECT_TRUE(LogShows("\"level\":\"debug\""));
}

TEST_F(ServerConfigTest, SighupRegistersNewDefinitionsFromTheWorkflowsDir) {
  const std::string wf = dir_.Sub("workflows");
  std::filesystem::create_directory(wf);
  auto definition = [](const std::string& name) {
    return json{{"name", name},
                {"version", 1},
                {"steps", {{{"name", "a"}, {"action", "noop"}}}}}
        .dump();
  };
  WriteFile(wf + "/alpha.json", definition("alpha"));
  Start({{"workflows_dir", wf}});
  auto names = [&] {
    std::set<std::string> out;
    json r = mcp_->Call("list_workflows", json::object());
    for (const json& w : r.value("workflows", json::array())) {
      out.insert(w.value("name", ""));
    }
    return out;
  };
  EXPECT_EQ(names(), std::set<std::string>{"alpha"});
  WriteFile(wf + "/beta.json", definition("beta"));
  server_.Signal(SIGHUP);
  ASSERT_TRUE(Eventually([&] {
    return names() == std::set<std::string>{"alpha", "beta"};
  }));
  // A broken file is reported by name; what is registered stays.
  WriteFile(wf + "/broken.json", R"({"name": "gamma", "version": 0})");
  server_.Signal(SIGHUP);
  ASSERT_TRUE(LogShows("loading workflow definitions failed"));
  EXPECT_TRUE(LogShows("broken.json"));
  EXPECT_EQ(names(), (std::set<std::string>{"alpha", "beta"}));
}

TEST_F(ServerConfigTest, BreakerOpensAndClosesAgainstAFailingEndpoint) {
  TestHttpServer endpoint;
  endpoint.Start();
  endpoint.Respond("/flaky", 503, "down");
  // Registered over MCP: a client's, which reaches loopback only if the
  // destination policy allows it.
  Start({{"circuit_breakers",
          {{"default",
            {{"failure_threshold", 2},
             {"failure_ratio", 0},
             {"cool_down_ms", 5000}}}}},
         {"actions", {{"http", {{"allow", {"127.0.0.1"}}}}}}});
  Register("flaky", json::array({{{"name", "call"},
                                  {"action", "http"},
                                  {"params", {{"url", endpoint.url("/flaky")}}},
                                  {"retry",
                                   {{"max_attempts", 6},
                                    {"initial_backoff_ms", 1},
                                    {"max_backoff_ms", 2},
                                    {"non_retryable", json::array()}}}}}));
  json started = mcp_->Call("start_workflow", {{"workflow", "flaky"}});
  ASSERT_TRUE(started.contains("saga_id")) << started.dump();
  const std::string key = "127.0.0.1:" + std::to_string(endpoint.port());
  auto breaker_state = [&] {
    json health =
        json::parse(Fetch(server_.base() + "/health").body, nullptr, false);
    if (!health.is_object()) return std::string();
    for (const json& b : health.value("circuit_breakers", json::array())) {
      if (b.value("key", "") == key) return b.value("state", "");
    }
    return std::string();
  };
  ASSERT_TRUE(Eventually([&] { return breaker_state() == "open"; }));
  EXPECT_EQ(endpoint.requests().size(), 2u);  // the rest wait, unspent
  endpoint.Respond("/flaky", 200, R"({"ok": true})");
  ASSERT_TRUE(Eventually([&] {
    return mcp_->Call("get_saga", {{"saga_id", started["saga_id"]}})
               .value("state", "") == "completed";
  }));
  EXPECT_EQ(breaker_state(), "closed");
  EXPECT_EQ(endpoint.requests().size(), 3u);
  const std::string metrics = Fetch(server_.base() + "/metrics").body;
  EXPECT_NE(metrics.find("cde_circuit_breaker_transitions_total{key=\"" + key +
                         "\",from=\"half_open\",to=\"closed\"} 1"),
            std::string::npos);
  EXPECT_TRUE(LogShows("\"msg\":\"circuit breaker open\""));
}

TEST_F(ServerConfigTest, LogLinesAboutASagaCarryItsCorrelationAndTraceIds) {
  Start({{"log", {{"level", "debug"}}}});
  Register("traced", json::array({{{"name", "a"}, {"action", "noop"}},
                                  {{"name", "b"}, {"action", "noop"}}}));
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  json r =
      mcp_->Rpc("tools/call",
                {{"name", "start_workflow"},
                 {"arguments", {{"workflow", "traced"}}},
                 {"_meta",
                  {{"correlation_id", "order-7"},
                   {"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}}}});
  const std::string id =
      r["result"]["structuredContent"].value("saga_id", std::string());
  ASSERT_FALSE(id.empty()) << r.dump();
  ASSERT_TRUE(Eventually([&] {
    return mcp_->Call("get_saga", {{"saga_id", id}}).value("state", "") ==
           "completed";
  }));
  // Started, two steps started and succeeded, completed: all at debug.
  // The last of them may still be on its way to the file.
  auto lines_about_it = [&] {
    std::vector<json> about_it;
    for (const std::string& line : LogLines()) {
      json j = json::parse(line, nullptr, false);
      if (!j.is_object() || j.value("saga_id", "") == id) {
        about_it.push_back(j.is_object() ? j : json(line));
      }
    }
    return about_it;
  };
  ASSERT_TRUE(Eventually([&] { return lines_about_it().size() >= 6; }))
      << ReadFile(log_path_);
  for (const json& j : lines_about_it()) {
    ASSERT_TRUE(j.is_object()) << "not a JSON line: " << j.dump();
    EXPECT_EQ(j.value("correlation_id", ""), "order-7") << j.dump();
    EXPECT_EQ(j.value("trace_id", ""), trace) << j.dump();
    EXPECT_EQ(j.value("workflow", ""), "traced") << j.dump();
  }
}

TEST_F(ServerConfigTest, CallsOverTheInboundLimitGetARetryHint) {
  Start(
      {{"limits", {{"inbound", {{"rate_per_sec", 0.000001}, {"burst", 2}}}}}});
  // initialize is not limited; the two tokens go to the first two calls.
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(
        mcp_->Call("engine_stats", json::object()).contains("active_by_state"));
  }
  json refused = mcp_->Rpc(
      "tools/call", {{"name", "engine_stats"}, {"arguments", json::object()}});
  ASSERT_TRUE(refused.contains("error")) << refused.dump();
  EXPECT_EQ(refused["error"]["code"], -32029);
  // A token per 10^6 s: the wait is about that long.
  EXPECT_GT(refused["error"]["data"]["retry_after_ms"].get<int64_t>(),
            990000000);
  // ping stays open.
  EXPECT_EQ(mcp_->Rpc("ping", json::object())["result"], json::object());
}

TEST_F(ServerConfigTest, AdminPostsOverTheLimitGet429WithRetryAfter) {
  Start(
      {{"limits", {{"inbound", {{"rate_per_sec", 0.000001}, {"burst", 1}}}}}});
  const std::string purge =
      json{{"saga_id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}}.dump();
  HttpReply first = Fetch(server_.base() + "/admin/dlq/purge", purge);
  EXPECT_EQ(first.status, 404) << first.body;  // no such saga: but served
  HttpReply limited = Fetch(server_.base() + "/admin/dlq/purge", purge);
  ASSERT_EQ(limited.status, 429) << limited.body;
  const json body = json::parse(limited.body, nullptr, false);
  const int64_t wait = body.value("retry_after_ms", int64_t{0});
  EXPECT_GT(wait, 990000000);  // a token per 10^6 s
  EXPECT_EQ(body["error"],
            "rate limit exceeded: retry in " + std::to_string(wait) + " ms");
  EXPECT_EQ(limited.headers["retry-after"],
            std::to_string((wait + 999) / 1000));
  // The backup endpoint draws on the same "admin" bucket.
  EXPECT_EQ(Fetch(server_.base() + "/admin/backup",
                  json{{"dir", dir_.Sub("backup")}}.dump())
                .status,
            429);
}

}  // namespace
}  // namespace cde
