#include "api/server.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <uv.h>

#include <map>
#include <random>

#include "api/http_server.h"
#include "api/jsonrpc.h"
#include "api/mcp_session.h"
#include "api/stdio_transport.h"
#include "engine/workflow_dir.h"

namespace cde {
namespace {

using nlohmann::json;

HttpResponse Json(int status, const json& body) {
  return {status, {{"Content-Type", "application/json"}}, body.dump()};
}

// Streamable HTTP (MCP 2025-03-26 and later), answering each POSTed request
// with one JSON response. Sessions are keyed by the Mcp-Session-Id header
// the server hands out with the initialize response.
class HttpMcp {
 public:
  HttpMcp(Engine* engine, uv_loop_t* loop, const bool* ready)
      : engine_(engine), loop_(loop), ready_(ready) {}

  void Handle(const HttpRequest& req, HttpServer::Respond respond) {
    if (req.path == "/health/liveness") {
      return respond(Json(200, {{"status", "alive"}}));
    }
    if (req.path == "/health/readiness" || req.path == "/health") {
      const Status health = engine_->health();
      const bool ok = *ready_ && health.ok();
      json body = {{"status", ok ? "ready" : "not_ready"}};
      if (!health.ok()) body["error"] = health.ToString();
      if (req.path == "/health") {
        const EngineStats st = engine_->stats();
        body["active_by_state"] = st.active_by_state;
        body["attempts_in_flight"] = st.attempts_in_flight;
        body["commits"] = st.commits;
      }
      return respond(Json(ok ? 200 : 503, body));
    }
    if (req.path != "/mcp") {
      return respond(Json(404, {{"error", "no such endpoint " + req.path}}));
    }
    if (req.method == "DELETE") {
      sessions_.erase(req.header("mcp-session-id"));
      return respond({204, {}, ""});
    }
    if (req.method != "POST") {
      // No server-initiated stream yet: clients then fall back to POST only.
      return respond({405, {{"Allow", "POST, DELETE"}}, ""});
    }
    jsonrpc::Message msg = jsonrpc::Decode(req.body);
    if (auto* err = std::get_if<jsonrpc::DecodeError>(&msg)) {
      return respond(Json(400, json::parse(jsonrpc::EncodeError(
                                   err->id, err->code, err->message))));
    }
    const bool is_request = std::holds_alternative<jsonrpc::Request>(msg);
    const bool is_initialize =
        is_request && std::get<jsonrpc::Request>(msg).method == "initialize";
    std::string sid = req.header("mcp-session-id");
    if (is_initialize) {
      sid = NewSessionId();
      sessions_[sid] = McpSession::Create(
          engine_, loop_, [this, sid](std::string f, const json&) {
            Deliver(sid, std::move(f));
          });
    } else if (sid.empty() || sessions_.count(sid) == 0) {
      const int status = sid.empty() ? 400 : 404;
      const std::string why = sid.empty() ? "missing Mcp-Session-Id header"
                                          : "unknown or expired session";
      return respond(
          Json(status, json::parse(jsonrpc::EncodeError(
                           nullptr, jsonrpc::kInvalidRequest, why))));
    }
    auto session = sessions_[sid];
    if (!is_request) {
      session->OnFrame(req.body);
      return respond({202, {}, ""});
    }
    const std::string key =
        sid + "\n" + std::get<jsonrpc::Request>(msg).id.dump();
    waiting_[key] = {std::move(respond), is_initialize ? sid : ""};
    session->OnFrame(req.body);
  }

 private:
  struct Waiting {
    HttpServer::Respond respond;
    std::string new_session;  // set on initialize: returned as a header
  };

  // A frame from session `sid`: the reply to one of its waiting POSTs.
  void Deliver(const std::string& sid, std::string frame) {
    json msg = json::parse(frame, nullptr, false);
    if (msg.is_discarded() || !msg.contains("id")) return;  // notifications
    auto it = waiting_.find(sid + "\n" + msg["id"].dump());
    if (it == waiting_.end()) return;
    Waiting w = std::move(it->second);
    waiting_.erase(it);
    HttpResponse r{
        200, {{"Content-Type", "application/json"}}, std::move(frame)};
    if (!w.new_session.empty())
      r.headers.push_back({"Mcp-Session-Id", w.new_session});
    w.respond(std::move(r));
  }

  std::string NewSessionId() {
    static const char kHex[] = "0123456789abcdef";
    std::string id;
    uint64_t a = rng_(), b = rng_();
    for (int i = 0; i < 16; ++i) id.push_back(kHex[(a >> (4 * i)) & 15]);
    for (int i = 0; i < 16; ++i) id.push_back(kHex[(b >> (4 * i)) & 15]);
    return id;
  }

  Engine* engine_;
  uv_loop_t* loop_;
  const bool* ready_;
  std::map<std::string, std::shared_ptr<McpSession>> sessions_;
  std::map<std::string, Waiting> waiting_;
  std::mt19937_64 rng_{std::random_device{}()};
};

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
  std::unique_ptr<HttpMcp> mcp;
  uv_signal_t sigterm, sigint;
  std::function<void()> stop = [&] {
    if (stopping) return;
    stopping = true;
    ready = false;
    log->info("shutting down");
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
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
    mcp = std::make_unique<HttpMcp>(engine.get(), &loop, &ready);
    HttpServerOptions ho;
    ho.host = options.host;
    ho.port = options.port;
    ho.max_body_bytes = options.max_message_bytes;
    auto listening = HttpServer::Listen(
        &loop, ho, [&mcp](const HttpRequest& r, HttpServer::Respond respond) {
          mcp->Handle(r, std::move(respond));
        });
    if (!listening.ok()) {
      result = listening.status();
      stop();
    } else {
      http = std::move(listening).value();
      log->info("MCP over HTTP at http://{}:{}/mcp", options.host,
                http->port());
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
  if (!stopping) {
    ready = true;
    log->info("ready (data dir {})", options.data_dir);
  }
  while (!stopping) uv_run(&loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  http.reset();
  stdio.reset();
  uv_loop_close(&loop);
  return result;
}

}  // namespace cde
