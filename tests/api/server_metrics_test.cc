// GET /metrics of the real cde-orchestrator binary: after a saga runs over
// MCP, the exposition parses under a strict Prometheus text-format parser
// and counts what happened.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/engine/prometheus_parser.h"
#include "tests/test_util.h"
#include "tools/server_process.h"

namespace cde {
namespace {

using nlohmann::json;

class ServerMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start(dir_.Sub("data"), dir_.Sub("server.log")));
    base_ = server_.base();
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.Terminate(), 0);
    }
  }

  test::TempDir dir_;
  ServerProcess server_{CDE_ORCHESTRATOR_PATH};
  std::string base_;
};

TEST_F(ServerMetricsTest, MetricsParseStrictlyAndCountASagaRunOverMcp) {
  McpClient mcp(base_);
  ASSERT_TRUE(mcp.Initialize());
  json reg =
      mcp.RegisterWorkflow("metered", {{{"name", "a"}, {"action", "noop"}},
                                       {{"name", "b"}, {"action", "noop"}}});
  ASSERT_FALSE(reg.contains("error")) << reg.dump();
  json started = mcp.Call("start_workflow", {{"workflow", "metered"}});
  const std::string saga = started.value("saga_id", std::string());
  ASSERT_FALSE(saga.empty()) << started.dump();
  ASSERT_TRUE(Eventually([&] {
    return mcp.Call("get_saga", {{"saga_id", saga}}).value("state", "") ==
           "completed";
  }));
  Fetch(base_ + "/no/such/path");

  HttpReply metrics = Fetch(base_ + "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
  auto parsed = test::ParsePrometheusText(metrics.body);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString() << "\n"
                           << metrics.body;
  const test::PromExposition& p = *parsed;
  EXPECT_EQ(p.Value("cde_sagas_started_total", {{"workflow", "metered"}}), 1);
  EXPECT_EQ(p.Value("cde_sagas_finished_total",
                    {{"workflow", "metered"}, {"outcome", "completed"}}),
            1);
  EXPECT_EQ(p.Value("cde_attempts_total",
                    {{"workflow", "metered"}, {"step", "b"}, {"result", "ok"}}),
            1);
  // initialize, register, start and the get_saga polls: all 200 on /mcp.
  EXPECT_GE(
      p.Value("cde_http_requests_total", {{"route", "/mcp"}, {"code", "200"}})
          .value_or(0),
      4);
  EXPECT_EQ(
      p.Value("cde_http_requests_total", {{"route", "other"}, {"code", "404"}}),
      1);
  EXPECT_EQ(p.Value("cde_mcp_http_sessions"), 1);
  EXPECT_GT(p.Value("process_resident_memory_bytes").value_or(0), 1e6);
  EXPECT_GT(p.Value("process_open_fds").value_or(0), 3);
  ASSERT_NE(p.Find("cde_commit_latency_seconds"), nullptr);
  EXPECT_EQ(p.Find("cde_commit_latency_seconds")->type, "histogram");
  ASSERT_NE(p.Find("cde_http_request_duration_seconds"), nullptr);
}

// Sends `request` as is to the server at `base` (http://127.0.0.1:PORT) and
// returns all it answers before closing. curl would percent-encode a path.
std::string RawExchange(const std::string& base, const std::string& request) {
  const int port = std::stoi(base.substr(base.rfind(':') + 1));
  const int fd = test::ConnectLoopback(port);
  if (fd < 0) return "";
  std::string answer;
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
      static_cast<ssize_t>(request.size())) {
    char buf[4096];
    for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) {
      answer.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return answer;
}

// A path is raw bytes; JSON holds only UTF-8. The answer once failed to
// serialize (a 500 "handler failed") instead of saying what is missing.
TEST_F(ServerMetricsTest, AnUnknownPathThatIsNotUtf8IsAJson404) {
  const std::string answer =
      RawExchange(base_,
                  "GET /no/such/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Connection: close\r\n\r\n");
  ASSERT_TRUE(answer.starts_with("HTTP/1.1 404 ")) << answer;
  const size_t head_end = answer.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << answer;
  const json body = json::parse(answer.substr(head_end + 4), nullptr, false);
  ASSERT_TRUE(body.is_object()) << answer;
  EXPECT_EQ(body["error"], "no such endpoint /no/such/\uFFFD\uFFFD");
}

}  // namespace
}  // namespace cde
