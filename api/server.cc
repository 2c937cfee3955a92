#include "api/server.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
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
#include "api/stdio_transport.h"
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
  Routes(Engine* engine, McpHttp* mcp, const bool* ready,
         std::set<std::string> bearer_tokens)
      : engine_(engine),
        mcp_(mcp),
        ready_(ready),
        bearer_tokens_(std::move(bearer_tokens)) {
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
  CounterFamily* requests_;
  HistogramFamily* durations_;
  GaugeFamily* sessions_;
};

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

}  // namespace

Status RunServer(const ServerOptions& options) {
  // Logs go to stderr: with --stdio, stdout carries protocol frames only.
  auto log = spdlog::stderr_logger_st("cde");
  log->set_pattern(
      R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","msg":"%v"})");

  uv_loop_t loop;
  uv_loop_init(&loop);
  EngineOptions eo;
  eo.data_dir = options.data_dir;
  eo.sync = options.sync;
  auto opened = Engine::Open(&loop, std::move(eo));
  if (!opened.ok()) {
    uv_loop_close(&loop);
    return opened.status();
  }
  std::unique_ptr<Engine> engine = std::move(opened).value();
  bool ready = false;
  bool stopping = false;
  Status result;

  std::unique_ptr<HttpServer> http;
  std::unique_ptr<StdioTransport> stdio;
  std::unique_ptr<McpHttp> mcp;
  std::unique_ptr<Routes> routes;
  uv_signal_t sigterm, sigint;
  std::function<void()> stop = [&] {
    if (stopping) return;
    stopping = true;
    ready = false;
    log->info("shutting down");
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
    // Sessions end before the engine: they hold watches on it.
    if (mcp) mcp->Close([] {});
    if (http) http->Close([] {});
    if (stdio) stdio->Close([] {});
    result = ShutdownAndWait(&loop, std::move(engine));
  };

  uv_signal_init(&loop, &sigterm);
  uv_signal_init(&loop, &sigint);
  sigterm.data = sigint.data = &stop;
  auto on_signal = [](uv_signal_t* s, int) {
    (*static_cast<std::function<void()>*>(s->data))();
  };
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_start(&sigint, on_signal, SIGINT);

  if (options.http) {
    McpHttpOptions mo;
    mo.allowed_origins = options.allowed_origins;
    mo.bearer_tokens = options.bearer_tokens;
    mcp = std::make_unique<McpHttp>(&loop, engine.get(), std::move(mo));
    routes = std::make_unique<Routes>(engine.get(), mcp.get(), &ready,
                                      options.bearer_tokens);
    HttpServerOptions ho;
    ho.host = options.host;
    ho.port = options.port;
    ho.max_body_bytes = options.max_message_bytes;
    auto listening = HttpServer::Listen(
        &loop, ho,
        [&routes](const HttpRequest& r, HttpServer::Respond respond) {
          routes->Handle(r, std::move(respond));
        });
    if (!listening.ok()) {
      result = listening.status();
      stop();
    } else {
      http = std::move(listening).value();
      log->info(
          "MCP over HTTP at http://{}:{}/mcp{}", options.host, http->port(),
          options.bearer_tokens.empty() ? "" : " (bearer tokens required)");
    }
  }
  if (!stopping && options.stdio) {
    auto opened_stdio =
        StdioTransport::Open(&loop, engine.get(), STDIN_FILENO, STDOUT_FILENO,
                             options.max_message_bytes, [&] { stop(); });
    if (!opened_stdio.ok()) {
      result = opened_stdio.status();
      stop();
    } else {
      stdio = std::move(opened_stdio).value();
    }
  }
  if (!stopping && !options.workflows_dir.empty()) {
    bool loaded = false;
    RegisterWorkflowDir(*engine, options.workflows_dir,
                        [&](Result<std::vector<DefinitionRecord>> r) {
                          loaded = true;
                          if (!r.ok()) {
                            result = r.status();
                            return stop();
                          }
                          log->info("loaded {} workflow definitions from {}",
                                    r->size(), options.workflows_dir);
                        });
    while (!loaded && !stopping) uv_run(&loop, UV_RUN_ONCE);
  }
  const std::string server_file = options.data_dir + "/" + kServerFileName;
  if (!stopping) {
    ready = true;
    // Tools such as cde-admin find the running server (and its HTTP API)
    // here. Written after the engine holds the store's lock, removed on a
    // clean stop; a stale file (after a crash) names a dead pid.
    json about = {{"pid", static_cast<int64_t>(getpid())},
                  {"started_ms", static_cast<int64_t>(uv_now(&loop))}};
    if (http) {
      const std::string host = options.host.find(':') == std::string::npos
                                   ? options.host
                                   : "[" + options.host + "]";
      about["http"] = "http://" + host + ":" + std::to_string(http->port());
      about["mcp"] = about["http"].get<std::string>() + "/mcp";
    }
    if (Status w = WriteFileAtomically(server_file, about.dump() + "\n");
        !w.ok()) {
      log->warn("cannot write {}: {}", server_file, w.ToString());
    }
    log->info("ready (data dir {})", options.data_dir);
  }
  while (!stopping) uv_run(&loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  http.reset();
  stdio.reset();
  uv_loop_close(&loop);
  std::remove(server_file.c_str());
  return result;
}

}  // namespace cde
