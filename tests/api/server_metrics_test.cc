// GET /metrics of the real cde-orchestrator binary: after a saga runs over
// MCP, the exposition parses under a strict Prometheus text-format parser
// and counts what happened.
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "tests/engine/prometheus_parser.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;

// A port free right now (the kernel picks it).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

struct HttpReply {
  long status = 0;
  std::string body;
  std::string session_id;
  std::string content_type;
};

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t Header(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  if (line.rfind("Mcp-Session-Id: ", 0) == 0) {
    *static_cast<std::string*>(out) = line.substr(16, line.find('\r') - 16);
  }
  return size * n;
}

HttpReply Fetch(const std::string& url, const std::string& post_body = "",
                const std::string& session = "") {
  HttpReply reply;
  CURL* curl = curl_easy_init();
  curl_slist* headers =
      curl_slist_append(nullptr, "Content-Type: application/json");
  headers =
      curl_slist_append(headers, "Accept: application/json, text/event-stream");
  if (!session.empty()) {
    headers =
        curl_slist_append(headers, ("Mcp-Session-Id: " + session).c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &Header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply.session_id);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  if (!post_body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post_body.c_str());
  }
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
    char* type = nullptr;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
    if (type) reply.content_type = type;
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return reply;
}

class ServerMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = FreePort();
    base_ = "http://127.0.0.1:" + std::to_string(port_);
    pid_ = fork();
    if (pid_ == 0) {
      const std::string listen = "127.0.0.1:" + std::to_string(port_);
      const std::string data = dir_.path() + "/data";
      execl(CDE_ORCHESTRATOR_PATH, CDE_ORCHESTRATOR_PATH, "serve", "--data-dir",
            data.c_str(), "--http", listen.c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 400; ++i) {
      if (Fetch(base_ + "/health/readiness").status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    FAIL() << "the server did not become ready";
  }
  void TearDown() override {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }

  json Rpc(const std::string& session, int id, const std::string& method,
           const json& params) {
    HttpReply r = Fetch(base_ + "/mcp",
                        json{{"jsonrpc", "2.0"},
                             {"id", id},
                             {"method", method},
                             {"params", params}}
                            .dump(),
                        session);
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body, nullptr, false);
  }

  test::TempDir dir_;
  int port_ = 0;
  std::string base_;
  pid_t pid_ = -1;
};

TEST_F(ServerMetricsTest, MetricsParseStrictlyAndCountASagaRunOverMcp) {
  HttpReply init =
      Fetch(base_ + "/mcp",
            json{{"jsonrpc", "2.0"},
                 {"id", 1},
                 {"method", "initialize"},
                 {"params",
                  {{"protocolVersion", "2025-11-25"},
                   {"capabilities", json::object()},
                   {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}}
                .dump());
  ASSERT_EQ(init.status, 200);
  const std::string sid = init.session_id;
  ASSERT_FALSE(sid.empty());
  json reg = Rpc(sid, 2, "tools/call",
                 {{"name", "register_workflow"},
                  {"arguments",
                   {{"definition",
                     {{"name", "metered"},
                      {"version", 1},
                      {"steps",
                       {{{"name", "a"}, {"action", "noop"}},
                        {{"name", "b"}, {"action", "noop"}}}}}}}}});
  ASSERT_FALSE(reg["result"]["isError"].get<bool>()) << reg.dump();
  json started = Rpc(
      sid, 3, "tools/call",
      {{"name", "start_workflow"}, {"arguments", {{"workflow", "metered"}}}});
  const std::string saga =
      started["result"]["structuredContent"]["saga_id"].get<std::string>();
  for (int i = 0; i < 200; ++i) {
    json got = Rpc(sid, 4 + i, "tools/call",
                   {{"name", "get_saga"}, {"arguments", {{"saga_id", saga}}}});
    if (got["result"]["structuredContent"]["state"] == "completed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
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

}  // namespace
}  // namespace cde
