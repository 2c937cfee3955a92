#include "api/mcp_http.h"

#include <algorithm>
#include <cstdint>
#include <random>

#include "api/jsonrpc.h"

namespace cde {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxSweepIntervalMs = 60 * 1000;

HttpResponse JsonRpcErrorResponse(int status, int code,
                                  const std::string& message) {
  return {status,
          {{"Content-Type", "application/json"}},
          jsonrpc::EncodeError(nullptr, code, message)};
}

// One SSE event carrying one JSON-RPC message. Frames are single-line JSON,
// so one data line is enough.
std::string SseEvent(const std::string& frame) {
  return "event: message\ndata: " + frame + "\n\n";
}

bool Accepts(const HttpRequest& request, std::string_view type) {
  const std::string accept = request.header("accept");
  return accept.empty() || accept.find(type) != std::string::npos ||
         accept.find("*/*") != std::string::npos;
}

uint64_t NowMs(uv_loop_t* loop) { return uv_now(loop); }

}  // namespace

// A POSTed request waiting for its response.
struct McpHttp::Pending {
  HttpServer::Respond respond;
  std::shared_ptr<HttpStream> stream;  // set once it turned into SSE
  bool initialize = false;
};

struct McpHttp::Session {
  std::string id;
  std::shared_ptr<McpSession> mcp;
  std::map<std::string, Pending> pending;  // by the request id's JSON
  std::vector<std::shared_ptr<HttpStream>> get_streams;
  std::deque<std::string> buffered;  // for the GET stream, while none open
  uint64_t last_used_ms = 0;
  uint64_t last_use = 0;  // McpHttp::uses_ then: orders uses within a ms
  std::string owner;      // the name of the token that initialized it
  std::string client;     // whose quota it counts against (ClientOf)
};

McpHttp::McpHttp(uv_loop_t* loop, Engine* engine, McpHttpOptions options)
    : loop_(loop), engine_(engine), options_(std::move(options)) {
  uv_timer_init(loop_, &sweep_timer_);
  sweep_timer_.data = this;
  const uint64_t every = std::max<uint64_t>(
      1, std::min(kMaxSweepIntervalMs, options_.session_idle_timeout_ms / 2));
  uv_timer_start(&sweep_timer_, &OnSweep, every, every);
}

McpHttp::~McpHttp() = default;

void McpHttp::Close(std::function<void()> on_closed) {
  closing_ = true;
  while (!sessions_.empty()) DropSession(sessions_.begin()->first);
  on_closed_ = std::move(on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&sweep_timer_), [](uv_handle_t* h) {
    auto* self = static_cast<McpHttp*>(h->data);
    if (self->on_closed_) self->on_closed_();
  });
}

bool McpHttp::OriginAllowed(const std::string& origin) const {
  for (const std::string& allowed : options_.allowed_origins) {
    if (allowed == "*" || allowed == origin) return true;
  }
  if (!options_.allow_localhost) return false;
  std::string_view rest = origin;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else {
    return false;
  }
  for (std::string_view host : {"localhost", "127.0.0.1", "[::1]"}) {
    if (!rest.starts_with(host)) continue;
    std::string_view port = rest.substr(host.size());
    if (port.empty()) return true;
    if (port[0] != ':' || port.size() < 2 || port.size() > 6) return false;
    for (char c : port.substr(1)) {
      if (c < '0' || c > '9') return false;
    }
    return true;
  }
  return false;
}

std::optional<Principal> McpHttp::Admit(
    const HttpRequest& request, const HttpServer::Respond& respond) const {
  const std::string origin = request.header("origin");
  if (!origin.empty() && !OriginAllowed(origin)) {
    respond(JsonRpcErrorResponse(
        403, jsonrpc::kInvalidRequest,
        "origin '" + origin +
            "' is not allowed (serve --allow-origin adds origins)"));
    return std::nullopt;
  }
  const std::string auth = request.header("authorization");
  std::optional<Principal> caller = options_.tokens.Authenticate(auth);
  if (!caller) {
    const bool has_bearer = auth.starts_with("Bearer ");
    HttpResponse r = JsonRpcErrorResponse(
        401, jsonrpc::kInvalidRequest,
        has_bearer ? "the bearer token is not valid"
                   : "authentication required: send Authorization: Bearer "
                     "<token>");
    r.headers.push_back(
        {"WWW-Authenticate",
         has_bearer
             ? R"(Bearer realm="cde-orchestrator", error="invalid_token")"
             : R"(Bearer realm="cde-orchestrator")"});
    respond(std::move(r));
    return std::nullopt;
  }
  const std::string version = request.header("mcp-protocol-version");
  if (!version.empty()) {
    bool known = false;
    std::string list;
    for (const char* v : kProtocolVersions) {
      known |= version == v;
      list += list.empty() ? v : std::string(", ") + v;
    }
    if (!known) {
      respond(JsonRpcErrorResponse(400, jsonrpc::kInvalidRequest,
                                   "unsupported MCP-Protocol-Version '" +
                                       version + "' (supported: " + list +
                                       ")"));
      return std::nullopt;
    }
  }
  return caller;
}

void McpHttp::Handle(const HttpRequest& request, HttpServer::Respond respond) {
  if (closing_) {
    return respond(JsonRpcErrorResponse(503, jsonrpc::kInternalError,
                                        "the server is shutting down"));
  }
  const std::optional<Principal> caller = Admit(request, respond);
  if (!caller) return;
  if (request.method == "POST") {
    return Post(request, *caller, std::move(respond));
  }
  if (request.method != "GET" && request.method != "DELETE") {
    return respond({405, {{"Allow", "GET, POST, DELETE"}}, ""});
  }
  const std::string sid = request.header("mcp-session-id");
  auto it = sessions_.find(sid);
  // Another token's session is as good as unknown to this caller.
  if (it == sessions_.end() || it->second->owner != caller->name) {
    return respond(JsonRpcErrorResponse(
        sid.empty() ? 400 : 404, jsonrpc::kInvalidRequest,
        sid.empty() ? "missing Mcp-Session-Id header"
                    : "unknown or expired session: initialize again"));
  }
  Touch(*it->second);
  if (request.method == "DELETE") {
    DropSession(sid);
    return respond({204, {}, ""});
  }
  if (!Accepts(request, "text/event-stream")) {
    return respond(JsonRpcErrorResponse(
        406, jsonrpc::kInvalidRequest,
        "GET /mcp opens an SSE stream: Accept must include "
        "text/event-stream"));
  }
  Get(*it->second, std::move(respond));
}

void McpHttp::Post(const HttpRequest& request, const Principal& caller,
                   HttpServer::Respond respond) {
  if (!Accepts(request, "application/json") &&
      !Accepts(request, "text/event-stream")) {
    return respond(JsonRpcErrorResponse(
        406, jsonrpc::kInvalidRequest,
        "Accept must include application/json and text/event-stream"));
  }
  jsonrpc::Message msg = jsonrpc::Decode(request.body);
  if (auto* err = std::get_if<jsonrpc::DecodeError>(&msg)) {
    return respond({400,
                    {{"Content-Type", "application/json"}},
                    jsonrpc::EncodeError(err->id, err->code, err->message)});
  }
  const auto* call = std::get_if<jsonrpc::Request>(&msg);
  const bool initialize = call != nullptr && call->method == "initialize";
  std::string sid = request.header("mcp-session-id");
  if (initialize) {
    const std::string client = ClientOf(request, caller);
    if (std::string full = MakeRoom(client); !full.empty()) {
      return respond(JsonRpcErrorResponse(503, jsonrpc::kInternalError, full));
    }
    sid = NewSessionId();
    auto session = std::make_unique<Session>();
    session->id = sid;
    session->owner = caller.name;
    session->client = client;
    ++sessions_of_[client];
    session->mcp = McpSession::Create(
        engine_, loop_,
        [this, sid](McpSession::OutFrame frame) {
          Deliver(sid, std::move(frame));
        },
        McpSessionOptions{.limiter = options_.limiter,
                          .rate_key = "session:" + sid,
                          .workflow_tools = options_.workflow_tools});
    sessions_[sid] = std::move(session);
  } else if (auto it = sessions_.find(sid);
             it == sessions_.end() || it->second->owner != caller.name) {
    return respond(JsonRpcErrorResponse(
        sid.empty() ? 400 : 404, jsonrpc::kInvalidRequest,
        sid.empty() ? "missing Mcp-Session-Id header (initialize first)"
                    : "unknown or expired session: initialize again"));
  }
  Session& session = *sessions_[sid];
  Touch(session);
  // Hold the session: a frame may end it (it cannot today, but cheaply safe).
  std::shared_ptr<McpSession> mcp = session.mcp;
  const McpMessageContext context = ContextOf(request, caller, sid);
  if (call == nullptr) {
    mcp->OnMessage(std::move(msg), context);
    return respond({202, {}, ""});
  }
  session.pending[call->id.dump()] = {std::move(respond), nullptr, initialize};
  mcp->OnMessage(std::move(msg), context);
}

McpMessageContext McpHttp::ContextOf(const HttpRequest& request,
                                     const Principal& caller,
                                     const std::string& sid) const {
  McpMessageContext c;
  c.caller = caller;
  // Only known tokens get a bucket: without configured tokens a client
  // could name a new one per request.
  c.rate_key =
      options_.tokens.enabled() ? "token:" + caller.name : "session:" + sid;
  c.correlation_id = request.header("x-correlation-id");
  c.traceparent = request.header("traceparent");
  return c;
}

void McpHttp::Get(Session& session, HttpServer::Respond respond) {
  std::string backlog;
  for (const std::string& frame : session.buffered) backlog += SseEvent(frame);
  session.buffered.clear();
  HttpResponse r{
      200,
      {{"Content-Type", "text/event-stream"}, {"Cache-Control", "no-cache"}},
      // The head must go out now even with nothing to say: an
      // SSE comment line is a valid empty start.
      backlog.empty() ? ": stream open\n\n" : std::move(backlog)};
  const std::string sid = session.id;
  r.on_stream = [this, sid](std::shared_ptr<HttpStream> stream) {
    auto it = sessions_.find(sid);
    if (it == sessions_.end()) return stream->End();
    it->second->get_streams.push_back(stream);
    HttpStream* raw = stream.get();
    stream->SetOnClosed([this, sid, raw] {
      auto it = sessions_.find(sid);
      if (it == sessions_.end()) return;
      auto& streams = it->second->get_streams;
      std::erase_if(streams, [raw](const auto& s) { return s.get() == raw; });
      Touch(*it->second);
    });
  };
  respond(std::move(r));
}

void McpHttp::Deliver(const std::string& sid, McpSession::OutFrame out) {
  auto it = sessions_.find(sid);
  if (it == sessions_.end()) return;
  Session& session = *it->second;
  Touch(session);
  const bool notification = !out.is_response;
  const json& related = out.related;
  std::string& frame = out.text;
  if (!related.is_null()) {
    const std::string key = related.dump();
    auto p = session.pending.find(key);
    if (p != session.pending.end() && !notification) {
      Pending done = std::move(p->second);
      session.pending.erase(p);
      if (done.stream) {
        done.stream->Write(SseEvent(frame));
        done.stream->End();
        return;
      }
      HttpResponse r{
          200, {{"Content-Type", "application/json"}}, std::move(frame)};
      if (done.initialize) r.headers.push_back({"Mcp-Session-Id", sid});
      return done.respond(std::move(r));
    }
    if (p != session.pending.end()) {
      // A notification about a call still in flight: it goes on that call's
      // own response, which turns into an SSE stream at the first one.
      if (p->second.stream) {
        p->second.stream->Write(SseEvent(frame));
        return;
      }
      HttpResponse r{200,
                     {{"Content-Type", "text/event-stream"},
                      {"Cache-Control", "no-cache"}},
                     SseEvent(frame)};
      if (p->second.initialize) r.headers.push_back({"Mcp-Session-Id", sid});
      r.on_stream = [this, sid, key](std::shared_ptr<HttpStream> stream) {
        auto s = sessions_.find(sid);
        if (s == sessions_.end()) return stream->End();
        auto p = s->second->pending.find(key);
        if (p == s->second->pending.end()) return stream->End();
        p->second.stream = stream;
        // The client left: its answer has nowhere to go.
        stream->SetOnClosed([this, sid, key] {
          if (auto s = sessions_.find(sid); s != sessions_.end()) {
            s->second->pending.erase(key);
          }
        });
      };
      p->second.respond(std::move(r));
      return;
    }
    if (!notification) return;  // the answer to a POST that went away
  }
  SendOnGetStream(session, frame);
}

void McpHttp::SendOnGetStream(Session& session, const std::string& frame) {
  // The newest stream first: an older one may belong to a client that
  // reconnected without closing it.
  while (!session.get_streams.empty()) {
    auto& stream = session.get_streams.back();
    if (stream->Write(SseEvent(frame))) return;
    session.get_streams.pop_back();
  }
  session.buffered.push_back(frame);
  while (session.buffered.size() > options_.max_buffered_frames) {
    session.buffered.pop_front();
  }
}

void McpHttp::Touch(Session& session) {
  session.last_used_ms = NowMs(loop_);
  session.last_use = ++uses_;
}

std::string McpHttp::ClientOf(const HttpRequest& request,
                              const Principal& caller) const {
  return options_.tokens.enabled() ? "token:" + caller.name
                                   : "peer:" + request.peer;
}

std::string McpHttp::IdleLongest(const std::string* client) const {
  std::string oldest;
  uint64_t oldest_use = UINT64_MAX;
  for (const auto& [sid, s] : sessions_) {
    if (client != nullptr && s->client != *client) continue;
    const bool streaming =
        std::any_of(s->get_streams.begin(), s->get_streams.end(),
                    [](const auto& stream) { return stream->open(); });
    if (!s->pending.empty() || streaming || s->mcp->busy()) continue;
    if (s->last_use < oldest_use) {
      oldest = sid;
      oldest_use = s->last_use;
    }
  }
  return oldest;
}

std::string McpHttp::MakeRoom(const std::string& client) {
  const auto owned = sessions_of_.find(client);
  if (owned != sessions_of_.end() &&
      owned->second >= options_.max_sessions_per_client) {
    const std::string victim = IdleLongest(&client);
    if (victim.empty()) {
      const std::string who = client.starts_with("token:")
                                  ? "token '" + client.substr(6) + "'"
                                  : "address " + client.substr(5);
      return "too many sessions for " + who + " (" +
             std::to_string(options_.max_sessions_per_client) +
             "), none of them idle; end unused ones with DELETE /mcp";
    }
    DropSession(victim);
  }
  if (sessions_.size() >= options_.max_sessions) {
    const std::string victim = IdleLongest(nullptr);
    if (victim.empty()) {
      return "too many sessions (" + std::to_string(options_.max_sessions) +
             "), none of them idle; end unused ones with DELETE /mcp";
    }
    DropSession(victim);
  }
  return "";
}

void McpHttp::DropSession(const std::string& sid) {
  auto it = sessions_.find(sid);
  if (it == sessions_.end()) return;
  std::unique_ptr<Session> session = std::move(it->second);
  sessions_.erase(it);
  if (auto n = sessions_of_.find(session->client);
      n != sessions_of_.end() && --n->second == 0) {
    sessions_of_.erase(n);
  }
  session->mcp->Close();
  for (auto& stream : session->get_streams) stream->End();
  for (auto& [key, pending] : session->pending) {
    const std::string frame = jsonrpc::EncodeError(
        json::parse(key), jsonrpc::kInternalError, "the session ended");
    if (pending.stream) {
      pending.stream->Write(SseEvent(frame));
      pending.stream->End();
    } else {
      pending.respond({200, {{"Content-Type", "application/json"}}, frame});
    }
  }
}

void McpHttp::OnSweep(uv_timer_t* timer) {
  auto* self = static_cast<McpHttp*>(timer->data);
  const uint64_t now = NowMs(self->loop_);
  std::vector<std::string> expired;
  for (auto& [sid, session] : self->sessions_) {
    std::erase_if(session->get_streams,
                  [](const auto& s) { return !s->open(); });
    if (session->pending.empty() && session->get_streams.empty() &&
        now - session->last_used_ms > self->options_.session_idle_timeout_ms) {
      expired.push_back(sid);
    }
  }
  for (const std::string& sid : expired) self->DropSession(sid);
  // Buckets of sessions gone (and of idle tokens) are full again by now.
  if (self->options_.limiter != nullptr) {
    self->options_.limiter->Prune(static_cast<int64_t>(now));
  }
}

std::string McpHttp::NewSessionId() {
  // 128 random bits from the OS: a session id is a capability.
  static std::random_device rd;
  static const char kHex[] = "0123456789abcdef";
  std::string id;
  for (int word = 0; word < 4; ++word) {
    uint32_t bits = rd();
    for (int i = 0; i < 8; ++i) id.push_back(kHex[(bits >> (4 * i)) & 15]);
  }
  return id;
}

}  // namespace cde
