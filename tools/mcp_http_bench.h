// cde-bench --mcp-http: see mcp_http_bench.cc.
#ifndef CDE_TOOLS_MCP_HTTP_BENCH_H_
#define CDE_TOOLS_MCP_HTTP_BENCH_H_

#include <nlohmann/json.hpp>
#include <string>

namespace cde {

struct McpHttpBenchOptions {
  nlohmann::json workflow;  // registered through the server first
  int sagas = 20000;
  int concurrency = 64;  // sessions, one connection each
  std::string token;     // bearer token, if the server wants one
};

// Prints a table and a JSON line; returns 0 when every saga completed.
int RunMcpHttpBench(const std::string& url, McpHttpBenchOptions options);

}  // namespace cde

#endif  // CDE_TOOLS_MCP_HTTP_BENCH_H_
