// The `http` action: libcurl's multi-socket API driven by the engine's loop
// (curl's "multi-uv" pattern). curl says which sockets to watch
// (OnCurlSocket) and when to call it back (OnCurlTimer); HttpClient turns
// that into one uv_poll_t per socket, each owned by a SocketWatcher, and one
// uv_timer_t, and hands readiness back through curl_multi_socket_action.
// A second timer delivers failures found inside Start on a later loop turn,
// so `done` never runs before Start has returned the handle. The
// AsyncAction returned to the engine is a thin front: the client outlives it
// until its handles have closed.
#include <curl/curl.h>
#include <strings.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "engine/action_policy.h"
#include "engine/async_action.h"
#include "engine/json_text.h"
#include "engine/secrets.h"
#include "storage/json_depth.h"

namespace cde {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxBody = size_t{1} << 20;
constexpr size_t kMessageHead = 2048;

bool EqualsNoCase(const std::string& a, const char* b) {
  return strcasecmp(a.c_str(), b) == 0;
}

bool StartsWithNoCase(const std::string& s, const char* prefix) {
  return strncasecmp(s.c_str(), prefix, strlen(prefix)) == 0;
}

struct Request {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // curl_slist lines
  std::string body;
  bool has_body = false;
  long timeout_ms = 0;  // 0: none
};

// Fills `req` from rendered params; returns what is wrong, or "". Params
// were checked at registration, but a whole-string template can render to
// any type, so the types are checked again here. `rng` makes the span id of
// the traceparent sent (one per attempt).
std::string ParseRequest(const AttemptRequest& request, std::mt19937_64& rng,
                         Request* req) {
  const json& params = request.params;
  if (!params.is_object()) return "params must be an object";
  if (const auto m = params.find("method"); m != params.end()) {
    static const char* const kMethods[] = {"GET",   "POST",   "PUT",
                                           "PATCH", "DELETE", "HEAD"};
    if (!m->is_string() ||
        std::find(std::begin(kMethods), std::end(kMethods),
                  m->get<std::string>()) == std::end(kMethods)) {
      return "method must be one of GET, POST, PUT, PATCH, DELETE, HEAD";
    }
    req->method = m->get<std::string>();
  }
  const auto url = params.find("url");
  if (url == params.end() || !url->is_string()) return "url must be a string";
  req->url = url->get<std::string>();
  if (!StartsWithNoCase(req->url, "http://") &&
      !StartsWithNoCase(req->url, "https://")) {
    return "url must start with http:// or https://: '" + req->url + "'";
  }
  bool has_content_type = false;
  bool has_correlation_id = false;
  bool has_traceparent = false;
  if (const auto h = params.find("headers"); h != params.end()) {
    if (!h->is_object()) return "headers must be an object of strings";
    for (const auto& [name, value] : h->items()) {
      if (!value.is_string()) return "headers." + name + " must be a string";
      const std::string v = value.get<std::string>();
      // CR or LF would let a rendered value inject headers of its own.
      if (name.empty() || name.find_first_of(": \t\r\n") != std::string::npos ||
          v.find_first_of("\r\n") != std::string::npos) {
        return "invalid header '" + name + "'";
      }
      // The engine's key is the one the receiver deduplicates on.
      if (EqualsNoCase(name, "Idempotency-Key")) continue;
      has_content_type |= EqualsNoCase(name, "Content-Type");
      has_correlation_id |= EqualsNoCase(name, "X-Correlation-ID");
      has_traceparent |= EqualsNoCase(name, "traceparent");
      req->headers.push_back(v.empty() ? name + ";" : name + ": " + v);
    }
  }
  if (const auto body = params.find("body"); body != params.end()) {
    req->has_body = true;
    if (body->is_string()) {
      req->body = body->get<std::string>();
      // Else curl would label it application/x-www-form-urlencoded.
      if (!has_content_type) req->headers.push_back("Content-Type:");
    } else {
      req->body = body->dump(-1, ' ', false, json::error_handler_t::replace);
      if (!has_content_type) {
        req->headers.push_back("Content-Type: application/json");
      }
    }
  }
  if (const auto t = params.find("timeout_ms"); t != params.end()) {
    if (!t->is_number_integer() || t->get<int64_t>() <= 0) {
      return "timeout_ms must be a positive integer";
    }
    req->timeout_ms = static_cast<long>(
        std::min<int64_t>(t->get<int64_t>(), std::numeric_limits<long>::max()));
  }
  if (!request.idempotency_key.empty()) {
    req->headers.push_back("Idempotency-Key: " + request.idempotency_key);
  }
  // The saga's correlation and trace, unless the step sends its own. The
  // callers (the MCP layer) keep both free of CR and LF; checked anyway.
  if (!has_correlation_id && !request.correlation_id.empty() &&
      request.correlation_id.find_first_of("\r\n") == std::string::npos) {
    req->headers.push_back("X-Correlation-ID: " + request.correlation_id);
  }
  if (!has_traceparent && request.trace_id.size() == 32 &&
      request.trace_id.find_first_of("\r\n") == std::string::npos) {
    // A new span per attempt, sampled.
    req->headers.push_back("traceparent: 00-" + request.trace_id + "-" +
                           RandomHexId(rng, 64) + "-01");
  }
  req->headers.push_back("Expect:");  // no 100-continue round trip
  return "";
}

// Where a transfer may connect: the policy and whom it is for.
struct Destinations {
  std::shared_ptr<const DestinationPolicy> policy;
  bool client = false;  // a definition registered by a client
};

// One attempt: its easy handle and everything curl reads from or writes to.
struct Transfer {
  Transfer(uint64_t id, ActionDone done, const Destinations& destinations)
      : id(id), done(std::move(done)), destinations(destinations) {}
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  // REQUIRES: removed from the multi handle.
  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
  }

  const uint64_t id;
  ActionDone done;
  const Destinations& destinations;
  std::string url;
  bool host_allowed = false;  // by an allow entry naming the host
  std::string refused;        // why the policy refused an address, if it did
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;  // CURLOPT_POSTFIELDS does not copy
  std::string response;
  AttemptRequest::Secrets secrets;  // redacted before the response is cut
  bool too_large = false;
  char error[CURL_ERROR_SIZE] = {};
};

size_t OnBody(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  if (t->response.size() + size * n > kMaxBody) {
    t->too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  t->response.append(data, size * n);
  return size * n;
}

// curl's CURLOPT_OPENSOCKETFUNCTION: every address curl connects to,
// after DNS resolution, passes the destination policy here first.
curl_socket_t OnOpenSocket(void* clientp, curlsocktype purpose,
                           curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(clientp);
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
  const auto ip = IpAddress::FromSockaddr(&address->addr);
  std::string refused = ip ? t->destinations.policy->CheckAddress(
                                 *ip, t->destinations.client, t->host_allowed)
                           : "not an IPv4 or IPv6 address";
  if (!refused.empty()) {
    t->refused = std::move(refused);
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype | SOCK_CLOEXEC,
                address->protocol);
}

// Returns false if curl could not make the handle.
bool SetUp(Transfer* t, Request& req) {
  t->easy = curl_easy_init();
  if (t->easy == nullptr) return false;
  CURL* e = t->easy;
  for (const std::string& h : req.headers) {
    t->headers = curl_slist_append(t->headers, h.c_str());
  }
  t->body = std::move(req.body);
  curl_easy_setopt(e, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);  // the loop thread is ours
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "cde-orchestrator");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &OnOpenSocket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
  // A proxy from the environment would be the only address the policy
  // sees; a client's transfers go direct.
  if (t->destinations.client) curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                   static_cast<curl_off_t>(kMaxBody));
  if (req.timeout_ms > 0)
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req.timeout_ms);
  if (req.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (req.method == "GET" && !req.has_body) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    // Also for a POST without a body: else curl would read one from stdin.
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(t->body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body.c_str());
    if (req.method != "POST") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
  }
  return true;
}

std::string RefusedMessage(const std::string& url, const std::string& why) {
  return "http to " + url + " refused by the action policy: " + why;
}

ActionResult ResultOf(const Transfer& t, CURLcode code) {
  if (!t.refused.empty() && code != CURLE_OK) {
    return ActionResult::Failure(kPolicyErrorKind,
                                 RefusedMessage(t.url, t.refused));
  }
  if (t.too_large || code == CURLE_FILESIZE_EXCEEDED) {
    return ActionResult::Failure("response_too_large",
                                 "the response body exceeds 1 MiB");
  }
  if (code != CURLE_OK) {
    std::string message = curl_easy_strerror(code);
    if (t.error[0] != '\0') {
      std::string detail = t.error;
      // A full buffer was cut: a secret (a host a secret renders) may end
      // it half written, where the engine's redaction cannot see it.
      if (t.secrets != nullptr && detail.size() + 1 >= CURL_ERROR_SIZE) {
        RedactCutText(*t.secrets, &detail);
      }
      message += ": " + detail;
    }
    if (code == CURLE_OPERATION_TIMEDOUT) {
      return ActionResult::Failure("timeout", message);
    }
    // Retrying cannot fix these; "connection" would invite it.
    if (code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL) {
      return ActionResult::Failure("params", message);
    }
    return ActionResult::Failure("connection", message);
  }
  long status = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 200 && status < 300) {
    if (t.response.empty()) return ActionResult::Success({{"status", status}});
    // Not JSON, or nested beyond what the engine holds: kept as text.
    json output = ParseBoundedJson(t.response);
    if (output.is_discarded()) {
      output = {{"status", status}, {"body", ValidUtf8(t.response)}};
    }
    return ActionResult::Success(std::move(output));
  }
  const std::string n = std::to_string(status);
  std::string message = "HTTP " + n;
  char* location = nullptr;
  if (status >= 300 && status < 400 &&
      curl_easy_getinfo(t.easy, CURLINFO_REDIRECT_URL, &location) == CURLE_OK &&
      location != nullptr) {
    // Not followed: the policy checks the URL a step names, and a redirect
    // could take a request anywhere.
    message +=
        " (redirects are not followed; Location: " + ValidUtf8(location) + ")";
  }
  if (!t.response.empty()) {
    std::string body = t.response;
    if (t.secrets != nullptr) RedactText(*t.secrets, &body);
    size_t end = std::min(body.size(), kMessageHead);
    while (end > 0 && end < body.size() && (body[end] & 0xC0) == 0x80) {
      --end;  // not inside a UTF-8 sequence
    }
    message += ": " + ValidUtf8(body.substr(0, end));
  }
  return ActionResult::Failure("http_" + n, message);
}

class HttpClient;

struct SocketWatcher {
  uv_poll_t poll;
  curl_socket_t fd;
  HttpClient* client;
};

class HttpClient {
 public:
  HttpClient(uv_loop_t* loop, Destinations destinations);
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  uint64_t Start(const AttemptRequest& request, ActionDone done);
  void Abort(uint64_t id);
  size_t in_flight() const { return transfers_.size() + failed_.size(); }
  // Frees the client (after running `on_closed`) once every handle closed.
  void Close(std::function<void()> on_closed);

 private:
  struct Failed {
    ActionDone done;
    ActionResult result;
  };

  ~HttpClient() = default;
  static int OnCurlSocket(CURL* easy, curl_socket_t fd, int what, void* userp,
                          void* socketp);
  static int OnCurlTimer(CURLM* multi, long timeout_ms, void* userp);
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnCurlTimeout(uv_timer_t* handle);
  static void OnFailTimer(uv_timer_t* handle);
  static void OnTimerClosed(uv_handle_t* handle);
  static void OnWatcherClosed(uv_handle_t* handle);
  void SocketAction(curl_socket_t fd, int flags);
  void Remove(uint64_t id);
  void CloseWatcher(SocketWatcher* watcher);
  void Fail(uint64_t id, ActionDone done, ActionResult result);
  void HandleClosed();

  uv_loop_t* const loop_;
  // One client per origin: curl reuses connections within a multi handle,
  // and a connection the operator's policy let through must not serve a
  // client's transfer without the client's check.
  const Destinations destinations_;
  CURLM* multi_;
  uv_timer_t curl_timer_;
  uv_timer_t fail_timer_;
  std::unordered_map<uint64_t, std::unique_ptr<Transfer>> transfers_;
  std::vector<std::pair<uint64_t, int>> unwatchable_;  // transfer, uv error
  std::map<uint64_t, Failed> failed_;            // waiting for fail_timer_
  std::unordered_set<SocketWatcher*> watchers_;  // open, not closing
  uint64_t next_id_ = 1;
  std::mt19937_64 rng_{std::random_device{}()};  // span ids
  size_t open_handles_ = 2;  // the timers and every SocketWatcher
  bool closing_ = false;
  std::function<void()> on_closed_;
};

HttpClient::HttpClient(uv_loop_t* loop, Destinations destinations)
    : loop_(loop),
      destinations_(std::move(destinations)),
      multi_(curl_multi_init()) {
  assert(multi_ != nullptr);
  for (uv_timer_t* timer : {&curl_timer_, &fail_timer_}) {
    uv_timer_init(loop, timer);
    timer->data = this;
  }
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &HttpClient::OnCurlSocket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &HttpClient::OnCurlTimer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
}

uint64_t HttpClient::Start(const AttemptRequest& request, ActionDone done) {
  assert(!closing_ && "Start after Close");
  const uint64_t id = next_id_++;
  Request req;
  if (std::string error = ParseRequest(request, rng_, &req); !error.empty()) {
    Fail(id, std::move(done), ActionResult::Failure("params", error));
    return id;
  }
  auto host = HostOfUrl(req.url);
  if (!host.ok()) {
    Fail(id, std::move(done),
         ActionResult::Failure("params", host.status().message()));
    return id;
  }
  std::string reason;
  const auto verdict =
      destinations_.policy->CheckHost(*host, destinations_.client, &reason);
  if (verdict == DestinationPolicy::Verdict::kRefused) {
    Fail(id, std::move(done),
         ActionResult::Failure(kPolicyErrorKind,
                               RefusedMessage(req.url, reason)));
    return id;
  }
  auto t = std::make_unique<Transfer>(id, std::move(done), destinations_);
  t->url = req.url;
  t->secrets = request.secrets;
  t->host_allowed = verdict == DestinationPolicy::Verdict::kAllowed;
  if (!SetUp(t.get(), req) ||
      curl_multi_add_handle(multi_, t->easy) != CURLM_OK) {
    Fail(id, std::move(t->done),
         ActionResult::Failure("connection", "curl could not start"));
    return id;
  }
  transfers_[id] = std::move(t);
  return id;
}

void HttpClient::Abort(uint64_t id) {
  failed_.erase(id);
  Remove(id);
}

void HttpClient::Remove(uint64_t id) {
  const auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  curl_multi_remove_handle(multi_, it->second->easy);
  transfers_.erase(it);
}

int HttpClient::OnCurlSocket(CURL* easy, curl_socket_t fd, int what,
                             void* userp, void* socketp) {
  auto* self = static_cast<HttpClient*>(userp);
  auto* watcher = static_cast<SocketWatcher*>(socketp);
  if (what == CURL_POLL_REMOVE || self->closing_) {
    if (watcher != nullptr) self->CloseWatcher(watcher);
    return 0;
  }
  if (watcher == nullptr) {
    watcher = new SocketWatcher{{}, fd, self};
    if (const int rc = uv_poll_init_socket(self->loop_, &watcher->poll, fd);
        rc != 0) {
      delete watcher;  // never a handle: nothing to close
      // Returning -1 would make curl fail every transfer of the multi
      // handle; fail this one instead, once curl has returned.
      char* priv = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
      self->unwatchable_.emplace_back(reinterpret_cast<Transfer*>(priv)->id,
                                      rc);
      uv_timer_start(&self->fail_timer_, &HttpClient::OnFailTimer, 0, 0);
      return 0;
    }
    watcher->poll.data = watcher;
    self->watchers_.insert(watcher);
    ++self->open_handles_;
    curl_multi_assign(self->multi_, fd, watcher);
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&watcher->poll, events, &HttpClient::OnPoll);
  return 0;
}

int HttpClient::OnCurlTimer(CURLM*, long timeout_ms, void* userp) {
  auto* self = static_cast<HttpClient*>(userp);
  if (self->closing_) return 0;
  if (timeout_ms < 0) {
    uv_timer_stop(&self->curl_timer_);
  } else {
    // Even for 0: curl must not be re-entered from its own callback.
    uv_timer_start(&self->curl_timer_, &HttpClient::OnCurlTimeout,
                   static_cast<uint64_t>(timeout_ms), 0);
  }
  return 0;
}

void HttpClient::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* watcher = static_cast<SocketWatcher*>(handle->data);
  int flags = 0;
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  watcher->client->SocketAction(watcher->fd, flags);
}

void HttpClient::OnCurlTimeout(uv_timer_t* handle) {
  static_cast<HttpClient*>(handle->data)->SocketAction(CURL_SOCKET_TIMEOUT, 0);
}

void HttpClient::SocketAction(curl_socket_t fd, int flags) {
  int running = 0;
  curl_multi_socket_action(multi_, fd, flags, &running);
  // Collect first: a `done` may Start, Abort or Close, which changes the
  // multi handle that curl_multi_info_read walks.
  std::vector<std::pair<ActionDone, ActionResult>> finished;
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
    if (msg->msg != CURLMSG_DONE) continue;
    const CURLcode code = msg->data.result;
    char* priv = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
    Transfer* t = reinterpret_cast<Transfer*>(priv);
    finished.emplace_back(std::move(t->done), ResultOf(*t, code));
    Remove(t->id);  // invalidates msg
  }
  for (auto& [done, result] : finished) {
    if (closing_) return;
    done(std::move(result));
  }
}

void HttpClient::Fail(uint64_t id, ActionDone done, ActionResult result) {
  failed_[id] = {std::move(done), std::move(result)};
  uv_timer_start(&fail_timer_, &HttpClient::OnFailTimer, 0, 0);
}

void HttpClient::OnFailTimer(uv_timer_t* handle) {
  auto* self = static_cast<HttpClient*>(handle->data);
  for (const auto& [id, rc] : std::exchange(self->unwatchable_, {})) {
    const auto it = self->transfers_.find(id);
    if (it == self->transfers_.end()) continue;
    ActionDone done = std::move(it->second->done);
    self->Remove(id);
    self->failed_[id] = {
        std::move(done),
        ActionResult::Failure(
            "connection",
            std::string("cannot watch socket: ") + uv_strerror(rc))};
  }
  // One at a time: a `done` may Abort another entry or Close the client.
  while (!self->failed_.empty() && !self->closing_) {
    auto node = self->failed_.extract(self->failed_.begin());
    node.mapped().done(std::move(node.mapped().result));
  }
}

void HttpClient::Close(std::function<void()> on_closed) {
  closing_ = true;
  on_closed_ = std::move(on_closed);
  failed_.clear();
  while (!transfers_.empty()) Remove(transfers_.begin()->first);
  curl_multi_cleanup(multi_);  // may still report sockets as removed
  multi_ = nullptr;
  for (SocketWatcher* watcher :
       std::vector<SocketWatcher*>(watchers_.begin(), watchers_.end())) {
    CloseWatcher(watcher);
  }
  for (uv_timer_t* timer : {&curl_timer_, &fail_timer_}) {
    uv_close(reinterpret_cast<uv_handle_t*>(timer), &HttpClient::OnTimerClosed);
  }
}

void HttpClient::CloseWatcher(SocketWatcher* watcher) {
  // uv_close stops polling at once, so curl may reuse the descriptor for a
  // new socket before the close callback has run.
  watchers_.erase(watcher);
  uv_close(reinterpret_cast<uv_handle_t*>(&watcher->poll),
           &HttpClient::OnWatcherClosed);
}

void HttpClient::OnWatcherClosed(uv_handle_t* handle) {
  auto* watcher = static_cast<SocketWatcher*>(handle->data);
  HttpClient* self = watcher->client;
  delete watcher;
  self->HandleClosed();
}

void HttpClient::OnTimerClosed(uv_handle_t* handle) {
  static_cast<HttpClient*>(handle->data)->HandleClosed();
}

void HttpClient::HandleClosed() {
  if (--open_handles_ > 0 || !closing_) return;
  std::function<void()> on_closed = std::move(on_closed_);
  delete this;
  if (on_closed) on_closed();
}

class HttpAction final : public AsyncAction {
 public:
  HttpAction(uv_loop_t* loop, Destinations destinations)
      : client_(new HttpClient(loop, std::move(destinations))) {}
  ~HttpAction() override {
    if (client_ != nullptr) client_->Close(nullptr);
  }

  uint64_t Start(const AttemptRequest& request, ActionDone done) override {
    assert(client_ != nullptr && "Start after Close");
    return client_->Start(request, std::move(done));
  }
  void Abort(uint64_t handle) override {
    if (client_ != nullptr) client_->Abort(handle);
  }
  size_t in_flight() const override {
    return client_ != nullptr ? client_->in_flight() : 0;
  }
  void Close(std::function<void()> on_closed) override {
    assert(client_ != nullptr && "Close twice");
    std::exchange(client_, nullptr)->Close(std::move(on_closed));
  }

 private:
  HttpClient* client_;  // frees itself once closed
};

}  // namespace

std::unique_ptr<AsyncAction> NewHttpAction(
    uv_loop_t* loop, std::shared_ptr<const DestinationPolicy> policy,
    bool client) {
  assert(policy != nullptr);
  // Not thread-safe in curl, and needed once per process.
  static std::once_flag curl_initialized;
  std::call_once(curl_initialized,
                 [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return std::make_unique<HttpAction>(loop,
                                      Destinations{std::move(policy), client});
}

}  // namespace cde
