// cde-bench --mcp-http, the client behind the MCP path's figures in
// docs/benchmarks.md, against the real server: every saga it counts
// completed, and what goes wrong (an HTTP error, no server) fails the run.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "tests/test_util.h"
#include "tools/server_process.h"

namespace cde {
namespace {

struct BenchRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

BenchRun Bench(const std::string& url, int sagas, int concurrency) {
  const std::string command = std::string(CDE_BENCH_PATH) + " --mcp-http '" +
                              url + "' --sagas " + std::to_string(sagas) +
                              " --concurrency " + std::to_string(concurrency) +
                              " 2>&1";
  BenchRun run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) run.output.append(buf, n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

class BenchClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start(dir_.Sub("data"), dir_.Sub("server.log")));
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.Terminate(), 0);
    }
  }

  test::TempDir dir_;
  ServerProcess server_{CDE_ORCHESTRATOR_PATH};
};

TEST_F(BenchClientTest, CountsOnlySagasTheServerCompleted) {
  const BenchRun run = Bench(server_.base() + "/mcp", 300, 8);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find(R"("errors":0)"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find(R"("sagas":300)"), std::string::npos) << run.output;
  // The server agrees: 300 sagas of the bench's workflow completed.
  HttpReply metrics = Fetch(server_.base() + "/metrics");
  EXPECT_NE(
      metrics.body.find(
          R"(cde_sagas_finished_total{workflow="bench-noop",outcome="completed"} 300)"),
      std::string::npos)
      << metrics.body;
}

TEST_F(BenchClientTest, AnHttpErrorFailsTheRun) {
  const BenchRun run = Bench(server_.base() + "/no-such-endpoint", 10, 2);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("HTTP 405"), std::string::npos) << run.output;
}

TEST_F(BenchClientTest, NoServerFailsTheRun) {
  const std::string base = server_.base();
  ASSERT_EQ(server_.Terminate(), 0);
  const BenchRun run = Bench(base + "/mcp", 10, 2);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("cannot connect"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace cde
