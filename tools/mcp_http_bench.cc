// cde-bench --mcp-http: the saga workload driven through a running server's
// MCP Streamable HTTP endpoint, as agents reach it. C sessions (one
// keep-alive connection each) each call start_workflow with wait_ms, so a
// call returns when its saga has completed, then start the next one.
//
// One thread drives every connection on epoll, writing each request with
// one send() and reading each response through llhttp (JSON, or an SSE
// stream, chunked). The client shares the machine with the server it
// measures, so it does no more per call than a request needs: curl's multi
// interface cost three times as much CPU per call, which the server's
// threads then lacked (docs/benchmarks.md).
#include "tools/mcp_http_bench.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
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

// The parts of an http:// URL the client needs.
struct Target {
  std::string host;  // as given (for the Host header)
  std::string port = "80";
  std::string path = "/";
};

bool ParseUrl(const std::string& url, Target* t) {
  constexpr std::string_view kScheme = "http://";
  if (url.compare(0, kScheme.size(), kScheme) != 0) return false;
  std::string rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  if (slash != std::string::npos) {
    t->path = rest.substr(slash);
    rest.resize(slash);
  }
  const size_t colon = rest.rfind(':');
  if (colon != std::string::npos &&
      rest.find(']', colon) == std::string::npos) {
    t->port = rest.substr(colon + 1);
    rest.resize(colon);
  }
  if (rest.size() > 2 && rest.front() == '[' && rest.back() == ']') {
    rest = rest.substr(1, rest.size() - 2);
  }
  t->host = rest;
  return !t->host.empty() && !t->port.empty();
}

// One MCP session on its own connection.
struct Session {
  int fd = -1;
  llhttp_t parser;
  std::string session_id;
  std::string pending_out;  // request bytes send() has not taken yet
  // The response being read.
  int status = 0;
  std::string body;
  std::string header_field;
  std::string header_value;
  bool in_value = false;
  bool in_flight = false;     // a request sent, its answer not yet read
  bool watching_out = false;  // registered for EPOLLOUT
  int step = 0;               // 0 initialize, 1 initialized, 2.. calls
  int next_id = 1;
  Clock::time_point started;

  ~Session() {
    if (fd >= 0) close(fd);
  }
  void EndHeader() {
    if (in_value && strcasecmp(header_field.c_str(), "mcp-session-id") == 0) {
      session_id = header_value;
    }
    header_field.clear();
    header_value.clear();
    in_value = false;
  }
};

Session* SessionOf(llhttp_t* p) { return static_cast<Session*>(p->data); }

int OnHeaderField(llhttp_t* p, const char* at, size_t n) {
  Session* s = SessionOf(p);
  if (s->in_value) s->EndHeader();
  s->header_field.append(at, n);
  return 0;
}

int OnHeaderValue(llhttp_t* p, const char* at, size_t n) {
  Session* s = SessionOf(p);
  s->in_value = true;
  s->header_value.append(at, n);
  return 0;
}

int OnHeadersComplete(llhttp_t* p) {
  Session* s = SessionOf(p);
  s->EndHeader();
  s->status = p->status_code;
  return 0;
}

int OnBody(llhttp_t* p, const char* at, size_t n) {
  SessionOf(p)->body.append(at, n);
  return 0;
}

int OnMessageComplete(llhttp_t*) {
  return HPE_PAUSED;  // one response per request: the rest is the next's
}

class Bench {
 public:
  Bench(std::string url, McpHttpBenchOptions options)
      : url_(std::move(url)), options_(std::move(options)) {
    llhttp_settings_init(&settings_);
    settings_.on_header_field = &OnHeaderField;
    settings_.on_header_value = &OnHeaderValue;
    settings_.on_headers_complete = &OnHeadersComplete;
    settings_.on_body = &OnBody;
    settings_.on_message_complete = &OnMessageComplete;
  }

  int Run() {
    std::signal(SIGPIPE, SIG_IGN);
    if (!ParseUrl(url_, &target_)) {
      std::fprintf(stderr,
                   "cde-bench: --mcp-http wants http://HOST:PORT/PATH, "
                   "not '%s'\n",
                   url_.c_str());
      return 1;
    }
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    const int clients = std::min(options_.concurrency, options_.sagas);
    to_start_ = options_.sagas;
    for (int i = 0; i < clients; ++i) {
      auto s = std::make_unique<Session>();
      if (!Connect(*s)) {
        std::fprintf(stderr, "cde-bench: cannot connect to %s: %s\n",
                     url_.c_str(), std::strerror(errno));
        return 1;
      }
      sessions_.push_back(std::move(s));
      Send(*sessions_.back(), Initialize());
    }
    bool registered = false;
    std::vector<epoll_event> events(64);
    for (;;) {
      if (t0_ == Clock::time_point() && ready_ == clients && registered) {
        // Every session is initialized and the workflow exists: go.
        t0_ = Clock::now();
        for (auto& s : sessions_) StartNext(*s);
      }
      if (active_ == 0) break;
      const int n = epoll_wait(epoll_fd_, events.data(),
                               static_cast<int>(events.size()), 10000);
      if (n == 0) {
        Fail("no answer for 10 s");
        break;
      }
      for (int i = 0; i < n; ++i) {
        auto* s = static_cast<Session*>(events[i].data.ptr);
        if (events[i].events & EPOLLOUT) Flush(*s);
        if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
          Read(*s, &registered);
        }
      }
    }
    if (t0_ == Clock::time_point()) {
      std::fprintf(stderr, "cde-bench: could not set up the MCP sessions\n");
      return 1;
    }
    const double seconds =
        std::chrono::duration<double>(Clock::now() - t0_).count();
    sessions_.clear();
    close(epoll_fd_);
    Report(seconds);
    return errors_ == 0 && finished_ == options_.sagas ? 0 : 1;
  }

 private:
  // A blocking connect before the clock starts; non-blocking after.
  bool Connect(Session& s) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(target_.host.c_str(), target_.port.c_str(), &hints,
                    &found) != 0) {
      errno = EINVAL;
      return false;
    }
    for (addrinfo* a = found; a != nullptr && s.fd < 0; a = a->ai_next) {
      s.fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
      if (s.fd >= 0 && connect(s.fd, a->ai_addr, a->ai_addrlen) != 0) {
        close(s.fd);
        s.fd = -1;
      }
    }
    freeaddrinfo(found);
    if (s.fd < 0) return false;
    const int one = 1;
    setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(s.fd, F_SETFL, fcntl(s.fd, F_GETFL) | O_NONBLOCK);
    llhttp_init(&s.parser, HTTP_RESPONSE, &settings_);
    s.parser.data = &s;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &s;
    return epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, s.fd, &ev) == 0;
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

  void Send(Session& s, const std::string& body) {
    std::string& out = s.pending_out;
    out = "POST " + target_.path + " HTTP/1.1\r\nHost: " + target_.host + ":" +
          target_.port +
          "\r\nContent-Type: application/json\r\n"
          "Accept: application/json, text/event-stream\r\n";
    if (!options_.token.empty()) {
      out += "Authorization: Bearer " + options_.token + "\r\n";
    }
    if (!s.session_id.empty()) {
      out += "Mcp-Session-Id: " + s.session_id + "\r\n";
    }
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    out += body;
    s.status = 0;
    s.body.clear();
    s.in_flight = true;
    ++active_;
    Flush(s);
  }

  // Writes what the socket takes; waits for EPOLLOUT for the rest.
  void Flush(Session& s) {
    while (!s.pending_out.empty()) {
      const ssize_t n =
          send(s.fd, s.pending_out.data(), s.pending_out.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) return Drop(s, std::string("send: ") + std::strerror(errno));
      s.pending_out.erase(0, static_cast<size_t>(n));
    }
    // Tell epoll only when waiting for EPOLLOUT starts or stops.
    const bool want_out = !s.pending_out.empty();
    if (want_out != s.watching_out) {
      epoll_event ev{};
      ev.events = want_out ? EPOLLIN | EPOLLOUT : EPOLLIN;
      ev.data.ptr = &s;
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, s.fd, &ev);
      s.watching_out = want_out;
    }
  }

  void Read(Session& s, bool* registered) {
    char buf[16384];
    for (;;) {
      const ssize_t n = recv(s.fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) {
        return Drop(s, n == 0 ? "the server closed the connection"
                              : std::string("recv: ") + std::strerror(errno));
      }
      const llhttp_errno_t err =
          llhttp_execute(&s.parser, buf, static_cast<size_t>(n));
      if (err == HPE_PAUSED) {
        llhttp_resume(&s.parser);
        OnDone(s, registered);
        return;  // nothing follows an answer but the next request's
      }
      if (err != HPE_OK) {
        return Drop(
            s, std::string("bad HTTP response: ") + llhttp_errno_name(err));
      }
    }
  }

  // A connection that failed drops out with the request it carried.
  void Drop(Session& s, const std::string& why) {
    Fail(why);
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, s.fd, nullptr);
    close(s.fd);
    s.fd = -1;
    if (s.in_flight) {
      s.in_flight = false;
      --active_;
    }
  }

  void Fail(const std::string& why) {
    if (++errors_ <= 5) std::fprintf(stderr, "cde-bench: %s\n", why.c_str());
  }

  void OnDone(Session& s, bool* registered) {
    s.in_flight = false;
    --active_;
    if (s.status != 200 && s.status != 202) {
      Fail("HTTP " + std::to_string(s.status) + ": " + s.body.substr(0, 300));
      if (s.step < 2) return;  // a session that cannot start drops out
      return StartNext(s);
    }
    if (s.step == 0) {
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
    const ToolAnswer answer = ReadToolAnswer(s.body);
    if (!answer.valid || answer.is_error) {
      Fail("tool call failed: " + s.body.substr(0, 300));
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
    if (to_start_ == 0 || s.fd < 0) return;
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
  Target target_;
  llhttp_settings_t settings_;
  int epoll_fd_ = -1;
  std::vector<std::unique_ptr<Session>> sessions_;
  int active_ = 0;  // requests in flight
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
