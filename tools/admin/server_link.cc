#include "tools/admin/server_link.h"

#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "api/server.h"
#include "tools/admin/output.h"
#include "tools/admin/store_access.h"
#include "tools/http_call.h"

namespace cde::admin {

using nlohmann::json;

namespace {

// http://127.0.0.1[:port][/...], http://localhost..., http://[::1]...
bool IsLoopbackHttp(const std::string& url) {
  for (const char* host :
       {"http://127.0.0.1", "http://localhost", "http://[::1]"}) {
    const std::string h = host;
    if (url.compare(0, h.size(), h) == 0 &&
        (url.size() == h.size() || url[h.size()] == ':' ||
         url[h.size()] == '/')) {
      return true;
    }
  }
  return false;
}

// The /mcp endpoint of a URL given as the server's base or its /mcp.
std::string McpUrl(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  const std::string suffix = "/mcp";
  if (url.size() >= suffix.size() &&
      url.compare(url.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return url;
  }
  return url + suffix;
}

// GET <base>/health/liveness answers 200 within 5 s: a server busy
// enough to take longer is still better asked than bypassed.
bool Alive(const std::string& base) {
  const HttpAnswer answer =
      PerformHttpCall({.url = base + "/health/liveness", .timeout_ms = 5000});
  return answer.status == 200;
}

bool PidAlive(pid_t pid) {
  return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

}  // namespace

Route ChooseRoute(const std::string& data_dir, const ChangeOptions& options) {
  Route route;
  if (!options.server.empty()) {
    if (!IsLoopbackHttp(options.server)) {
      Fail(kExitUsage, "--server: '" + options.server +
                           "' is not an http:// URL on 127.0.0.1, localhost "
                           "or [::1]");
    }
    route.online = true;
    route.mcp_url = McpUrl(options.server);
    return route;
  }
  // server.json: which server runs here, and where its HTTP API listens.
  std::ifstream in(data_dir + "/" + kServerFileName);
  json about;
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    about = json::parse(text.str(), nullptr, false);
  }
  pid_t pid = 0;
  if (about.is_object() && about.contains("pid") &&
      about["pid"].is_number_integer()) {
    pid = static_cast<pid_t>(about["pid"].get<int64_t>());
  }
  if (PidAlive(pid)) {  // a stale file (dead pid) is ignored
    std::string base;
    if (about.contains("http") && about["http"].is_string()) {
      base = about["http"].get<std::string>();
    }
    if (!base.empty() && IsLoopbackHttp(base) && Alive(base)) {
      route.online = true;
      route.mcp_url = McpUrl(base);
      route.server_pid = pid;
      return route;
    }
    const auto holder = LockHolder(data_dir);
    if (holder) {
      Fail(kExitLive,
           "a server (pid " + std::to_string(pid) +
               ") holds the store but has no reachable HTTP API; stop it or "
               "run it with --http");
    }
  }
  if (const auto holder = LockHolder(data_dir)) {
    std::string who = "a process";
    if (*holder > 0) who += " (pid " + std::to_string(*holder) + ")";
    Fail(kExitLive, who + " holds the store at " + data_dir +
                        " and no server there says how to reach it (no live "
                        "server.json); stop it, or give --server URL");
  }
  return route;
}

std::string AdminToken(const ChangeOptions& options) {
  if (!options.token.empty()) return options.token;
  const char* env = std::getenv("CDE_ADMIN_TOKEN");
  return env != nullptr ? env : "";
}

AdminReply PostAdminRaw(const std::string& mcp_url, const std::string& path,
                        const json& body, const std::string& token,
                        long timeout_ms) {
  std::string base = mcp_url.substr(0, mcp_url.size() - 4);  // without /mcp
  const std::string url = base + path;
  HttpCall call{.method = "POST",
                .url = url,
                .headers = {"Content-Type: application/json"},
                .body = body.dump(),
                .timeout_ms = timeout_ms};
  if (!token.empty()) call.headers.push_back("Authorization: Bearer " + token);
  const HttpAnswer answer = PerformHttpCall(call);
  if (!answer.answered()) {
    Fail(kExitFailed,
         "cannot reach the server at " + url + ": " + answer.error);
  }
  const long status = answer.status;
  AdminReply reply{status, json::parse(answer.body, nullptr, false)};
  if (reply.body.is_discarded()) reply.body = nullptr;
  if (status == 401) {
    Fail(kExitFailed,
         "the server refused " + path +
             " (401): it needs a bearer token; give --token or "
             "set CDE_ADMIN_TOKEN" +
             (token.empty() ? "" : " (the one given was refused)"));
  }
  return reply;
}

json PostAdmin(const std::string& mcp_url, const std::string& path,
               const json& body, const std::string& token, long timeout_ms) {
  const AdminReply r = PostAdminRaw(mcp_url, path, body, token, timeout_ms);
  if (r.status == 200 && r.body.is_object()) return r.body;
  const std::string why = r.body.is_object() && r.body.contains("error") &&
                                  r.body["error"].is_string()
                              ? r.body["error"].get<std::string>()
                              : "HTTP " + std::to_string(r.status);
  Fail(kExitFailed, "the server refused " + path + ": " + why);
}

McpSession::McpSession(std::string mcp_url, std::string token)
    : url_(std::move(mcp_url)), token_(std::move(token)) {}

McpSession::~McpSession() {
  if (session_.empty()) return;
  HttpCall call{.method = "DELETE",
                .url = url_,
                .headers = {"Mcp-Session-Id: " + session_},
                .timeout_ms = 2000};
  if (!token_.empty())
    call.headers.push_back("Authorization: Bearer " + token_);
  PerformHttpCall(call);
}

McpSession::Reply McpSession::Post(const json& message) {
  HttpCall call{.method = "POST",
                .url = url_,
                .headers = {"Content-Type: application/json",
                            "Accept: application/json, text/event-stream"},
                .body = message.dump(),
                .timeout_ms = timeout_ms_};
  if (!session_.empty()) call.headers.push_back("Mcp-Session-Id: " + session_);
  if (!protocol_version_.empty()) {
    call.headers.push_back("MCP-Protocol-Version: " + protocol_version_);
  }
  if (!token_.empty())
    call.headers.push_back("Authorization: Bearer " + token_);
  HttpAnswer answer = PerformHttpCall(call);
  if (!answer.answered()) {
    Fail(kExitFailed,
         "cannot reach the server at " + url_ + ": " + answer.error);
  }
  Reply reply{answer.status, std::move(answer.body),
              std::move(answer.content_type), answer.header("mcp-session-id")};
  if (reply.status == 401) {
    Fail(kExitFailed,
         "the server at " + url_ +
             " refused the request (401): it needs a bearer token; give "
             "--token or set CDE_ADMIN_TOKEN" +
             (token_.empty() ? "" : " (the one given was refused)"));
  }
  return reply;
}

json McpSession::Request(const std::string& method, const json& params) {
  const int id = next_id_++;
  Reply reply = Post(
      {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}});
  if (!reply.session_id.empty()) session_ = reply.session_id;
  // A JSON response, or an SSE stream whose events carry notifications and
  // then the response.
  json response;
  if (reply.content_type.rfind("text/event-stream", 0) == 0) {
    for (const std::string& data : SseEventData(reply.body)) {
      json m = json::parse(data, nullptr, false);
      if (m.is_object() && m.contains("id") && m["id"] == id) response = m;
    }
  } else {
    response = json::parse(reply.body, nullptr, false);
  }
  if (!response.is_object()) {
    Fail(kExitFailed, "the server at " + url_ + " answered " + method +
                          " with HTTP " + std::to_string(reply.status) +
                          " and no JSON-RPC response");
  }
  if (response.contains("error")) {
    const json& e = response["error"];
    Fail(kExitFailed, "the server refused " + method + ": " +
                          (e.contains("message") && e["message"].is_string()
                               ? e["message"].get<std::string>()
                               : e.dump()));
  }
  if (!response.contains("result")) {
    Fail(kExitFailed, "the server answered " + method + " without a result");
  }
  return response["result"];
}

void McpSession::Open() {
  const json result =
      Request("initialize",
              {{"protocolVersion", "2025-11-25"},
               {"capabilities", json::object()},
               {"clientInfo", {{"name", "cde-admin"}, {"version", "1"}}}});
  if (session_.empty()) {
    Fail(kExitFailed, "the server at " + url_ +
                          " answered initialize without an Mcp-Session-Id");
  }
  protocol_version_ = result.value("protocolVersion", "2025-11-25");
  Reply r = Post({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
  if (r.status != 202 && r.status != 200) {
    Fail(kExitFailed,
         "the server answered notifications/initialized with "
         "HTTP " +
             std::to_string(r.status));
  }
}

json McpSession::CallTool(const std::string& name, const json& arguments) {
  return Request("tools/call", {{"name", name}, {"arguments", arguments}});
}

}  // namespace cde::admin
