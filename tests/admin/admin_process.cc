#include "tests/admin/admin_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string_view>

#include "tools/die_with_parent.h"

extern char** environ;

namespace cde::test {

using nlohmann::json;

namespace {

// argv and envp for execve, built before fork: the child of a process with
// threads may only call async-signal-safe functions, so no allocation there.
class ExecArgs {
 public:
  ExecArgs(const std::string& binary, const std::vector<std::string>& args)
      : strings_{binary} {
    strings_.insert(strings_.end(), args.begin(), args.end());
    for (auto& a : strings_) argv_.push_back(a.data());
    argv_.push_back(nullptr);
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string_view(*e).starts_with("NO_COLOR=")) continue;
      env_.emplace_back(*e);
    }
    env_.emplace_back("NO_COLOR=1");
    for (auto& e : env_) envp_.push_back(e.data());
    envp_.push_back(nullptr);
  }
  [[noreturn]] void Exec() {
    execve(argv_[0], argv_.data(), envp_.data());
    _exit(127);
  }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> argv_;
  std::vector<std::string> env_;
  std::vector<char*> envp_;
};

int WaitExit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

json AdminRun::Json() const {
  return json::parse(out, nullptr, /*allow_exceptions=*/false);
}

std::vector<json> AdminRun::JsonLines() const {
  std::vector<json> lines;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) {
      lines.push_back(json::parse(line, nullptr, false));
    }
  }
  return lines;
}

AdminRun RunProcess(const std::string& binary,
                    const std::vector<std::string>& args, int timeout_ms) {
  AdminRun run;
  ExecArgs exec(binary, args);
  int out[2], err[2];
  if (pipe(out) != 0 || pipe(err) != 0) return run;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    DieWithParent(parent);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    close(out[0]);
    close(out[1]);
    close(err[0]);
    close(err[1]);
    const int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, STDIN_FILENO);
    exec.Exec();
  }
  close(out[1]);
  close(err[1]);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  bool killed = false;
  char buf[65536];
  while (open_fds > 0) {
    if (!killed && std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);  // our own child, by its pid
      killed = true;
    }
    if (poll(fds, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP)) == 0) {
        continue;
      }
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      (i == 0 ? run.out : run.err).append(buf, static_cast<size_t>(n));
    }
  }
  run.exit_code = WaitExit(pid);
  return run;
}

ServerProcess::ServerProcess(const std::string& binary,
                             const std::string& data_dir,
                             const std::string& workflows_dir,
                             const std::string& http,
                             const std::vector<std::string>& extra) {
  log_path_ = data_dir + ".server.log";
  std::vector<std::string> args = {"serve",       "--stdio",    "--http",
                                   http,          "--data-dir", data_dir,
                                   "--workflows", workflows_dir};
  args.insert(args.end(), extra.begin(), extra.end());
  ExecArgs exec(binary, args);
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) return;
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    DieWithParent(parent);
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    const int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(log, STDERR_FILENO);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    exec.Exec();
  }
  close(in[0]);
  close(out[1]);
  in_ = in[1];
  out_ = out[0];
  signal(SIGPIPE, SIG_IGN);
}

ServerProcess::~ServerProcess() { Stop(); }

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);  // our own child, by its pid
  const int code = WaitExit(pid_);
  pid_ = -1;
  close(in_);
  close(out_);
  return code;
}

std::string ServerProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool ServerProcess::ReadLine(std::string* line, int timeout_ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      *line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return true;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return false;
    pollfd p{out_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[65536];
    const ssize_t n = read(out_, buf, sizeof buf);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

json ServerProcess::Request(const std::string& method, const json& params) {
  const int id = next_id_++;
  const std::string msg = json{{"jsonrpc", "2.0"},
                               {"id", id},
                               {"method", method},
                               {"params", params}}
                              .dump() +
                          "\n";
  if (write(in_, msg.data(), msg.size()) != static_cast<ssize_t>(msg.size())) {
    return nullptr;
  }
  std::string line;
  while (ReadLine(&line, 30000)) {
    json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("id") && j["id"] == id) return j;
  }
  return nullptr;
}

bool ServerProcess::Initialize() {
  json r =
      Request("initialize",
              {{"protocolVersion", "2025-06-18"},
               {"capabilities", json::object()},
               {"clientInfo", {{"name", "admin-test"}, {"version", "1"}}}});
  if (!r.is_object() || !r.contains("result")) return false;
  const std::string note =
      json{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}.dump() +
      "\n";
  return write(in_, note.data(), note.size()) ==
         static_cast<ssize_t>(note.size());
}

json ServerProcess::CallTool(const std::string& name, const json& arguments,
                             std::string* error) {
  json r = Request("tools/call", {{"name", name}, {"arguments", arguments}});
  if (!r.is_object() || !r.contains("result") ||
      r["result"].value("isError", false)) {
    if (error != nullptr) *error = r.dump();
    return nullptr;
  }
  return r["result"]["structuredContent"];
}

std::vector<std::string> ServerProcess::ToolNames() {
  json r = Request("tools/list", json::object());
  std::vector<std::string> names;
  if (!r.is_object() || !r.contains("result")) return names;
  for (const json& tool : r["result"].value("tools", json::array())) {
    names.push_back(tool.value("name", ""));
  }
  return names;
}

}  // namespace cde::test
