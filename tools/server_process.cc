#include "tools/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "tools/die_with_parent.h"
#include "tools/http_call.h"

namespace cde {
namespace {

using nlohmann::json;

}  // namespace

bool Eventually(const std::function<bool()>& check, int timeout_ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (check()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return check();
}

HttpReply Fetch(const std::string& url, const std::string& post_body,
                const std::vector<std::string>& headers) {
  HttpCall call{.method = post_body.empty() ? "GET" : "POST",
                .url = url,
                .headers = {"Content-Type: application/json",
                            "Accept: application/json, text/event-stream"},
                .body = post_body};
  call.headers.insert(call.headers.end(), headers.begin(), headers.end());
  HttpAnswer answer = PerformHttpCall(call);
  HttpReply reply;
  reply.status = answer.status;
  reply.body = std::move(answer.body);
  reply.session_id = answer.header("mcp-session-id");
  reply.content_type = std::move(answer.content_type);
  reply.headers = std::move(answer.headers);
  return reply;
}

ServerProcess::~ServerProcess() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

bool ServerProcess::Start(const std::string& data_dir,
                          const std::string& log_path,
                          const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& env,
                          int ready_ms) {
  // Port 0: the server binds an ephemeral port and names it in its
  // server.json. A port picked here and bound there could be taken by
  // another process in between.
  std::vector<std::string> argv = {binary_,  "serve",  "--data-dir",
                                   data_dir, "--http", "127.0.0.1:0"};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    DieWithParent(parent);
    const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log >= 0) dup2(log, STDERR_FILENO);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  base_.clear();
  const std::string server_file = data_dir + "/server.json";
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(ready_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (base_.empty()) {
      // The file of this process, not one a killed predecessor left.
      std::ifstream in(server_file);
      json about = json::parse(in, nullptr, false);
      if (about.is_object() && about.value("pid", int64_t{-1}) == pid_ &&
          about.contains("http") && about["http"].is_string()) {
        base_ = about["http"].get<std::string>();
      }
    }
    if (!base_.empty() && Fetch(base_ + "/health/readiness").status == 200) {
      return true;
    }
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

void ServerProcess::Signal(int signum) const {
  if (pid_ > 0) kill(pid_, signum);
}

int ServerProcess::Terminate(int timeout_ms) {
  Signal(SIGTERM);
  return Wait(timeout_ms);
}

int ServerProcess::Wait(int timeout_ms) {
  if (pid_ <= 0) return -1;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

bool McpClient::Initialize(const std::vector<std::string>& headers) {
  headers_ = headers;
  HttpReply r =
      Fetch(base_ + "/mcp",
            json{{"jsonrpc", "2.0"},
                 {"id", next_id_++},
                 {"method", "initialize"},
                 {"params",
                  {{"protocolVersion", "2025-11-25"},
                   {"capabilities", json::object()},
                   {"clientInfo", {{"name", "test"}, {"version", "1"}}}}}}
                .dump(),
            headers_);
  if (r.status != 200 || r.session_id.empty()) return false;
  session_ = r.session_id;
  std::vector<std::string> h = headers_;
  h.push_back("Mcp-Session-Id: " + session_);
  Fetch(
      base_ + "/mcp",
      json{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}.dump(),
      h);
  return true;
}

json McpClient::Rpc(const std::string& method, const json& params,
                    const std::vector<std::string>& headers) {
  std::vector<std::string> h = headers_;
  h.insert(h.end(), headers.begin(), headers.end());
  h.push_back("Mcp-Session-Id: " + session_);
  HttpReply r = Fetch(base_ + "/mcp",
                      json{{"jsonrpc", "2.0"},
                           {"id", next_id_++},
                           {"method", method},
                           {"params", params}}
                          .dump(),
                      h);
  std::string body = r.body;
  // An SSE answer: the last event holds the response.
  if (r.content_type.starts_with("text/event-stream")) {
    const std::vector<std::string> events = SseEventData(body);
    body = events.empty() ? "" : events.back();
  }
  return json::parse(body, nullptr, false);
}

json McpClient::Call(const std::string& tool, const json& args) {
  json r = Rpc("tools/call", {{"name", tool}, {"arguments", args}});
  if (!r.is_object()) return {{"error", "no response"}};
  if (r.contains("error")) return {{"error", r["error"]}};
  const json& result = r["result"];
  if (result.value("isError", false)) {
    return {{"error", result["content"][0].value("text", "")}};
  }
  return result.value("structuredContent", json::object());
}

json McpClient::RegisterWorkflow(const std::string& name, const json& steps) {
  return Call(
      "register_workflow",
      {{"definition", {{"name", name}, {"version", 1}, {"steps", steps}}}});
}

}  // namespace cde
