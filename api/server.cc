#include "api/server.h"

#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "api/http_server.h"
#include "api/jsonrpc.h"
#include "api/mcp_http.h"
#include "api/mcp_session.h"
#include "api/mcp_util.h"
#include "api/stdio_transport.h"
#include "engine/log.h"
#include "engine/workflow_dir.h"

namespace cde {
namespace {

using nlohmann::json;

HttpResponse Json(int status, const json& body) {
  return {status, {{"Content-Type", "application/json"}}, body.dump()};
}

// The HTTP routes: /mcp to the MCP transport; health and metrics here.
// Every answer is counted by route and status code.
class Routes {
 public:
  // `inbound` (may be null: unlimited) limits the admin POSTs, on `loop`'s
  // clock.
  Routes(Engine* engine, McpHttp* mcp, const bool* ready,
         std::set<std::string> bearer_tokens, RateLimiters* inbound,
         uv_loop_t* loop)
      : engine_(engine),
        mcp_(mcp),
        ready_(ready),
        bearer_tokens_(std::move(bearer_tokens)),
        inbound_(inbound),
        loop_(loop) {
    Metrics& m = engine->metrics();
    requests_ = m.AddCounter("cde_http_requests_total",
                             "HTTP requests answered, by route and status code",
                             {"route", "code"})
                    .value();
    durations_ = m.AddHistogram("cde_http_request_duration_seconds",
                                "From a request's last byte to its response "
                                "head (for MCP calls: the tool's latency)",
                                {"route"},
                                {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30})
                     .value();
    sessions_ = m.AddGauge("cde_mcp_http_sessions",
                           "Open MCP sessions over Streamable HTTP")
                    .value();
  }

  void Handle(const HttpRequest& req, HttpServer::Respond respond) {
    const std::string route = RouteOf(req.path);
    const auto t0 = std::chrono::steady_clock::now();
    HttpServer::Respond counted = [this, route, t0,
                                   respond](HttpResponse response) {
      requests_->With({route, std::to_string(response.status)}).Increment();
      durations_->With({route}).Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
              .count());
      respond(std::move(response));
      sessions_->With({}).Set(static_cast<double>(mcp_->session_count()));
    };
    Route(req, route, std::move(counted));
  }

 private:
  // A fixed set of label values, whatever paths clients make up.
  static std::string RouteOf(const std::string& path) {
    for (const char* known :
         {"/mcp", "/health", "/health/liveness", "/health/readiness",
          "/metrics", "/admin/backup", "/admin/dlq/purge"}) {
      if (path == known) return known;
    }
    return "other";
  }

  void Route(const HttpRequest& req, const std::string& route,
             HttpServer::Respond respond) {
    if (route == "/mcp") return mcp_->Handle(req, std::move(respond));
    if (route == "/admin/backup") return Backup(req, std::move(respond));
    if (route == "/admin/dlq/purge") return Purge(req, std::move(respond));
    if (req.method != "GET" && req.method != "HEAD") {
      return respond({405, {{"Allow", "GET, HEAD"}}, ""});
    }
    if (route == "/health/liveness") {
      return respond(Json(200, {{"status", "alive"}}));
    }
    if (route == "/health/readiness" || route == "/health") {
      const Status health = engine_->health();
      const bool ok = *ready_ && health.ok();
      json body = {{"status", ok ? "ready" : "not_ready"}};
      if (!health.ok()) body["error"] = health.ToString();
      if (route == "/health") {
        const EngineStats st = engine_->stats();
        body["active_by_state"] = st.active_by_state;
        body["attempts_in_flight"] = st.attempts_in_flight;
        body["commits"] = st.commits;
        body["waiting_at_gates"] = st.waiting_at_gates;
        body["circuit_breakers"] = mcp::BreakersJson(st.breakers);
        body["mcp_http_sessions"] = mcp_->session_count();
      }
      return respond(Json(ok ? 200 : 503, body));
    }
    if (route == "/metrics") {
      sessions_->With({}).Set(static_cast<double>(mcp_->session_count()));
      std::string text = engine_->metrics().Render();
      AppendProcessMetrics(&text);
      return respond(
          {200,
           {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}},
           std::move(text)});
    }
    respond(Json(404, {{"error", "no such endpoint " + req.path}}));
  }

  // Admin endpoints are for operator tools on this host (cde-admin), never
  // browsers: a request with an Origin header is refused, and the bearer
  // token is required when tokens are configured. An error, or "".
  std::string RefuseAdmin(const HttpRequest& req, int* status) const {
    if (!req.header("origin").empty()) {
      *status = 403;
      return "admin endpoints take no browser requests (Origin header)";
    }
    if (bearer_tokens_.empty()) return "";
    const std::string auth = req.header("authorization");
    bool ok = false;
    if (auth.starts_with("Bearer ")) {
      const std::string token = auth.substr(7);
      for (const std::string& t : bearer_tokens_) {
        unsigned char diff = t.size() == token.size() ? 0 : 1;
        for (size_t i = 0; i < t.size(); ++i) {
          diff |= static_cast<unsigned char>(t[i] ^
                                             (i < token.size() ? token[i] : 0));
        }
        ok |= diff == 0;
      }
    }
    if (ok) return "";
    *status = 401;
    return "authentication required: send Authorization: Bearer <token>";
  }

  // Refuses `req` (responds and returns false) unless it is a POST an
  // admin endpoint takes (see RefuseAdmin).
  bool AdminPost(const HttpRequest& req, HttpServer::Respond& respond) {
    if (req.method != "POST") {
      respond({405, {{"Allow", "POST"}}, ""});
      return false;
    }
    int status = 0;
    if (std::string why = RefuseAdmin(req, &status); !why.empty()) {
      HttpResponse r = Json(status, {{"error", why}});
      if (status == 401) {
        r.headers.push_back(
            {"WWW-Authenticate", R"(Bearer realm="cde-orchestrator")"});
      }
      respond(std::move(r));
      return false;
    }
    return !RateLimited(req, respond);
  }

  // Charges an admin POST to the inbound limit: the bucket of its bearer
  // token (shared with that token's MCP sessions), or "admin" when tokens
  // are off. Over the limit: responds 429 and returns true.
  bool RateLimited(const HttpRequest& req, HttpServer::Respond& respond) {
    if (inbound_ == nullptr) return false;
    const std::string key =
        bearer_tokens_.empty()
            ? "admin"
            : "token:" +
                  req.header("authorization").substr(7);  // checked: "Bearer "
    const int64_t wait =
        inbound_->TryTake(key, static_cast<int64_t>(uv_now(loop_)));
    if (wait <= 0) return false;
    HttpResponse r = Json(429, {{"error", "rate limit exceeded: retry in " +
                                              std::to_string(wait) + " ms"},
                                {"retry_after_ms", wait}});
    r.headers.push_back({"Retry-After", std::to_string((wait + 999) / 1000)});
    respond(std::move(r));
    return true;
  }

  // POST /admin/dlq/purge {"saga_id"}: Engine::PurgeDlq. 200 {saga_id,
  // entry}; errors {error, code} with code not_found (404),
  // invalid_argument (400), busy (409), shutting_down (503), internal (500).
  void Purge(const HttpRequest& req, HttpServer::Respond respond) {
    if (!AdminPost(req, respond)) return;
    const json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("saga_id") ||
        !body["saga_id"].is_string()) {
      return respond(Json(400, {{"error", "body: {\"saga_id\": ID} expected"},
                                {"code", "invalid_argument"}}));
    }
    const std::string id = body["saga_id"].get<std::string>();
    engine_->PurgeDlq(id, [id, respond](Result<DlqRecord> r) {
      if (r.ok()) {
        return respond(Json(200, {{"saga_id", id},
                                  {"entry",
                                   {{"workflow", r->workflow},
                                    {"version", r->version},
                                    {"reason", r->reason},
                                    {"step", r->step},
                                    {"last_error", r->last_error},
                                    {"attempts", r->attempts},
                                    {"parked_ms", r->parked_ms},
                                    {"replay_count", r->replay_count}}}}));
      }
      const Status& s = r.status();
      int status = 500;
      std::string code = "internal";
      switch (s.code()) {
        case Status::Code::kNotFound:
          status = 404, code = "not_found";
          break;
        case Status::Code::kInvalidArgument:
          status = 400, code = "invalid_argument";
          break;
        case Status::Code::kBusy:
          status = 409, code = "busy";
          break;
        case Status::Code::kShutdownInProgress:
          status = 503, code = "shutting_down";
          break;
        default:
          break;
      }
      respond(Json(status,
                   {{"error", s.IsNotFound() ? "no saga " + id : s.message()},
                    {"code", code}}));
    });
  }

  // POST /admin/backup {"dir": absolute path of a new directory}: a RocksDB
  // checkpoint of the live store, taken off the loop (Engine::ReadStore).
  void Backup(const HttpRequest& req, HttpServer::Respond respond) {
    if (!AdminPost(req, respond)) return;
    const json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("dir") ||
        !body["dir"].is_string()) {
      return respond(Json(400, {{"error", "body: {\"dir\": PATH} expected"}}));
    }
    const std::string dir = body["dir"].get<std::string>();
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::path(dir).is_absolute()) {
      return respond(Json(400, {{"error", "dir: must be an absolute path"}}));
    }
    if (fs::exists(dir, ec)) {
      return respond(Json(
          409, {{"error", dir + " already exists; the backup goes into a new "
                                "directory"}}));
    }
    if (!*ready_) {
      return respond(Json(503, {{"error", "the server is not ready"}}));
    }
    auto result = std::make_shared<Status>();
    engine_->ReadStore(
        [result, dir](Store& store) { *result = store.Checkpoint(dir); },
        [result, dir, respond] {
          if (!result->ok()) {
            return respond(Json(500, {{"error", result->ToString()}}));
          }
          respond(Json(200, {{"dir", dir}}));
        });
  }

  Engine* engine_;
  McpHttp* mcp_;
  const bool* ready_;
  std::set<std::string> bearer_tokens_;
  RateLimiters* inbound_;
  uv_loop_t* loop_;
  CounterFamily* requests_;
  HistogramFamily* durations_;
  GaugeFamily* sessions_;
};

// The engine's share of the configuration.
EngineLimits LimitsOf(const Config& c) {
  EngineLimits l;
  l.breaker_default = c.breaker_default;
  l.breakers = c.breakers;
  l.outbound = c.limits.outbound;
  l.max_concurrency = c.limits.max_concurrency;
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
    std::set<std::string> tokens;
    if (!config_.http.auth_tokens_file.empty()) {
      auto read = ReadTokenFile(config_.http.auth_tokens_file);
      if (!read.ok()) return read.status();
      tokens = std::move(read).value();
    }
    EngineOptions eo;
    eo.data_dir = config_.data_dir;
    eo.sync = config_.sync;
    eo.timer_window_ms = config_.timer_window_ms;
    eo.limits = LimitsOf(config_);
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
    if (config_.http.enabled) StartHttp(tokens);
    if (!stopping_ && config_.stdio) {
      auto opened_stdio = StdioTransport::Open(
          &loop_, engine_.get(), STDIN_FILENO, STDOUT_FILENO,
          config_.http.max_message_bytes, [this] { Stop(0); }, &inbound_);
      if (!opened_stdio.ok()) {
        result_ = opened_stdio.status();
        Stop(0);
      } else {
        stdio_ = std::move(opened_stdio).value();
      }
    }
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
    const std::string server_file = config_.data_dir + "/" + kServerFileName;
    if (!stopping_) {
      ready_ = true;
      WriteServerFile(server_file);
      Log(LogLevel::kInfo, "server", "ready",
          {.extra = {{"data_dir", config_.data_dir}}});
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

  void StartHttp(const std::set<std::string>& tokens) {
    McpHttpOptions mo;
    mo.allowed_origins = config_.http.allowed_origins;
    mo.bearer_tokens = tokens;
    mo.limiter = &inbound_;
    mcp_ = std::make_unique<McpHttp>(&loop_, engine_.get(), std::move(mo));
    routes_ = std::make_unique<Routes>(engine_.get(), mcp_.get(), &ready_,
                                       tokens, &inbound_, &loop_);
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
    Log(LogLevel::kInfo, "server", "MCP over HTTP listening",
        {.extra = {{"url", "http://" + config_.http.host + ":" +
                               std::to_string(http_->port()) + "/mcp"},
                   {"bearer_tokens", !tokens.empty()}}});
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
  std::unique_ptr<Routes> routes_;
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
