// How cde-admin changes state: through a running server, or offline.
//
// A server announces itself in <data-dir>/server.json ({"pid", "http",
// "mcp"}). When that pid lives and its HTTP API answers /health/liveness
// (or when --server URL is given), state changes go through the server's
// MCP endpoint, so its engine stays the only writer. When no server runs,
// cde-admin opens the store itself with a maintenance engine
// (EngineOptions::run_sagas = false), which holds the RocksDB LOCK.
#ifndef CDE_TOOLS_ADMIN_SERVER_LINK_H_
#define CDE_TOOLS_ADMIN_SERVER_LINK_H_

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace cde::admin {

// Options of the commands that change state.
struct ChangeOptions {
  std::string server;  // --server URL; "" = find it via server.json
  std::string token;   // --token, else $CDE_ADMIN_TOKEN
};

// Where a change goes.
struct Route {
  bool online = false;
  std::string mcp_url;  // online: the server's /mcp endpoint
  std::optional<pid_t> server_pid;
};

// Decides the route (see above). Fails with kExitLive when a live server
// holds the store but has no reachable HTTP API, with kExitUsage for a
// --server URL that is not http on loopback.
Route ChooseRoute(const std::string& data_dir, const ChangeOptions& options);

// The HTTP status and JSON body of an admin endpoint's answer (null body
// if not JSON). Fails (AdminError) only when the server cannot be reached;
// a 401 fails with a hint about --token.
struct AdminReply {
  long status = 0;
  nlohmann::json body;
};
AdminReply PostAdminRaw(const std::string& mcp_url, const std::string& path,
                        const nlohmann::json& body, const std::string& token,
                        long timeout_ms);

// POSTs `body` to the server's admin endpoint `path` ("/admin/backup"),
// next to its /mcp endpoint `mcp_url`. Returns the JSON answer of a 200;
// any other answer fails (AdminError, exit 1) with the server's error.
nlohmann::json PostAdmin(const std::string& mcp_url, const std::string& path,
                         const nlohmann::json& body, const std::string& token,
                         long timeout_ms);

// The bearer token: --token, else $CDE_ADMIN_TOKEN, else "".
std::string AdminToken(const ChangeOptions& options);

// An MCP session over Streamable HTTP (libcurl easy interface).
class McpSession {
 public:
  McpSession(std::string mcp_url, std::string token);
  ~McpSession();  // ends the session (DELETE), best effort
  McpSession(const McpSession&) = delete;
  McpSession& operator=(const McpSession&) = delete;

  // initialize + notifications/initialized. Fails (AdminError) when the
  // server cannot be reached or refuses.
  void Open();
  // tools/call: the result object ({structuredContent, isError, ...}).
  // Protocol-level failures throw AdminError.
  nlohmann::json CallTool(const std::string& name,
                          const nlohmann::json& arguments);
  // How long one request may take (default 60 s): a call that waits on
  // the server's side (start_workflow's wait_ms) needs longer.
  void set_timeout_ms(long ms) { timeout_ms_ = ms; }

 private:
  struct Reply {
    long status = 0;
    std::string body;
    std::string content_type;
    std::string session_id;
  };
  Reply Post(const nlohmann::json& message);
  nlohmann::json Request(const std::string& method,
                         const nlohmann::json& params);

  std::string url_;
  std::string token_;
  std::string session_;
  std::string protocol_version_;
  int next_id_ = 1;
  long timeout_ms_ = 60000;
};

}  // namespace cde::admin

#endif  // CDE_TOOLS_ADMIN_SERVER_LINK_H_
