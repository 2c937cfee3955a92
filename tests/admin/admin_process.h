// Real processes for the cde-admin end-to-end tests: one run of the
// cde-admin binary with its stdout, stderr and exit code, and a real
// `cde-orchestrator serve` driven over MCP stdio.
#ifndef CDE_TESTS_ADMIN_ADMIN_PROCESS_H_
#define CDE_TESTS_ADMIN_ADMIN_PROCESS_H_

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cde::test {

struct AdminRun {
  int exit_code = -1;  // -1 if it did not exit normally
  std::string out;
  std::string err;
  // stdout parsed as one JSON document (null if it is not JSON).
  nlohmann::json Json() const;
  // stdout parsed as JSON lines.
  std::vector<nlohmann::json> JsonLines() const;
};

// Runs `binary` with `args` (env: the test's, with NO_COLOR set), waits at
// most `timeout_ms` (then SIGKILLs it).
AdminRun RunProcess(const std::string& binary,
                    const std::vector<std::string>& args,
                    int timeout_ms = 60000);

// `cde-orchestrator serve --stdio --http 127.0.0.1:0 --data-dir D
// --workflows W`, with MCP requests written to its stdin. `http` replaces
// 127.0.0.1:0 ("none": stdio only); `extra` are more options of serve.
class ServerProcess {
 public:
  ServerProcess(const std::string& binary, const std::string& data_dir,
                const std::string& workflows_dir,
                const std::string& http = "127.0.0.1:0",
                const std::vector<std::string>& extra = {});
  ~ServerProcess();  // Stop()s it if still running
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Initializes the MCP session; false if the server did not answer.
  bool Initialize();
  // tools/call `name` with `arguments`; the result's structuredContent, or
  // null on error (with the response in *error if given).
  nlohmann::json CallTool(const std::string& name,
                          const nlohmann::json& arguments,
                          std::string* error = nullptr);
  // tools/list: the tools' names, in the server's order (empty if the
  // server did not answer).
  std::vector<std::string> ToolNames();
  // SIGTERM by pid, then waits for it; returns its exit code.
  int Stop();
  // What the server logged on stderr.
  std::string Log() const;

 private:
  nlohmann::json Request(const std::string& method,
                         const nlohmann::json& params);
  bool ReadLine(std::string* line, int timeout_ms);

  pid_t pid_ = -1;
  int in_ = -1;   // the server's stdin
  int out_ = -1;  // the server's stdout
  std::string log_path_;
  std::string buffer_;
  int next_id_ = 1;
};

}  // namespace cde::test

#endif  // CDE_TESTS_ADMIN_ADMIN_PROCESS_H_
