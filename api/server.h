// Server: `cde-orchestrator serve`. Owns the engine and the transports on
// one libuv loop: MCP over Streamable HTTP at /mcp plus the health
// endpoints, and/or MCP over stdio; SIGTERM/SIGINT (and EOF on stdin) shut
// it down gracefully.
#ifndef CDE_API_SERVER_H_
#define CDE_API_SERVER_H_

#include <set>
#include <string>
#include <vector>

#include "storage/status.h"

namespace cde {

struct ServerOptions {
  std::string data_dir = "./cde-data";
  std::string workflows_dir;  // "" = none; *.json loaded at start
  bool stdio = false;         // MCP over stdin/stdout
  bool http = true;           // MCP over HTTP and the health endpoints
  std::string host = "127.0.0.1";
  int port = 8000;
  // Browser origins allowed besides localhost ones ("*": any).
  std::vector<std::string> allowed_origins;
  // Non-empty: HTTP MCP requests need one of these bearer tokens.
  std::set<std::string> bearer_tokens;
  size_t max_message_bytes = 4 << 20;
  bool sync = true;
};

// The file in the data dir that says a server runs there: JSON with its
// "pid", and its "http" base URL and "mcp" endpoint when HTTP is on.
inline constexpr const char* kServerFileName = "server.json";

// Runs the server until it is told to stop; returns how it ended.
Status RunServer(const ServerOptions& options);

}  // namespace cde

#endif  // CDE_API_SERVER_H_
