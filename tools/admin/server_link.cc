#include "tools/admin/server_link.h"

#include <curl/curl.h>
#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "api/server.h"
#include "tools/admin/output.h"
#include "tools/admin/store_access.h"

namespace cde::admin {

using nlohmann::json;

namespace {

void InitCurl() {
  static const bool done = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return true;
  }();
  (void)done;
}

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// Collects the Mcp-Session-Id response header.
size_t ReadHeader(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  const auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(c));
    if (name == "mcp-session-id") {
      std::string value = line.substr(colon + 1);
      const auto b = value.find_first_not_of(" \t");
      const auto e = value.find_last_not_of(" \t\r\n");
      *static_cast<std::string*>(out) =
          b == std::string::npos ? "" : value.substr(b, e - b + 1);
    }
  }
  return size * n;
}

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

// GET <base>/health/liveness answers 200 within a second.
bool Alive(const std::string& base) {
  InitCurl();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return false;
  std::string body;
  const std::string url = base + "/health/liveness";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 1000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  }
  curl_easy_cleanup(curl);
  return status == 200;
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
  InitCurl();
  std::string base = mcp_url.substr(0, mcp_url.size() - 4);  // without /mcp
  const std::string url = base + path;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) Fail(kExitFailed, "cannot initialise libcurl");
  struct curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  if (!token.empty()) {
    headers =
        curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
  }
  const std::string payload = body.dump();
  std::string answer;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE,
                   static_cast<long>(payload.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    Fail(kExitFailed,
         "cannot reach the server at " + url + ": " + curl_easy_strerror(rc));
  }
  AdminReply reply{status, json::parse(answer, nullptr, false)};
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
    : url_(std::move(mcp_url)), token_(std::move(token)) {
  InitCurl();
}

McpSession::~McpSession() {
  if (session_.empty()) return;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return;
  struct curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, ("Mcp-Session-Id: " + session_).c_str());
  if (!token_.empty()) {
    headers =
        curl_slist_append(headers, ("Authorization: Bearer " + token_).c_str());
  }
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "DELETE");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_perform(curl);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
}

McpSession::Reply McpSession::Post(const json& message) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) Fail(kExitFailed, "cannot initialise libcurl");
  struct curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers =
      curl_slist_append(headers, "Accept: application/json, text/event-stream");
  if (!session_.empty()) {
    headers =
        curl_slist_append(headers, ("Mcp-Session-Id: " + session_).c_str());
  }
  if (!protocol_version_.empty()) {
    headers = curl_slist_append(
        headers, ("MCP-Protocol-Version: " + protocol_version_).c_str());
  }
  if (!token_.empty()) {
    headers =
        curl_slist_append(headers, ("Authorization: Bearer " + token_).c_str());
  }
  const std::string payload = message.dump();
  Reply reply;
  curl_easy_setopt(curl, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE,
                   static_cast<long>(payload.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &ReadHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply.session_id);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 60000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  const CURLcode rc = curl_easy_perform(curl);
  char* type = nullptr;
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
    if (type != nullptr) reply.content_type = type;
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    Fail(kExitFailed,
         "cannot reach the server at " + url_ + ": " + curl_easy_strerror(rc));
  }
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
    std::istringstream lines(reply.body);
    std::string line, data;
    auto take = [&] {
      if (data.empty()) return;
      json m = json::parse(data, nullptr, false);
      data.clear();
      if (m.is_object() && m.contains("id") && m["id"] == id) response = m;
    };
    while (std::getline(lines, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) {
        take();
      } else if (line.rfind("data:", 0) == 0) {
        std::string d = line.substr(5);
        if (!d.empty() && d[0] == ' ') d.erase(0, 1);
        data += d;
      }
    }
    take();
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
