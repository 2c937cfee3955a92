// Server: `cde-orchestrator serve`. Owns the engine and the transports on
// one libuv loop: MCP over Streamable HTTP at /mcp plus the health
// endpoints, and/or MCP over stdio; SIGTERM/SIGINT (and EOF on stdin) shut
// it down gracefully.
#ifndef CDE_API_SERVER_H_
#define CDE_API_SERVER_H_

#include <functional>

#include "api/config.h"
#include "storage/status.h"

namespace cde {

struct ServerOptions {
  Config config;
  // Reads the configuration again for a reload (SIGHUP): the file, the
  // environment and the command-line overrides, as at start. Null: SIGHUP
  // logs that there is nothing to reload.
  std::function<Result<Config>()> reload;
};

// The file in the data dir that says a server runs there: JSON with its
// "pid", and its "http" base URL and "mcp" endpoint when HTTP is on.
inline constexpr const char* kServerFileName = "server.json";

// Runs the server until it is told to stop; returns how it ended.
Status RunServer(const ServerOptions& options);

}  // namespace cde

#endif  // CDE_API_SERVER_H_
