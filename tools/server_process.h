// The real cde-orchestrator binary as a child process, and a small MCP
// client over HTTP: for tests that need the whole server, and for
// cde-torture. Blocking calls; loopback only.
#ifndef CDE_TOOLS_SERVER_PROCESS_H_
#define CDE_TOOLS_SERVER_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cde {

// Polls `check` every 50 ms until it holds or `timeout_ms` has passed.
bool Eventually(const std::function<bool()>& check, int timeout_ms = 15000);

struct HttpReply {
  long status = 0;  // 0: no answer
  std::string body;
  std::string session_id;  // Mcp-Session-Id
  std::string content_type;
  std::map<std::string, std::string> headers;  // lower-case names
};

// One request with curl; POST when `post_body` is not empty.
HttpReply Fetch(const std::string& url, const std::string& post_body = "",
                const std::vector<std::string>& headers = {});

// `serve --data-dir DIR --http 127.0.0.1:0 ARGS...` with its stderr in
// `log_path`; killed (SIGKILL) on destruction if still running.
class ServerProcess {
 public:
  // `binary`: the cde-orchestrator executable.
  explicit ServerProcess(std::string binary) : binary_(std::move(binary)) {}
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess();

  // Starts it on an ephemeral loopback port (the one its server.json names)
  // and waits until /health/readiness answers 200. False if it exits or
  // does not within `ready_ms` (the destructor then kills it).
  bool Start(const std::string& data_dir, const std::string& log_path,
             const std::vector<std::string>& args = {},
             const std::map<std::string, std::string>& env = {},
             int ready_ms = 20000);
  void Signal(int signum) const;
  // SIGTERM, then Wait(timeout_ms): the exit code of a clean stop is 0.
  int Terminate(int timeout_ms = 20000);
  // Waits for it to exit: its exit code, 128 + signal if a signal ended it,
  // or -1 if it is still running after `timeout_ms`.
  int Wait(int timeout_ms);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& base() const { return base_; }  // http://127.0.0.1:PORT

 private:
  std::string binary_;
  pid_t pid_ = -1;
  std::string base_;
};

// An initialized MCP session over Streamable HTTP.
class McpClient {
 public:
  explicit McpClient(std::string base) : base_(std::move(base)) {}
  // initialize + notifications/initialized; false if it failed.
  bool Initialize(const std::vector<std::string>& headers = {});
  // One JSON-RPC request; the whole response object (null if none).
  nlohmann::json Rpc(const std::string& method, const nlohmann::json& params,
                     const std::vector<std::string>& headers = {});
  // tools/call: the result's structuredContent, or an object with "error"
  // (the tool's isError text, or the JSON-RPC error) if it failed.
  nlohmann::json Call(const std::string& tool, const nlohmann::json& args);
  // register_workflow of version 1 of `name` with `steps`; as Call.
  nlohmann::json RegisterWorkflow(const std::string& name,
                                  const nlohmann::json& steps);

 private:
  std::string base_;
  std::string session_;
  int next_id_ = 1;
  std::vector<std::string> headers_;
};

}  // namespace cde

#endif  // CDE_TOOLS_SERVER_PROCESS_H_
