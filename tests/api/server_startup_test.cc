// The real server's start over stdio: a client that writes its first
// requests at once, before the server could have loaded anything, still
// finds every workflow of --workflows among its tools.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "api/mcp_session.h"
#include "tests/admin/admin_process.h"
#include "tests/test_util.h"

namespace cde {
namespace {

TEST(ServerStartupTest, AStdioClientsFirstToolListHasEveryWorkflowTool) {
  std::vector<std::string> wanted;
  for (const auto& entry :
       std::filesystem::directory_iterator(CDE_EXAMPLES_DIR)) {
    if (entry.path().extension() != ".json") continue;
    wanted.push_back(WorkflowToolName(entry.path().stem().string()));
  }
  ASSERT_FALSE(wanted.empty());
  // Several fresh servers: each one's load of the examples races the
  // client's first requests, which are written before the server reads.
  for (int round = 0; round < 3; ++round) {
    test::TempDir dir;
    test::ServerProcess server(CDE_ORCHESTRATOR_PATH, dir.Sub("data"),
                               CDE_EXAMPLES_DIR, "none");
    ASSERT_TRUE(server.Initialize()) << server.Log();
    const std::vector<std::string> tools = server.ToolNames();
    for (const std::string& tool : wanted) {
      EXPECT_TRUE(std::find(tools.begin(), tools.end(), tool) != tools.end())
          << tool << " is missing from the first tools/list (round " << round
          << ")";
    }
    EXPECT_EQ(server.Stop(), 0) << server.Log();
  }
}

}  // namespace
}  // namespace cde
