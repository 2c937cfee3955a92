// McpHttp: the MCP Streamable HTTP transport (protocol 2025-03-26 and
// later) on the HttpServer, for the single endpoint /mcp.
//
//   POST    one JSON-RPC message. A request is answered with one JSON
//           response, or with an SSE stream when the call sends
//           notifications (progress, log messages) before its result;
//           a notification or response gets 202.
//   GET     the session's server-initiated SSE stream: resource updates,
//           task status, log messages not tied to a request.
//   DELETE  ends the session.
//
// The Mcp-Session-Id header is issued with the initialize response and
// required afterwards (unknown or expired: 404). Every request is checked
// first for its Origin (against an allow-list, to stop DNS rebinding), its
// bearer token (when tokens are configured), and its MCP-Protocol-Version.
// A POST's X-Correlation-ID and traceparent headers go with its message to
// the session (McpMessageContext), as does its rate-limit key.
//
// Thread safety: loop thread only.
#ifndef CDE_API_MCP_HTTP_H_
#define CDE_API_MCP_HTTP_H_

#include <uv.h>

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "api/auth.h"
#include "api/http_server.h"
#include "api/mcp_session.h"

namespace cde {

struct McpHttpOptions {
  // Origins allowed to call (scheme://host[:port], compared exactly), plus
  // every localhost origin (http or https, localhost / 127.0.0.1 / [::1],
  // any port) unless `allow_localhost` is false. "*" allows all origins.
  // Requests without an Origin header (not from a browser) are allowed.
  std::vector<std::string> allowed_origins;
  bool allow_localhost = true;
  // When it holds tokens, every request needs "Authorization: Bearer
  // <token>" with one of them, and each call the scope it needs (auth.h).
  // A session belongs to the token that initialized it.
  TokenTable tokens;
  // A session with no request, no open stream and no call in flight for
  // this long is dropped; its next request gets 404.
  uint64_t session_idle_timeout_ms = 3600 * 1000;
  // At the cap, initialize evicts the idle session (no request, open
  // stream, wait or followed task) used longest ago, and refuses (503)
  // only if none is idle. One client (a token; without tokens, a peer
  // address) holds at most max_sessions_per_client, evicting its own idle
  // ones beyond, so that it cannot fill the table.
  size_t max_sessions = 10000;
  size_t max_sessions_per_client = 1000;
  // Frames for the GET stream kept while none is open (then dropped,
  // oldest first).
  size_t max_buffered_frames = 1000;
  // Inbound rate limits (McpSessionOptions::limiter), null = unlimited. A
  // request is charged to "token:<token name>" when bearer tokens are
  // configured (the sessions of one token share a bucket), else to
  // "session:<Mcp-Session-Id>". Pruned at every session sweep.
  // REQUIRES: outlives the McpHttp.
  RateLimiters* limiter = nullptr;
  bool workflow_tools = true;  // McpSessionOptions::workflow_tools
};

class McpHttp {
 public:
  McpHttp(uv_loop_t* loop, Engine* engine, McpHttpOptions options);
  ~McpHttp();  // REQUIRES: Close() has finished
  McpHttp(const McpHttp&) = delete;
  McpHttp& operator=(const McpHttp&) = delete;

  // Handles a request for /mcp.
  void Handle(const HttpRequest& request, HttpServer::Respond respond);

  // Ends every session (before the engine shuts down) and closes the
  // expiry timer; `on_closed` runs once it is closed.
  void Close(std::function<void()> on_closed);

  size_t session_count() const { return sessions_.size(); }

 private:
  struct Session;
  struct Pending;

  // The caller of `request`, or nullopt when it is refused (its origin,
  // its token, its protocol version), already answered.
  std::optional<Principal> Admit(const HttpRequest& request,
                                 const HttpServer::Respond& respond) const;
  bool OriginAllowed(const std::string& origin) const;
  void Post(const HttpRequest& request, const Principal& caller,
            HttpServer::Respond respond);
  // The caller, rate key and trace headers of a POST to session `sid`.
  McpMessageContext ContextOf(const HttpRequest& request,
                              const Principal& caller,
                              const std::string& sid) const;
  void Get(Session& session, HttpServer::Respond respond);
  // A frame from session `sid` (McpSession::Send).
  void Deliver(const std::string& sid, McpSession::OutFrame frame);
  void SendOnGetStream(Session& session, const std::string& frame);
  void DropSession(const std::string& sid);
  // Marks `session` used now.
  void Touch(Session& session);
  // Whose quota a request's session counts against: "token:<name>", or
  // without tokens "peer:<address>".
  std::string ClientOf(const HttpRequest& request,
                       const Principal& caller) const;
  // Makes room for a session of `client` (ClientOf; evicting the idle
  // session used longest ago where a cap is reached); "" if there is room,
  // else why not.
  std::string MakeRoom(const std::string& client);
  // The idle session used longest ago (of `client`, or of anyone when it
  // is null), or "".
  std::string IdleLongest(const std::string* client) const;
  static void OnSweep(uv_timer_t* timer);
  std::string NewSessionId();

  uv_loop_t* const loop_;
  Engine* const engine_;
  const McpHttpOptions options_;
  std::map<std::string, std::unique_ptr<Session>> sessions_;
  std::map<std::string, size_t> sessions_of_;  // by client (ClientOf)
  uint64_t uses_ = 0;                          // requests to sessions so far
  uv_timer_t sweep_timer_;
  bool closing_ = false;
  std::function<void()> on_closed_;
};

}  // namespace cde

#endif  // CDE_API_MCP_HTTP_H_
