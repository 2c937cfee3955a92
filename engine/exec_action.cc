// The `exec` action. Each attempt is a Child that owns its uv_process_t and
// three uv_pipe_t and frees itself once all four are closed. ExecRunner owns
// the attempts in flight plus one timer that delivers failures found inside
// Start (bad params, spawn errors) on a later loop turn, so that `done` never
// runs before Start has returned the handle. The AsyncAction returned to the
// engine is a thin front: the runner outlives it until its handles close.
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/async_action.h"
#include "engine/json_text.h"
#include "engine/secrets.h"
#include "storage/json_depth.h"

extern char** environ;

namespace cde {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxOutput = size_t{1} << 20;  // per stream
constexpr size_t kStderrTail = 2048;

// The end of `err`, with the values of `secrets` redacted before it is cut.
std::string StderrTail(std::string err,
                       const AttemptRequest::Secrets& secrets) {
  if (secrets != nullptr) RedactText(*secrets, &err);
  size_t start = err.size() > kStderrTail ? err.size() - kStderrTail : 0;
  while (start < err.size() && (err[start] & 0xC0) == 0x80) ++start;
  std::string tail = ValidUtf8(err.substr(start));
  while (!tail.empty() && std::isspace(static_cast<unsigned char>(tail.back())))
    tail.pop_back();
  return tail;
}

struct Command {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "NAME=value"
  std::string cwd;               // empty: the engine's
  std::string input;             // written to stdin, then EOF
};

// The variables of the engine's environment a child gets: all of them, or
// under a sandbox the ones it allows.
std::map<std::string, std::string> InheritedEnvironment(
    const ExecSandbox* sandbox) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    std::string name = entry.substr(0, eq);
    if (sandbox != nullptr &&
        std::find(sandbox->env_allow.begin(), sandbox->env_allow.end(), name) ==
            sandbox->env_allow.end()) {
      continue;
    }
    vars[std::move(name)] = entry.substr(eq + 1);
  }
  return vars;
}

// A limit of `limits` as prlimit sets it.
struct LimitToSet {
  const char* setting;  // under actions.exec.limits
  const char* option;   // prlimit's
  int resource;
  const char* ulimit;  // the shell's option for the same limit
  uint64_t soft, hard;
};

// Soft and hard limits alike, except that the CPU's hard limit is a second
// later, so that a program gets SIGXCPU (which it may catch to clean up)
// before SIGKILL.
std::vector<LimitToSet> LimitsToSet(const ExecLimits& limits) {
  constexpr uint64_t kMiB = uint64_t{1} << 20;
  std::vector<LimitToSet> out;
  if (limits.cpu_seconds != 0) {
    out.push_back({"cpu_seconds", "cpu", RLIMIT_CPU, "-t", limits.cpu_seconds,
                   limits.cpu_seconds + 1});
  }
  if (limits.address_space_mb != 0) {
    const uint64_t bytes = limits.address_space_mb * kMiB;
    out.push_back({"address_space_mb", "as", RLIMIT_AS, "-v", bytes, bytes});
  }
  if (limits.file_size_mb != 0) {
    const uint64_t bytes = limits.file_size_mb * kMiB;
    out.push_back({"file_size_mb", "fsize", RLIMIT_FSIZE, "-f", bytes, bytes});
  }
  if (limits.processes != 0) {
    out.push_back({"processes", "nproc", RLIMIT_NPROC, "-u", limits.processes,
                   limits.processes});
  }
  return out;
}

std::vector<std::string> PrlimitOptions(const ExecLimits& limits) {
  std::vector<std::string> out;
  for (const LimitToSet& l : LimitsToSet(limits)) {
    std::string option =
        std::string("--") + l.option + "=" + std::to_string(l.soft);
    if (l.hard != l.soft) option += ":" + std::to_string(l.hard);
    out.push_back(std::move(option));
  }
  // No core dumps: one would hold the attempt's rendered params, secrets
  // among them, in a file the child's user can read.
  out.push_back("--core=0");
  return out;
}

// The child (prlimit, then the program) runs unprivileged, as the server's
// user or, when the server is root, as actions.exec.user, and so may lower
// its hard limits, inherited from the server, but not raise them: a limit
// above the server's would fail every attempt with prlimit's complaint.
Status CheckLimitsWithinTheServers(const ExecLimits& limits) {
  for (const LimitToSet& l : LimitsToSet(limits)) {
    rlimit server{};
    if (getrlimit(l.resource, &server) != 0 ||
        server.rlim_max == RLIM_INFINITY || l.hard <= server.rlim_max) {
      continue;
    }
    return Status::InvalidArgument(
        std::string("actions.exec.limits.") + l.setting + ": sets a hard " +
        "limit of " + std::to_string(l.hard) + ", above the server's own (" +
        std::to_string(server.rlim_max) + "), which its exec children " +
        "cannot raise; lower it, or start the server with a higher hard " +
        "limit (`ulimit -H " + l.ulimit + "` shows it, in the shell's units)");
  }
  return Status::OK();
}

// Fills `cmd` from rendered params (and `sandbox`, may be null); returns
// what is wrong, or "". Params were checked at registration, but a
// whole-string template can render to any type, so the types are checked
// again here.
std::string ParseCommand(const AttemptRequest& request,
                         const ExecSandbox* sandbox, Command* cmd) {
  const json& params = request.params;
  if (!params.is_object()) return "params must be an object";
  const auto argv = params.find("argv");
  if (argv == params.end() || !argv->is_array() || argv->empty()) {
    return "argv must be a non-empty array of strings";
  }
  for (const json& arg : *argv) {
    if (!arg.is_string()) return "argv must be a non-empty array of strings";
    cmd->argv.push_back(arg.get<std::string>());
  }
  std::map<std::string, std::string> vars = InheritedEnvironment(sandbox);
  if (const auto env = params.find("env"); env != params.end()) {
    if (!env->is_object()) return "env must be an object of strings";
    for (const auto& [name, value] : env->items()) {
      if (name.empty() || name.find('=') != std::string::npos) {
        return "env: invalid variable name '" + name + "'";
      }
      if (!value.is_string()) return "env." + name + " must be a string";
      vars[name] = value.get<std::string>();
    }
  }
  vars["CDE_IDEMPOTENCY_KEY"] = request.idempotency_key;
  vars["CDE_SAGA_ID"] = request.saga_id;
  vars["CDE_STEP"] = request.step;
  vars["CDE_ATTEMPT"] = std::to_string(request.attempt);
  for (const auto& [name, value] : vars) cmd->env.push_back(name + "=" + value);
  if (const auto cwd = params.find("cwd"); cwd != params.end()) {
    if (!cwd->is_string()) return "cwd must be a string";
    cmd->cwd = cwd->get<std::string>();
  }
  if (sandbox != nullptr) cmd->cwd = sandbox->cwd;
  if (const auto in = params.find("stdin"); in != params.end()) {
    cmd->input = in->is_string()
                     ? in->get<std::string>()
                     : in->dump(-1, ' ', false, json::error_handler_t::replace);
  }
  // C strings end at the first NUL: refuse rather than run something else.
  auto has_nul = [](const std::string& s) {
    return s.find('\0') != std::string::npos;
  };
  for (const auto* list : {&cmd->argv, &cmd->env}) {
    for (const std::string& s : *list) {
      if (has_nul(s)) return "argv and env cannot contain NUL characters";
    }
  }
  if (has_nul(cmd->cwd)) return "cwd cannot contain NUL characters";
  return "";
}

// Runs `cmd` under `sandbox`'s prlimit, which sets the limits and then
// execs the program, so that they hold from its first instruction.
void WrapInPrlimit(const ExecSandbox& sandbox, Command* cmd) {
  std::vector<std::string> argv = {sandbox.prlimit};
  for (std::string& option : PrlimitOptions(sandbox.limits)) {
    argv.push_back(std::move(option));
  }
  argv.push_back("--");
  for (std::string& arg : cmd->argv) argv.push_back(std::move(arg));
  cmd->argv = std::move(argv);
}

// Why a sandboxed child got `signal`, when a limit says so; else "".
std::string LimitHit(int signal) {
  if (signal == SIGXCPU) {
    return " (the CPU time limit, actions.exec.limits.cpu_seconds)";
  }
  if (signal == SIGXFSZ) {
    return " (the file size limit, actions.exec.limits.file_size_mb)";
  }
  return "";
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

class Child;

class ExecRunner {
 public:
  ExecRunner(uv_loop_t* loop, std::optional<ExecSandbox> sandbox)
      : loop_(loop), sandbox_(std::move(sandbox)) {
    uv_timer_init(loop, &timer_);
    timer_.data = this;
  }
  ExecRunner(const ExecRunner&) = delete;
  ExecRunner& operator=(const ExecRunner&) = delete;

  uint64_t Start(const AttemptRequest& request, ActionDone done);
  void Abort(uint64_t id);
  size_t in_flight() const { return running_.size() + failed_.size(); }
  // Frees the runner (after running `on_closed`) once every handle closed.
  void Close(std::function<void()> on_closed);

  // From Child: the attempt completed; its handles are closing.
  void Finished(uint64_t id) { running_.erase(id); }
  // From Child: its last handle closed and it has freed itself.
  void ChildClosed() {
    --open_handles_;
    MaybeFinishClose();
  }

 private:
  struct Failed {
    ActionDone done;
    ActionResult result;
  };

  static void OnTimer(uv_timer_t* handle);
  static void OnTimerClosed(uv_handle_t* handle);
  void Fail(uint64_t id, ActionDone done, ActionResult result);
  void MaybeFinishClose();

  uv_loop_t* const loop_;
  const std::optional<ExecSandbox> sandbox_;
  uv_timer_t timer_;
  std::unordered_map<uint64_t, Child*> running_;
  std::map<uint64_t, Failed> failed_;  // waiting for timer_
  uint64_t next_id_ = 1;
  size_t open_handles_ = 1;  // timer_ and one per live Child
  bool closing_ = false;
  std::function<void()> on_closed_;
};

class Child {
 public:
  Child(ExecRunner* runner, uint64_t id, const ExecSandbox* sandbox,
        AttemptRequest::Secrets secrets, ActionDone done)
      : runner_(runner),
        id_(id),
        sandbox_(sandbox),
        secrets_(std::move(secrets)),
        done_(std::move(done)) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Returns 0 or a libuv error; either way the Child then owns four handles
  // and frees itself when they are closed.
  int Spawn(uv_loop_t* loop, Command& cmd);
  // Kills the process; `done` is never called. Returns `done` for a caller
  // that reports the failure itself.
  ActionDone Abort();
  // The process is prlimit, which runs `program` (found as execvp finds
  // it, from `cwd`) once the limits are set.
  void RunsUnderPrlimit(std::string program, std::string cwd) {
    program_ = std::move(program);
    cwd_ = std::move(cwd);
  }

 private:
  struct Stream {
    uv_pipe_t pipe;
    std::string data;
    bool done = false;
  };

  static void OnExit(uv_process_t* process, int64_t status, int signal);
  static void OnAlloc(uv_handle_t* handle, size_t size, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf);
  static void OnWrite(uv_write_t* req, int status);
  static void OnClose(uv_handle_t* handle);
  void Kill();
  void Settle();
  void CloseHandle(void* handle);
  ActionResult Result() const;
  // Under limits: what prlimit said after `prefix` on the first line of
  // stderr, when it stopped before the program ran (nullopt otherwise).
  std::optional<std::string> PrlimitSaid(std::string_view prefix) const;

  ExecRunner* const runner_;
  const uint64_t id_;
  const ExecSandbox* const sandbox_;  // the runner's; null: none
  const AttemptRequest::Secrets secrets_;
  ActionDone done_;
  uv_process_t process_;
  uv_pipe_t stdin_;
  Stream out_;
  Stream err_;
  uv_write_t write_;
  std::string input_;  // must outlive write_
  int open_handles_ = 0;
  int pid_ = 0;  // 0: not spawned (kill(0) would hit our own group)
  bool exited_ = false;
  bool aborted_ = false;
  int64_t exit_status_ = 0;
  int term_signal_ = 0;
  const char* too_large_ = nullptr;  // the stream that overflowed
  std::string program_, cwd_;        // under prlimit: what it runs, where
  std::array<char, 64 * 1024> buf_;  // reads are synchronous: one suffices
};

int Child::Spawn(uv_loop_t* loop, Command& cmd) {
  for (uv_pipe_t* pipe : {&stdin_, &out_.pipe, &err_.pipe}) {
    uv_pipe_init(loop, pipe, 0);
    pipe->data = this;
    ++open_handles_;
  }
  uv_stdio_container_t stdio[3];
  stdio[0].flags =
      static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_READABLE_PIPE);
  stdio[0].data.stream = reinterpret_cast<uv_stream_t*>(&stdin_);
  for (int i : {1, 2}) {
    stdio[i].flags =
        static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[i].data.stream =
        reinterpret_cast<uv_stream_t*>(i == 1 ? &out_.pipe : &err_.pipe);
  }
  std::vector<char*> args = CStrings(cmd.argv);
  std::vector<char*> env = CStrings(cmd.env);
  uv_process_options_t options = {};
  options.exit_cb = &Child::OnExit;
  options.file = args[0];
  options.args = args.data();
  options.env = env.data();
  options.cwd = cmd.cwd.empty() ? nullptr : cmd.cwd.c_str();
  // Its own process group, so that Kill also reaches what a shell started.
  options.flags = UV_PROCESS_DETACHED;
  if (sandbox_ != nullptr && sandbox_->uid) {
    // libuv also drops the supplementary groups (setgroups) first.
    options.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
    options.uid = *sandbox_->uid;
    options.gid = sandbox_->gid.value_or(0);
  }
  options.stdio_count = 3;
  options.stdio = stdio;
  const int rc = uv_spawn(loop, &process_, &options);
  process_.data = this;
  ++open_handles_;  // uv_spawn initialises the handle even when it fails
  if (rc != 0) return rc;
  pid_ = process_.pid;
  for (Stream* s : {&out_, &err_}) {
    uv_read_start(reinterpret_cast<uv_stream_t*>(&s->pipe), &Child::OnAlloc,
                  &Child::OnRead);
  }
  input_ = std::move(cmd.input);
  uv_buf_t buf =
      uv_buf_init(input_.data(), static_cast<unsigned>(input_.size()));
  if (input_.empty() ||
      uv_write(&write_, reinterpret_cast<uv_stream_t*>(&stdin_), &buf, 1,
               &Child::OnWrite) != 0) {
    CloseHandle(&stdin_);  // EOF for the child
  }
  return 0;
}

ActionDone Child::Abort() {
  aborted_ = true;
  Kill();
  Settle();
  return std::exchange(done_, nullptr);
}

void Child::Kill() {
  if (pid_ == 0) return;
  if (uv_kill(-pid_, SIGKILL) != 0 && !exited_) {
    uv_process_kill(&process_, SIGKILL);
  }
}

// Completes the attempt, or closes what an aborted one no longer needs.
void Child::Settle() {
  if (aborted_) {
    for (void* h :
         std::initializer_list<void*>{&stdin_, &out_.pipe, &err_.pipe})
      CloseHandle(h);
    // A live process's handle stays open until its exit is reaped; closing
    // it earlier would leave a zombie.
    if (exited_ || pid_ == 0) CloseHandle(&process_);
    return;
  }
  if (!exited_ || !out_.done || !err_.done) return;
  for (void* h :
       std::initializer_list<void*>{&stdin_, &out_.pipe, &err_.pipe, &process_})
    CloseHandle(h);
  runner_->Finished(id_);
  std::exchange(done_, nullptr)(Result());
}

ActionResult Child::Result() const {
  if (too_large_ != nullptr) {
    return ActionResult::Failure(
        "output_too_large",
        std::string(too_large_) + " exceeded 1 MiB; the process was killed");
  }
  const std::string tail = StderrTail(err_.data, secrets_);
  const std::string detail = tail.empty() ? "" : ": " + tail;
  if (term_signal_ != 0) {
    const std::string n = std::to_string(term_signal_);
    const std::string why = sandbox_ != nullptr ? LimitHit(term_signal_) : "";
    return ActionResult::Failure("signal:" + n,
                                 "killed by signal " + n + why + detail);
  }
  // prlimit stopped before the program ran: a `spawn` error, as uv_spawn's
  // is without limits. It could not run the program (126, 127), or not set
  // a limit (1: the server's hard limit was lowered below it since the
  // start, which checked it), which the configuration, not the program,
  // is to blame for.
  if (exit_status_ == 126 || exit_status_ == 127) {
    if (auto said = PrlimitSaid("prlimit: failed to execute ")) {
      // strerror's text, after the program's name (the whole, if no ": ").
      const size_t colon = said->rfind(": ");
      std::string why =
          colon == std::string::npos ? *said : said->substr(colon + 2);
      if (!why.empty()) why[0] = static_cast<char>(std::tolower(why[0]));
      return ActionResult::Failure(
          "spawn", "cannot run '" + program_ + "'" +
                       (cwd_.empty() ? "" : " in '" + cwd_ + "'") + ": " + why);
    }
  }
  if (exit_status_ == 1) {
    if (auto said = PrlimitSaid("prlimit: failed to set the ")) {
      return ActionResult::Failure(
          "spawn", "cannot run '" + program_ +
                       "' under actions.exec.limits: prlimit could not set "
                       "the " +
                       *said);
    }
  }
  if (exit_status_ != 0) {
    const std::string n = std::to_string(exit_status_);
    return ActionResult::Failure("exit_code:" + n, "exit code " + n + detail);
  }
  // Not JSON, or nested beyond what the engine holds: kept as text.
  json output = ParseBoundedJson(out_.data);
  if (output.is_discarded()) output = {{"stdout", ValidUtf8(out_.data)}};
  return ActionResult::Success(std::move(output));
}

std::optional<std::string> Child::PrlimitSaid(std::string_view prefix) const {
  if (program_.empty() || !err_.data.starts_with(prefix)) return std::nullopt;
  const size_t end = err_.data.find('\n');
  return ValidUtf8(err_.data.substr(
      prefix.size(), end == std::string::npos ? end : end - prefix.size()));
}

void Child::CloseHandle(void* handle) {
  auto* h = static_cast<uv_handle_t*>(handle);
  if (!uv_is_closing(h)) uv_close(h, &Child::OnClose);
}

void Child::OnExit(uv_process_t* process, int64_t status, int signal) {
  auto* self = static_cast<Child*>(process->data);
  self->exited_ = true;
  self->exit_status_ = status;
  self->term_signal_ = signal;
  self->Settle();
}

void Child::OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<Child*>(handle->data);
  *buf =
      uv_buf_init(self->buf_.data(), static_cast<unsigned>(self->buf_.size()));
}

void Child::OnRead(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
  auto* self = static_cast<Child*>(stream->data);
  const bool is_out =
      stream == reinterpret_cast<uv_stream_t*>(&self->out_.pipe);
  Stream& s = is_out ? self->out_ : self->err_;
  if (n == 0) return;  // EAGAIN
  if (n > 0 && s.data.size() + n <= kMaxOutput) {
    s.data.append(buf->base, n);
    return;
  }
  if (n > 0 && self->too_large_ == nullptr) {
    // Killed, not drained: a runaway writer would never stop.
    self->too_large_ = is_out ? "stdout" : "stderr";
    self->Kill();
  }
  // EOF, a read error, or too much output: this stream is finished.
  s.done = true;
  self->CloseHandle(stream);
  self->Settle();
}

void Child::OnWrite(uv_write_t* req, int) {
  // Written, or failed because the child closed its stdin: EOF either way.
  auto* self = static_cast<Child*>(req->handle->data);
  self->CloseHandle(&self->stdin_);
}

void Child::OnClose(uv_handle_t* handle) {
  auto* self = static_cast<Child*>(handle->data);
  if (--self->open_handles_ > 0) return;
  ExecRunner* runner = self->runner_;
  delete self;
  runner->ChildClosed();
}

uint64_t ExecRunner::Start(const AttemptRequest& request, ActionDone done) {
  assert(!closing_ && "Start after Close");
  const uint64_t id = next_id_++;
  Command cmd;
  const ExecSandbox* sandbox = sandbox_ ? &*sandbox_ : nullptr;
  if (std::string error = ParseCommand(request, sandbox, &cmd);
      !error.empty()) {
    Fail(id, std::move(done), ActionResult::Failure("params", error));
    return id;
  }
  const std::string program = cmd.argv[0];
  const std::string cwd = cmd.cwd;
  auto* child = new Child(this, id, sandbox, request.secrets, std::move(done));
  if (sandbox != nullptr && sandbox->limits.any()) {
    WrapInPrlimit(*sandbox, &cmd);
    child->RunsUnderPrlimit(program, cwd);
  }
  ++open_handles_;
  if (const int rc = child->Spawn(loop_, cmd); rc != 0) {
    std::string message = "cannot run '" + program + "'";
    if (!cwd.empty()) message += " in '" + cwd + "'";
    Fail(id, child->Abort(),
         ActionResult::Failure("spawn", message + ": " + uv_strerror(rc)));
    return id;
  }
  running_[id] = child;
  return id;
}

void ExecRunner::Abort(uint64_t id) {
  failed_.erase(id);
  const auto it = running_.find(id);
  if (it == running_.end()) return;
  Child* child = it->second;
  running_.erase(it);
  child->Abort();
}

void ExecRunner::Fail(uint64_t id, ActionDone done, ActionResult result) {
  failed_[id] = {std::move(done), std::move(result)};
  uv_timer_start(&timer_, &ExecRunner::OnTimer, 0, 0);
}

void ExecRunner::OnTimer(uv_timer_t* handle) {
  auto* self = static_cast<ExecRunner*>(handle->data);
  // One at a time: a `done` may Abort another entry or Close the runner.
  while (!self->failed_.empty() && !self->closing_) {
    auto node = self->failed_.extract(self->failed_.begin());
    node.mapped().done(std::move(node.mapped().result));
  }
}

void ExecRunner::Close(std::function<void()> on_closed) {
  closing_ = true;
  on_closed_ = std::move(on_closed);
  failed_.clear();
  for (auto& [id, child] : std::exchange(running_, {})) child->Abort();
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &ExecRunner::OnTimerClosed);
}

void ExecRunner::OnTimerClosed(uv_handle_t* handle) {
  auto* self = static_cast<ExecRunner*>(handle->data);
  --self->open_handles_;
  self->MaybeFinishClose();
}

void ExecRunner::MaybeFinishClose() {
  if (!closing_ || open_handles_ > 0) return;
  std::function<void()> on_closed = std::move(on_closed_);
  delete this;
  if (on_closed) on_closed();
}

class ExecAction final : public AsyncAction {
 public:
  ExecAction(uv_loop_t* loop, std::optional<ExecSandbox> sandbox)
      : runner_(new ExecRunner(loop, std::move(sandbox))) {}
  ~ExecAction() override {
    if (runner_ != nullptr) runner_->Close(nullptr);
  }

  uint64_t Start(const AttemptRequest& request, ActionDone done) override {
    assert(runner_ != nullptr && "Start after Close");
    return runner_->Start(request, std::move(done));
  }
  void Abort(uint64_t handle) override {
    if (runner_ != nullptr) runner_->Abort(handle);
  }
  size_t in_flight() const override {
    return runner_ != nullptr ? runner_->in_flight() : 0;
  }
  void Close(std::function<void()> on_closed) override {
    assert(runner_ != nullptr && "Close twice");
    std::exchange(runner_, nullptr)->Close(std::move(on_closed));
  }

 private:
  ExecRunner* runner_;  // frees itself once closed
};

std::unique_ptr<AsyncAction> NewExecActionWith(
    uv_loop_t* loop, std::optional<ExecSandbox> sandbox) {
  // A child that exits without reading its stdin turns our write into
  // SIGPIPE, whose default action would kill the engine. libuv resets
  // signal dispositions in the child, so commands still get the default.
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] {
    struct sigaction current = {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 &&
        current.sa_handler == SIG_DFL) {
      signal(SIGPIPE, SIG_IGN);
    }
  });
  return std::make_unique<ExecAction>(loop, std::move(sandbox));
}

}  // namespace

std::unique_ptr<AsyncAction> NewExecAction(uv_loop_t* loop) {
  return NewExecActionWith(loop, std::nullopt);
}

std::unique_ptr<AsyncAction> NewSandboxedExecAction(uv_loop_t* loop,
                                                    ExecSandbox sandbox) {
  return NewExecActionWith(loop, std::move(sandbox));
}

Result<ExecSandbox> ResolveExecSandbox(const ExecPolicy& policy) {
  ExecSandbox sandbox{.env_allow = policy.env_allow,
                      .cwd = policy.cwd,
                      .limits = policy.limits};
  if (!policy.clients) return sandbox;  // never used
  struct stat st;
  if (!sandbox.cwd.starts_with('/') || stat(sandbox.cwd.c_str(), &st) != 0 ||
      !S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("actions.exec.cwd: '" + sandbox.cwd +
                                   "' is not a directory (an absolute path "
                                   "is needed)");
  }
  if (sandbox.limits.any() && access(sandbox.prlimit.c_str(), X_OK) != 0) {
    return Status::InvalidArgument(
        "actions.exec.limits: " + sandbox.prlimit +
        " (util-linux) is needed to set them and cannot be run: " +
        std::strerror(errno) + "; install util-linux, or set every limit to 0");
  }
  CDE_RETURN_IF_ERROR(CheckLimitsWithinTheServers(sandbox.limits));
  if (geteuid() != 0) return sandbox;  // children run as the server does
  // Once, at start: getpwnam may ask NSS (files, LDAP), which may block.
  std::vector<char> buf(16384);
  passwd entry{};
  passwd* found = nullptr;
  const int rc =
      getpwnam_r(policy.user.c_str(), &entry, buf.data(), buf.size(), &found);
  if (rc != 0 || found == nullptr) {
    return Status::InvalidArgument(
        "actions.exec.user: no user '" + policy.user +
        "' on this machine; the server runs as root, so clients' exec "
        "children run as this user");
  }
  if (found->pw_uid == 0) {
    return Status::InvalidArgument("actions.exec.user: '" + policy.user +
                                   "' is root; name an unprivileged user");
  }
  sandbox.uid = found->pw_uid;
  sandbox.gid = found->pw_gid;
  return sandbox;
}

}  // namespace cde
