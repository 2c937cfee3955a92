// cde-bench --mcp-http: the saga workload driven through a running server's
// MCP Streamable HTTP endpoint, as agents reach it. C sessions (one
// keep-alive connection each) each call start_workflow with wait_ms, so a
// call returns when its saga has completed, then start the next one. One
// thread drives every connection through curl's multi interface.
#include "tools/mcp_http_bench.h"

#include <curl/curl.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tools/bench_util.h"

namespace cde {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// What the benchmark needs of a tools/call answer. The whole reply is
// checked as JSON, but read as SAX events, without building a DOM of the
// saga it carries (the client's CPU is the server's on a shared machine).
struct ToolAnswer {
  bool valid = false;       // well-formed JSON with a result object
  bool is_error = true;     // result.isError
  bool registered = false;  // result.structuredContent.name: a definition
  std::string state;        // result.structuredContent.state
};

class ToolAnswerReader : public nlohmann::json_sax<json> {
 public:
  explicit ToolAnswerReader(ToolAnswer* out) : out_(out) {}
  bool null() override { return Value(); }
  bool boolean(bool v) override {
    if (At({"result", "isError"})) out_->is_error = v;
    return Value();
  }
  bool number_integer(number_integer_t) override { return Value(); }
  bool number_unsigned(number_unsigned_t) override { return Value(); }
  bool number_float(number_float_t, const string_t&) override {
    return Value();
  }
  bool string(string_t& v) override {
    if (At({"result", "structuredContent", "state"})) out_->state = v;
    if (At({"result", "structuredContent", "name"})) out_->registered = true;
    return Value();
  }
  bool binary(binary_t&) override { return Value(); }
  bool start_object(std::size_t) override {
    if (At({"result"})) out_->valid = true;
    path_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    path_.back() = k;
    return true;
  }
  bool end_object() override { return End(); }
  bool start_array(std::size_t) override {
    path_.emplace_back();
    return true;
  }
  bool end_array() override { return End(); }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception&) override {
    out_->valid = false;
    return false;
  }

 private:
  // Whether the value being read is at `keys` from the root.
  bool At(std::initializer_list<const char*> keys) const {
    if (path_.size() != keys.size()) return false;
    size_t i = 0;
    for (const char* k : keys) {
      if (path_[i++] != k) return false;
    }
    return true;
  }
  bool Value() { return true; }
  bool End() {
    path_.pop_back();
    return true;
  }
  ToolAnswer* out_;
  std::vector<std::string> path_;  // the key (or "" in an array) per level
};

// A response body is JSON, or an SSE stream whose last message is the answer.
ToolAnswer ReadToolAnswer(const std::string& body) {
  std::string_view message = body;
  if (body.empty() || body[0] != '{') {
    message = {};
    size_t pos = 0;
    while ((pos = body.find("data: ", pos)) != std::string::npos) {
      const size_t end = body.find('\n', pos);
      message = std::string_view(body).substr(pos + 6, end - pos - 6);
      pos = end;
    }
  }
  ToolAnswer answer;
  ToolAnswerReader reader(&answer);
  if (!json::sax_parse(message, &reader)) answer.valid = false;
  return answer;
}

// One MCP session on its own connection.
struct Session {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string session_id;
  std::string body;  // of the request in flight
  std::string response;
  std::string response_session_id;
  int step = 0;  // 0 initialize, 1 initialized, 2.. calls
  int next_id = 1;
  Clock::time_point started;

  ~Session() {
    if (easy) curl_easy_cleanup(easy);
    if (headers) curl_slist_free_all(headers);
  }
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  static_cast<Session*>(user)->response.append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  std::string line(data, size * n);
  static constexpr char kName[] = "mcp-session-id:";
  if (line.size() > sizeof(kName) &&
      strncasecmp(line.c_str(), kName, sizeof(kName) - 1) == 0) {
    std::string value = line.substr(sizeof(kName) - 1);
    value.erase(0, value.find_first_not_of(' '));
    value.erase(value.find_last_not_of("\r\n ") + 1);
    static_cast<Session*>(user)->response_session_id = value;
  }
  return size * n;
}

class Bench {
 public:
  Bench(std::string url, McpHttpBenchOptions options)
      : url_(std::move(url)), options_(std::move(options)) {}

  int Run() {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    std::signal(SIGPIPE, SIG_IGN);
    multi_ = curl_multi_init();
    // curl's multi-socket API on epoll: each wake-up touches only the
    // connections that are ready, where curl_multi_perform and poll() would
    // walk all C of them (the client must not be what the benchmark
    // measures).
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Bench::OnSocket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Bench::OnTimer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    const int clients = std::min(options_.concurrency, options_.sagas);
    to_start_ = options_.sagas;
    for (int i = 0; i < clients; ++i) {
      sessions_.push_back(std::make_unique<Session>());
      Send(*sessions_.back(), Initialize());
    }
    bool registered = false;
    std::vector<epoll_event> events(64);
    int running = 0;
    for (;;) {
      CURLMsg* msg;
      int left;
      while ((msg = curl_multi_info_read(multi_, &left)) != nullptr) {
        if (msg->msg != CURLMSG_DONE) continue;
        Session* s = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &s);
        curl_multi_remove_handle(multi_, msg->easy_handle);
        --active_;
        OnDone(*s, msg->data.result, &registered);
      }
      if (t0_ == Clock::time_point() && ready_ == clients && registered) {
        // Every session is initialized and the workflow exists: go.
        t0_ = Clock::now();
        for (auto& s : sessions_) StartNext(*s);
      }
      if (active_ == 0) break;
      if (timeout_ms_ == 0) {  // curl asked to be called right away
        timeout_ms_ = -1;
        curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
        continue;
      }
      const int n =
          epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                     timeout_ms_ < 0 ? 1000 : timeout_ms_);
      if (n <= 0) {
        timeout_ms_ = -1;
        curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
        continue;
      }
      for (int i = 0; i < n; ++i) {
        const uint32_t e = events[i].events;
        const int flags = ((e & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                          ((e & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                          ((e & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(multi_, events[i].data.fd, flags, &running);
      }
    }
    close(epoll_fd_);
    if (t0_ == Clock::time_point()) {
      std::fprintf(stderr, "cde-bench: could not set up the MCP sessions\n");
      return 1;
    }
    const double seconds =
        std::chrono::duration<double>(Clock::now() - t0_).count();
    sessions_.clear();
    curl_multi_cleanup(multi_);
    curl_global_cleanup();
    Report(seconds);
    return errors_ == 0 && finished_ == options_.sagas ? 0 : 1;
  }

 private:
  static int OnSocket(CURL*, curl_socket_t fd, int what, void* user, void*) {
    auto* self = static_cast<Bench*>(user);
    epoll_event ev{};
    ev.data.fd = fd;
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
      return 0;
    }
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) |
                ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    if (epoll_ctl(self->epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
      epoll_ctl(self->epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    }
    return 0;
  }

  static int OnTimer(CURLM*, long timeout_ms, void* user) {
    static_cast<Bench*>(user)->timeout_ms_ = static_cast<int>(timeout_ms);
    return 0;
  }

  std::string Initialize() {
    return json{{"jsonrpc", "2.0"},
                {"id", 0},
                {"method", "initialize"},
                {"params",
                 {{"protocolVersion", "2025-11-25"},
                  {"capabilities", json::object()},
                  {"clientInfo", {{"name", "cde-bench"}, {"version", "1"}}}}}}
        .dump();
  }

  std::string Call(Session& s, const std::string& tool, const json& args) {
    return json{{"jsonrpc", "2.0"},
                {"id", s.next_id++},
                {"method", "tools/call"},
                {"params", {{"name", tool}, {"arguments", args}}}}
        .dump();
  }

  void Send(Session& s, std::string body) {
    if (s.easy == nullptr) {
      s.easy = curl_easy_init();
      curl_easy_setopt(s.easy, CURLOPT_URL, url_.c_str());
      curl_easy_setopt(s.easy, CURLOPT_POST, 1L);
      curl_easy_setopt(s.easy, CURLOPT_WRITEFUNCTION, &OnBody);
      curl_easy_setopt(s.easy, CURLOPT_WRITEDATA, &s);
      curl_easy_setopt(s.easy, CURLOPT_HEADERFUNCTION, &OnHeader);
      curl_easy_setopt(s.easy, CURLOPT_HEADERDATA, &s);
      curl_easy_setopt(s.easy, CURLOPT_PRIVATE, &s);
      curl_easy_setopt(s.easy, CURLOPT_TCP_NODELAY, 1L);
      // No SIGPIPE juggling around every transfer (two sigaction calls each,
      // a third of the client's time): SIGPIPE is ignored process-wide.
      curl_easy_setopt(s.easy, CURLOPT_NOSIGNAL, 1L);
    }
    if (s.headers) curl_slist_free_all(s.headers);
    s.headers = curl_slist_append(nullptr, "Content-Type: application/json");
    s.headers = curl_slist_append(
        s.headers, "Accept: application/json, text/event-stream");
    if (!options_.token.empty()) {
      s.headers = curl_slist_append(
          s.headers, ("Authorization: Bearer " + options_.token).c_str());
    }
    if (!s.session_id.empty()) {
      s.headers = curl_slist_append(
          s.headers, ("Mcp-Session-Id: " + s.session_id).c_str());
    }
    curl_easy_setopt(s.easy, CURLOPT_HTTPHEADER, s.headers);
    s.body = std::move(body);
    curl_easy_setopt(s.easy, CURLOPT_POSTFIELDS, s.body.c_str());
    curl_easy_setopt(s.easy, CURLOPT_POSTFIELDSIZE,
                     static_cast<long>(s.body.size()));
    s.response.clear();
    curl_multi_add_handle(multi_, s.easy);
    ++active_;
  }

  void Fail(const std::string& why) {
    if (++errors_ <= 5) std::fprintf(stderr, "cde-bench: %s\n", why.c_str());
  }

  void OnDone(Session& s, CURLcode code, bool* registered) {
    long status = 0;
    curl_easy_getinfo(s.easy, CURLINFO_RESPONSE_CODE, &status);
    if (code != CURLE_OK || (status != 200 && status != 202)) {
      Fail("HTTP " + std::to_string(status) + " " + curl_easy_strerror(code) +
           ": " + s.response);
      if (s.step < 2) return;  // a session that cannot start drops out
      return StartNext(s);
    }
    if (s.step == 0) {
      s.session_id = s.response_session_id;
      s.step = 1;
      return Send(s,
                  R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
    }
    if (s.step == 1) {
      s.step = 2;
      if (&s == sessions_.front().get()) {
        // The first session registers the workflow (idempotent).
        return Send(s, Call(s, "register_workflow",
                            {{"definition", options_.workflow}}));
      }
      ++ready_;
      return;
    }
    const ToolAnswer answer = ReadToolAnswer(s.response);
    if (!answer.valid || answer.is_error) {
      Fail("tool call failed: " + s.response.substr(0, 300));
    } else if (answer.registered) {
      *registered = true;  // the register_workflow answer
      ++ready_;
      return;
    } else {
      if (answer.state != "completed") Fail("saga ended " + answer.state);
      latencies_ms_.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - s.started)
              .count());
      ++finished_;
    }
    if (t0_ != Clock::time_point()) StartNext(s);
  }

  void StartNext(Session& s) {
    if (to_start_ == 0) return;
    --to_start_;
    s.started = Clock::now();
    Send(s, Call(s, "start_workflow",
                 {{"workflow", options_.workflow["name"]},
                  {"input", json::object()},
                  {"wait_ms", 60000}}));
  }

  void Report(double seconds) {
    const double per_s = finished_ / seconds;
    json out = {{"workload", "mcp-http"},
                {"sagas", finished_},
                {"concurrency", options_.concurrency},
                {"sagas_per_s", per_s},
                {"p50_ms", Percentile(latencies_ms_, 0.50)},
                {"p95_ms", Percentile(latencies_ms_, 0.95)},
                {"p99_ms", Percentile(latencies_ms_, 0.99)},
                {"errors", errors_}};
    std::printf("workload mcp-http against %s, %d sagas, %d sessions\n",
                url_.c_str(), finished_, options_.concurrency);
    std::printf(
        "  %.0f sagas/s (start_workflow with wait_ms: each call "
        "returns when its saga has completed)\n",
        per_s);
    std::printf("  call p50 %.3f ms, p95 %.3f ms, p99 %.3f ms\n",
                out["p50_ms"].get<double>(), out["p95_ms"].get<double>(),
                out["p99_ms"].get<double>());
    std::printf("%s\n", out.dump().c_str());
  }

  const std::string url_;
  const McpHttpBenchOptions options_;
  CURLM* multi_ = nullptr;
  int epoll_fd_ = -1;
  int timeout_ms_ = -1;  // curl's timer: -1 none, 0 now
  std::vector<std::unique_ptr<Session>> sessions_;
  int active_ = 0;  // transfers in flight
  int ready_ = 0;   // sessions initialized
  int to_start_ = 0;
  int finished_ = 0;
  int errors_ = 0;
  std::vector<double> latencies_ms_;
  Clock::time_point t0_;
};

}  // namespace

int RunMcpHttpBench(const std::string& url, McpHttpBenchOptions options) {
  return Bench(url, std::move(options)).Run();
}

}  // namespace cde
