#include "api/server.h"

#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "api/http_routes.h"
#include "api/http_server.h"
#include "api/jsonrpc.h"
#include "api/mcp_http.h"
#include "api/mcp_session.h"
#include "api/mcp_util.h"
#include "api/stdio_transport.h"
#include "engine/log.h"
#include "engine/workflow_dir.h"
#include "storage/allocator.h"

namespace cde {
namespace {

using nlohmann::json;

// The engine's share of the configuration.
EngineLimits LimitsOf(const Config& c) {
  EngineLimits l;
  l.breaker_default = c.breaker_default;
  l.breakers = c.breakers;
  l.outbound = c.limits.outbound;
  l.max_concurrency = c.limits.max_concurrency;
  l.definition_bytes = c.limits.definition_bytes;
  l.definition_steps = c.limits.definition_steps;
  l.branches = c.limits.branches;
  l.map_items = c.limits.map_items;
  l.input_bytes = c.limits.input_bytes;
  l.output_bytes = c.limits.output_bytes;
  l.stopped_attempt_wait_ms = c.limits.stopped_attempt_wait_ms;
  l.alert_failures = c.alerts.workflow_failures_threshold;
  l.alert_window_ms = c.alerts.workflow_failures_window_ms;
  return l;
}

// Writes `text` to a temporary file and renames it over `path`, so a reader
// never sees half of it.
Status WriteFileAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return Status::IOError(tmp + ": " + std::strerror(errno));
  const bool written =
      std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !written) {
    std::remove(tmp.c_str());
    return Status::IOError(tmp + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::IOError(path + ": " + std::strerror(errno));
  }
  return Status::OK();
}

// The server's life on its loop: start, serve, reload on SIGHUP, and the
// two-phase stop (graceful on the first SIGTERM/SIGINT, at once on the
// second).
class Server {
 public:
  explicit Server(const ServerOptions& options)
      : options_(options), config_(options.config) {
    uv_loop_init(&loop_);
  }

  Status Run() {
    if (Status s = ConfigureLogging(config_.log); !s.ok()) return s;
    Status s = Serve();
    Log(LogLevel::kInfo, "server", "stopped",
        {.extra = {{"status", s.ToString()}}});
    ShutdownLogging();
    return s;
  }

 private:
  Status Serve() {
    auto tokens = TokensOf(config_);
    if (!tokens.ok()) return tokens.status();
    if (!config_.http.auth_tokens_file.empty()) {
      Log(LogLevel::kWarn, "server",
          "http.auth_tokens_file is deprecated: its tokens have every scope. "
          "Configure auth.tokens with a name, the SHA-256 and the scopes of "
          "each token instead",
          {.extra = {{"file", config_.http.auth_tokens_file}}});
    }
    EngineOptions eo;
    eo.data_dir = config_.data_dir;
    eo.sync = config_.sync;
    eo.timer_window_ms = config_.timer_window_ms;
    eo.wal_spare_bytes = static_cast<uint64_t>(config_.wal_spare_mb) << 20;
    eo.commit_pipeline = config_.commit_pipeline;
    eo.commit_poll = config_.commit_poll;
    eo.limits = LimitsOf(config_);
    eo.action_policy = config_.actions;
    eo.secrets = config_.secrets;
    auto opened = Engine::Open(&loop_, std::move(eo));
    if (!opened.ok()) {
      uv_loop_close(&loop_);
      return opened.status();
    }
    engine_ = std::move(opened).value();

    for (auto [signal, handle] : {std::pair{SIGTERM, &sigterm_},
                                  {SIGINT, &sigint_},
                                  {SIGHUP, &sighup_}}) {
      uv_signal_init(&loop_, handle);
      handle->data = this;
      uv_signal_start(handle, &Server::OnSignal, signal);
    }
    if (config_.http.enabled) StartHttp(TokenTable(std::move(tokens).value()));
    if (!stopping_ && !config_.workflows_dir.empty()) {
      bool loaded = false;
      LoadWorkflows(config_.workflows_dir, [&](Status s) {
        loaded = true;
        if (!s.ok()) {
          result_ = s;
          Stop(0);
        }
      });
      while (!loaded && !stopping_) uv_run(&loop_, UV_RUN_ONCE);
    }
    // stdio opens after the workflows are loaded: a client reads the tool
    // list once, at start, and must find every workflow's tool in it.
    if (!stopping_ && config_.stdio) {
      auto opened_stdio = StdioTransport::Open(
          &loop_, engine_.get(), STDIN_FILENO, STDOUT_FILENO,
          config_.http.max_message_bytes, [this] { Stop(0); },
          McpSessionOptions{.limiter = &inbound_,
                            .workflow_tools = config_.mcp.workflow_tools});
      if (!opened_stdio.ok()) {
        result_ = opened_stdio.status();
        Stop(0);
      } else {
        stdio_ = std::move(opened_stdio).value();
      }
    }
    const std::string server_file = config_.data_dir + "/" + kServerFileName;
    if (!stopping_) {
      ready_ = true;
      WriteServerFile(server_file);
      Log(LogLevel::kInfo, "server", "ready",
          {.extra = {{"data_dir", config_.data_dir},
                     {"allocator", AllocatorName()}}});
    }
    while (!stopped_) uv_run(&loop_, UV_RUN_ONCE);
    engine_.reset();
    for (uv_signal_t* h : {&sigterm_, &sigint_, &sighup_}) {
      uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
    }
    uv_run(&loop_, UV_RUN_DEFAULT);
    http_.reset();
    stdio_.reset();
    mcp_.reset();
    uv_loop_close(&loop_);
    std::remove(server_file.c_str());
    return result_;
  }

  void StartHttp(const TokenTable& tokens) {
    McpHttpOptions mo;
    mo.allowed_origins = config_.http.allowed_origins;
    mo.tokens = tokens;
    mo.limiter = &inbound_;
    mo.workflow_tools = config_.mcp.workflow_tools;
    mo.max_sessions = config_.http.max_sessions;
    mo.max_sessions_per_client = config_.http.max_sessions_per_client;
    mcp_ = std::make_unique<McpHttp>(&loop_, engine_.get(), std::move(mo));
    routes_ = HttpRoutes::Create(engine_.get(), mcp_.get(), &ready_, tokens,
                                 &inbound_, &loop_);
    HttpServerOptions ho;
    ho.host = config_.http.host;
    ho.port = config_.http.port;
    ho.max_body_bytes = config_.http.max_message_bytes;
    auto listening = HttpServer::Listen(
        &loop_, ho, [this](const HttpRequest& r, HttpServer::Respond respond) {
          routes_->Handle(r, std::move(respond));
        });
    if (!listening.ok()) {
      result_ = listening.status();
      return Stop(0);
    }
    http_ = std::move(listening).value();
    // Config checked that the host is an IP address: cannot fail.
    (void)engine_->DenyOwnListener(config_.http.host, http_->port());
    Log(LogLevel::kInfo, "server", "MCP over HTTP listening",
        {.extra = {{"url", "http://" + config_.http.host + ":" +
                               std::to_string(http_->port()) + "/mcp"},
                   {"bearer_tokens", tokens.enabled()}}});
  }

  // Registers the definitions in `dir`; `done` gets the outcome.
  void LoadWorkflows(const std::string& dir, std::function<void(Status)> done) {
    RegisterWorkflowDir(
        *engine_, dir, [dir, done](Result<std::vector<DefinitionRecord>> r) {
          if (!r.ok()) {
            Log(LogLevel::kError, "server",
                "loading workflow definitions failed",
                {.extra = {{"dir", dir}, {"error", r.status().ToString()}}});
            return done(r.status());
          }
          Log(LogLevel::kInfo, "server", "workflow definitions loaded",
              {.extra = {{"dir", dir}, {"count", r->size()}}});
          done(Status::OK());
        });
  }

  // Tools such as cde-admin find the running server (and its HTTP API)
  // here. Written after the engine holds the store's lock, removed on a
  // clean stop; a stale file (after a crash) names a dead pid.
  void WriteServerFile(const std::string& path) {
    json about = {{"pid", static_cast<int64_t>(getpid())},
                  {"started_ms", static_cast<int64_t>(uv_now(&loop_))}};
    if (http_) {
      const std::string& h = config_.http.host;
      const std::string host =
          h.find(':') == std::string::npos ? h : "[" + h + "]";
      about["http"] = "http://" + host + ":" + std::to_string(http_->port());
      about["mcp"] = about["http"].get<std::string>() + "/mcp";
    }
    if (Status w = WriteFileAtomically(path, about.dump() + "\n"); !w.ok()) {
      Log(LogLevel::kWarn, "server", "cannot write the server file",
          {.extra = {{"path", path}, {"error", w.ToString()}}});
    }
  }

  static void OnSignal(uv_signal_t* handle, int signum) {
    auto* self = static_cast<Server*>(handle->data);
    if (signum == SIGHUP) return self->Reload();
    self->Stop(signum);
  }

  // The first stop: readiness goes 503 at once and the engine refuses new
  // work; running attempts get shutdown.timeout_ms. Transports stay open
  // meanwhile, so clients are told "shutting down" rather than refused a
  // connection. A second signal exits at once: every acknowledged change
  // is already durable (acknowledged only after its commit was synced).
  void Stop(int signum) {
    if (stopping_) {
      if (signum == 0) return;
      Log(LogLevel::kWarn, "server", "second signal: exiting at once",
          {.extra = {{"signal", signum}}});
      FlushLogs();
      _exit(128 + signum);
    }
    stopping_ = true;
    ready_ = false;
    Log(LogLevel::kInfo, "server", "shutting down",
        {.extra = {{"signal", signum},
                   {"timeout_ms", config_.shutdown_timeout_ms}}});
    if (!engine_) {
      stopped_ = true;
      return;
    }
    engine_->Shutdown(
        ShutdownOptions{.grace_ms = config_.shutdown_timeout_ms},
        [this](Status s) {
          if (result_.ok()) result_ = s;
          // Sessions end before the engine goes: they hold watches on it.
          if (mcp_) mcp_->Close([] {});
          if (http_) http_->Close([] {});
          if (stdio_) stdio_->Close([] {});
          stopped_ = true;  // the engine is destroyed outside its callback
        });
  }

  // SIGHUP: re-reads the configuration and applies what can change while
  // running. A configuration that does not load changes nothing.
  void Reload() {
    if (stopping_) return;
    if (!options_.reload) {
      Log(LogLevel::kWarn, "server", "SIGHUP: nothing to reload");
      return;
    }
    auto loaded = options_.reload();
    if (!loaded.ok()) {
      Log(LogLevel::kError, "server",
          "configuration reload failed; the running configuration stays",
          {.extra = {{"error", loaded.status().message()}}});
      return;
    }
    Config next = std::move(loaded).value();
    std::vector<std::string> restart = KeysNeedingRestart(config_, next);
    if (!restart.empty()) {
      Log(LogLevel::kWarn, "server",
          "configuration reload: these keys changed but need a restart",
          {.extra = {{"keys", restart}}});
    }
    SetLogLevel(next.log.level);
    config_.log.level = next.log.level;
    config_.shutdown_timeout_ms = next.shutdown_timeout_ms;
    config_.limits = next.limits;
    inbound_.SetPolicies(next.limits.inbound, {});
    config_.breaker_default = next.breaker_default;
    config_.breakers = next.breakers;
    config_.alerts = next.alerts;
    engine_->SetLimits(LimitsOf(config_));
    config_.workflows_dir = next.workflows_dir;
    Log(LogLevel::kInfo, "server", "configuration reloaded",
        {.extra = {{"log_level", LogLevelName(config_.log.level)}}});
    if (!config_.workflows_dir.empty()) {
      // New definitions in the directory are registered; ones already
      // registered are no-ops. A bad file is logged and changes nothing.
      LoadWorkflows(config_.workflows_dir, [](Status) {});
    }
  }

  const ServerOptions& options_;
  Config config_;  // as running: the start's, plus what reloads changed
  // Inbound rate limits of MCP requests and admin POSTs (limits.inbound).
  RateLimiters inbound_{config_.limits.inbound};
  uv_loop_t loop_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<McpHttp> mcp_;
  std::unique_ptr<HttpRoutes> routes_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<StdioTransport> stdio_;
  uv_signal_t sigterm_, sigint_, sighup_;
  bool ready_ = false;
  bool stopping_ = false;
  bool stopped_ = false;
  Status result_;
};

}  // namespace

Status RunServer(const ServerOptions& options) {
  Server server(options);
  return server.Run();
}

}  // namespace cde
