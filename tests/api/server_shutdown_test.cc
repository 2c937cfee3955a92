// SIGTERM on the real server while 500 sagas run (sleeps, exec children and
// slow HTTP calls): it exits within its shutdown timeout, leaves no WAL to
// replay, and after a restart every acknowledged saga completes exactly once
// with at most one repeated side effect per checkpointed attempt.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "storage/store.h"
#include "tests/test_util.h"
#include "tools/server_process.h"
#include "tools/test_http_server.h"

namespace cde {
namespace {

using nlohmann::json;

json Steps(json first) {
  return json::array(
      {std::move(first), {{"name", "after"}, {"action", "noop"}}});
}

// Waits until the server has nothing active left (or `timeout_ms`).
bool AwaitIdle(McpClient& mcp, int timeout_ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    json st = mcp.Call("engine_stats", json::object());
    if (st.contains("active_by_state") && st["active_by_state"].empty()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

TEST(ServerShutdownTest, SigtermWith500SagasRunningLosesAndDoublesNothing) {
  test::TempDir dir;
  const std::string data = dir.Sub("data");
  const std::string log = dir.Sub("server.log");
  TestHttpServer endpoint;
  endpoint.Start();
  // Far slower than the grace period: every call in flight at SIGTERM must
  // be checkpointed, however long the starts took.
  endpoint.Respond("/slow", 200, R"({"booked": true})", 20000);
  // The "run" workflow is registered over MCP: a client's, whose exec
  // steps the action policy must let run /bin/sh, and whose http steps
  // it must let reach the endpoint on loopback.
  const std::map<std::string, std::string> env = {
      {"CDE_SHUTDOWN_TIMEOUT_MS", "1000"},
      {"CDE_ACTIONS_EXEC_CLIENTS", "true"},
      {"CDE_ACTIONS_EXEC_ALLOW", R"(["/bin/sh"])"},
      {"CDE_ACTIONS_HTTP_ALLOW", R"(["127.0.0.1"])"}};

  std::map<std::string, std::string> workflow_of;  // acknowledged starts
  {
    ServerProcess server(CDE_ORCHESTRATOR_PATH);
    ASSERT_TRUE(server.Start(data, log, {}, env)) << "server did not start";
    McpClient mcp(server.base());
    ASSERT_TRUE(mcp.Initialize());
    const json child = {
        {"argv", json::array({"/bin/sh", "-c", "sleep 0.5; echo '{}'"})}};
    const json call = {{"method", "POST"}, {"url", endpoint.url("/slow")}};
    const std::map<std::string, json> defs = {
        {"nap-short", Steps({{"name", "nap"},
                             {"action", "sleep"},
                             {"params", {{"duration_ms", 300}}}})},
        {"nap-long", Steps({{"name", "nap"},
                            {"action", "sleep"},
                            {"params", {{"duration_ms", 4000}}}})},
        {"run",
         Steps({{"name", "child"}, {"action", "exec"}, {"params", child}})},
        {"call",
         Steps({{"name", "book"}, {"action", "http"}, {"params", call}})},
    };
    for (const auto& [name, steps] : defs) {
      json r = mcp.RegisterWorkflow(name, steps);
      ASSERT_FALSE(r.contains("error")) << r.dump();
    }
    const std::vector<std::pair<std::string, int>> mix = {
        {"nap-short", 100}, {"nap-long", 100}, {"run", 100}, {"call", 200}};
    for (const auto& [name, n] : mix) {
      for (int i = 0; i < n; ++i) {
        json r = mcp.Call("start_workflow", {{"workflow", name}});
        ASSERT_TRUE(r.contains("saga_id")) << r.dump();
        workflow_of[r["saga_id"].get<std::string>()] = name;
      }
    }
    ASSERT_EQ(workflow_of.size(), 500u);
    const auto t0 = std::chrono::steady_clock::now();
    server.Signal(SIGTERM);
    // Readiness turns 503 as soon as the signal is handled, while the
    // server drains (or the connection is refused once it has exited).
    EXPECT_TRUE(Eventually([&] {
      return Fetch(server.base() + "/health/readiness").status != 200;
    }));
    const int code = server.Wait(60000);
    const auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_EQ(code, 0) << "exit code";
    // The grace period plus the time to checkpoint and close: far less than
    // the 20 s the calls in flight would take.
    EXPECT_LT(took, std::chrono::seconds(15));
  }
  // The resumed calls are answered at once.
  endpoint.Respond("/slow", 200, R"({"booked": true})");
  // A clean close flushed the memtables: no WAL left to replay.
  for (const auto& e : std::filesystem::directory_iterator(data)) {
    if (e.path().extension() == ".log") {
      EXPECT_EQ(std::filesystem::file_size(e.path()), 0u) << e.path();
    }
  }
  {
    ServerProcess server(CDE_ORCHESTRATOR_PATH);
    ASSERT_TRUE(server.Start(data, log, {}, env)) << "restart failed";
    McpClient mcp(server.base());
    ASSERT_TRUE(mcp.Initialize());
    ASSERT_TRUE(AwaitIdle(mcp, 60000)) << "sagas still active after restart";
    server.Signal(SIGTERM);
    ASSERT_EQ(server.Wait(20000), 0);
  }
  auto store = OpenRocksStore({.path = data, .mode = OpenMode::kReadOnly});
  ASSERT_OK(store.status());
  std::map<std::string, int> requests_by_saga;
  for (const auto& r : endpoint.requests()) {
    const std::string key = r.header("idempotency-key");
    requests_by_saga[key.substr(0, key.find('/'))]++;
  }
  int checkpoints = 0;
  for (const auto& [id, workflow] : workflow_of) {
    auto saga = (*store)->GetSaga(id);
    ASSERT_OK(saga.status()) << id;
    EXPECT_EQ(saga->state, SagaState::kCompleted) << id << " " << workflow;
    auto events = (*store)->ReadLog(id, 1, 1000);
    ASSERT_OK(events.status());
    int completed = 0, checkpointed = 0;
    for (const LogRecord& e : *events) {
      completed += e.type == "saga_completed";
      checkpointed += e.type == "checkpoint";
    }
    EXPECT_EQ(completed, 1) << id;
    checkpoints += checkpointed;
    if (workflow == "call") {
      EXPECT_GE(requests_by_saga[id], 1) << id;
      EXPECT_LE(requests_by_saga[id], 1 + checkpointed) << id;
    }
  }
  // The HTTP calls outlived the grace period: the shutdown checkpointed them.
  EXPECT_GT(checkpoints, 0);
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("\"msg\":\"shutting down\""), std::string::npos);
  EXPECT_NE(text.find("\"msg\":\"checkpoint\""), std::string::npos);
}

TEST(ServerShutdownTest, SecondSignalExitsAtOnceAndLosesNothingAcknowledged) {
  test::TempDir dir;
  const std::string data = dir.Sub("data");
  const std::string log = dir.Sub("server.log");
  TestHttpServer endpoint;
  endpoint.Start();
  endpoint.Respond("/slow", 200, R"({"booked": true})", 60000);
  // A client's http steps reach loopback only if the policy allows it.
  const std::map<std::string, std::string> env = {
      {"CDE_ACTIONS_HTTP_ALLOW", R"(["127.0.0.1"])"}};
  std::vector<std::string> ids;
  {
    ServerProcess server(CDE_ORCHESTRATOR_PATH);
    ASSERT_TRUE(server.Start(data, log, {}, env)) << "server did not start";
    McpClient mcp(server.base());
    ASSERT_TRUE(mcp.Initialize());
    const json call = {{"method", "POST"}, {"url", endpoint.url("/slow")}};
    json r = mcp.RegisterWorkflow(
        "call",
        Steps({{"name", "book"}, {"action", "http"}, {"params", call}}));
    ASSERT_FALSE(r.contains("error")) << r.dump();
    for (int i = 0; i < 20; ++i) {
      json started = mcp.Call("start_workflow", {{"workflow", "call"}});
      ASSERT_TRUE(started.contains("saga_id")) << started.dump();
      ids.push_back(started["saga_id"].get<std::string>());
    }
    ASSERT_TRUE(Eventually([&] { return endpoint.requests().size() == 20; }));
    server.Signal(SIGTERM);
    // Draining (the default grace is 30 s): not ready, and no new starts.
    ASSERT_TRUE(Eventually([&] {
      return Fetch(server.base() + "/health/readiness").status == 503;
    }));
    json refused = mcp.Call("start_workflow", {{"workflow", "call"}});
    ASSERT_TRUE(refused.contains("error")) << refused.dump();
    EXPECT_NE(refused["error"].dump().find("shutting down"), std::string::npos)
        << refused.dump();
    const auto t0 = std::chrono::steady_clock::now();
    server.Signal(SIGTERM);
    // At once: not after the 30 s grace or the 60 s calls.
    EXPECT_EQ(server.Wait(15000), 128 + SIGTERM);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  }
  endpoint.Respond("/slow", 200, R"({"booked": true})");
  {
    ServerProcess server(CDE_ORCHESTRATOR_PATH);
    ASSERT_TRUE(server.Start(data, log, {}, env)) << "restart failed";
    McpClient mcp(server.base());
    ASSERT_TRUE(mcp.Initialize());
    for (const std::string& id : ids) {
      EXPECT_TRUE(Eventually([&] {
        return mcp.Call("get_saga", {{"saga_id", id}}).value("state", "") ==
               "completed";
      })) << id;
    }
    server.Signal(SIGTERM);
    EXPECT_EQ(server.Wait(20000), 0);
  }
  // Each booking ran at most twice: once cut off, once after the restart.
  std::map<std::string, int> requests_by_saga;
  for (const auto& r : endpoint.requests()) {
    const std::string key = r.header("idempotency-key");
    requests_by_saga[key.substr(0, key.find('/'))]++;
  }
  for (const std::string& id : ids) {
    EXPECT_GE(requests_by_saga[id], 1) << id;
    EXPECT_LE(requests_by_saga[id], 2) << id;
  }
}

// A test that dies (an abort, a sanitizer report, SIGKILL) takes the server
// it started with it: left running, it would hold its port and its store for
// the tests after it (tools/die_with_parent.h).
TEST(ServerProcessTest, AServerEndsWithTheProcessThatStartedIt) {
  test::TempDir dir;
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  const pid_t test_process = fork();
  if (test_process == 0) {
    close(report[0]);
    ServerProcess server(CDE_ORCHESTRATOR_PATH);
    if (!server.Start(dir.Sub("data"), dir.Sub("server.log"))) _exit(2);
    const pid_t pid = server.pid();
    if (write(report[1], &pid, sizeof(pid)) != sizeof(pid)) _exit(3);
    raise(SIGKILL);  // dies without a destructor: nothing stops the server
  }
  close(report[1]);
  pid_t server = 0;
  const ssize_t n = read(report[0], &server, sizeof(server));
  close(report[0]);
  int status = 0;
  ASSERT_EQ(waitpid(test_process, &status, 0), test_process);
  ASSERT_EQ(n, static_cast<ssize_t>(sizeof(server)))
      << "the server did not start: "
      << (std::stringstream() << std::ifstream(dir.Sub("server.log")).rdbuf())
             .str();
  ASSERT_TRUE(WIFSIGNALED(status));
  // Gone, or a zombie that whoever adopted it has not reaped yet.
  auto ended = [server] {
    std::ifstream stat("/proc/" + std::to_string(server) + "/stat");
    std::string pid, comm, state;
    return !(stat >> pid >> comm >> state) || state == "Z";
  };
  EXPECT_TRUE(Eventually(ended, 10000)) << "server " << server << " runs on";
  if (!ended()) kill(server, SIGKILL);  // ours: not left to the next test
}

}  // namespace
}  // namespace cde
