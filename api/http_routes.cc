#include "api/http_routes.h"

#include <chrono>
#include <filesystem>

#include "api/mcp_util.h"
#include "engine/dlq_entry.h"
#include "engine/log.h"
#include "storage/json_depth.h"

namespace cde {
namespace {

using nlohmann::json;

HttpResponse Json(int status, const json& body) {
  // Paths and other request bytes may be invalid UTF-8: replaced, not thrown.
  return {status,
          {{"Content-Type", "application/json"}},
          body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

// The HTTP routes: /mcp to the MCP transport; health and metrics here.
// Every answer is counted by route and status code.
class Routes final : public HttpRoutes {
 public:
  // `inbound` (may be null: unlimited) limits the admin POSTs, on `loop`'s
  // clock.
  Routes(Engine* engine, McpHttp* mcp, const bool* ready, TokenTable tokens,
         RateLimiters* inbound, uv_loop_t* loop)
      : engine_(engine),
        mcp_(mcp),
        ready_(ready),
        tokens_(std::move(tokens)),
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

  void Handle(const HttpRequest& req, HttpServer::Respond respond) override {
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
      if (!Authorize(req, Scope::kRead, respond)) return;
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

  // The caller of `req` if it holds `scope`; else responds 401 (no valid
  // token) or 403 (a token without the scope) and returns nullopt.
  std::optional<Principal> Authorize(const HttpRequest& req, Scope scope,
                                     HttpServer::Respond& respond) const {
    auto principal = tokens_.Authenticate(req.header("authorization"));
    if (!principal) {
      HttpResponse r =
          Json(401, {{"error",
                      "authentication required: send Authorization: Bearer "
                      "<token>"},
                     {"code", "unauthorized"}});
      r.headers.push_back(
          {"WWW-Authenticate", R"(Bearer realm="cde-orchestrator")"});
      respond(std::move(r));
      return std::nullopt;
    }
    if (!principal->scopes.Has(scope)) {
      respond(Json(
          403, {{"error", "token '" + principal->name + "' lacks the scope '" +
                              std::string(ScopeName(scope)) + "' that " +
                              req.path + " needs"},
                {"code", "forbidden"},
                {"scope", ScopeName(scope)}}));
      return std::nullopt;
    }
    return principal;
  }

  // Admin endpoints are for operator tools on this host (cde-admin), never
  // browsers: a request with an Origin header is refused, and the `admin`
  // scope is required. Refuses `req` (responds and returns nullopt) unless
  // it is a POST an admin endpoint takes; else returns its caller.
  std::optional<Principal> AdminPost(const HttpRequest& req,
                                     HttpServer::Respond& respond) {
    if (req.method != "POST") {
      respond({405, {{"Allow", "POST"}}, ""});
      return std::nullopt;
    }
    if (!req.header("origin").empty()) {
      respond(Json(403, {{"error",
                          "admin endpoints take no browser requests "
                          "(Origin header)"}}));
      return std::nullopt;
    }
    auto principal = Authorize(req, Scope::kAdmin, respond);
    if (!principal) return std::nullopt;
    Log(LogLevel::kInfo, "audit", "call",
        {.extra = {{"caller", principal->name}, {"endpoint", req.path}}});
    if (RateLimited(*principal, respond)) return std::nullopt;
    return principal;
  }

  // Charges an admin POST to the inbound limit: the bucket of its token
  // (shared with that token's MCP sessions), or "admin" when tokens are
  // off. Over the limit: responds 429 and returns true.
  bool RateLimited(const Principal& caller, HttpServer::Respond& respond) {
    if (inbound_ == nullptr) return false;
    const std::string key =
        tokens_.enabled() ? "token:" + caller.name : "admin";
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
    const auto caller = AdminPost(req, respond);
    if (!caller) return;
    const json body = ParseBoundedJson(req.body);
    if (!body.is_object() || !body.contains("saga_id") ||
        !body["saga_id"].is_string()) {
      return respond(Json(400, {{"error", "body: {\"saga_id\": ID} expected"},
                                {"code", "invalid_argument"}}));
    }
    const std::string id = body["saga_id"].get<std::string>();
    engine_->PurgeDlq(id, caller->name, [id, respond](Result<DlqRecord> r) {
      if (r.ok()) {
        return respond(
            Json(200, {{"saga_id", id}, {"entry", DlqEntryJson(*r)}}));
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
    const json body = ParseBoundedJson(req.body);
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
  const TokenTable tokens_;
  RateLimiters* inbound_;
  uv_loop_t* loop_;
  CounterFamily* requests_;
  HistogramFamily* durations_;
  GaugeFamily* sessions_;
};

}  // namespace

std::unique_ptr<HttpRoutes> HttpRoutes::Create(Engine* engine, McpHttp* mcp,
                                               const bool* ready,
                                               TokenTable tokens,
                                               RateLimiters* inbound,
                                               uv_loop_t* loop) {
  return std::make_unique<Routes>(engine, mcp, ready, std::move(tokens),
                                  inbound, loop);
}

}  // namespace cde
