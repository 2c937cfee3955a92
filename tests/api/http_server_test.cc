// HttpServer over real sockets: the server runs on a libuv loop in a
// background thread; the tests talk to it with blocking POSIX sockets (and
// once with libcurl) from the test thread.
#include "api/http_server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/inbox.h"
#include "tests/test_util.h"
#include "tools/server_process.h"

namespace cde {
namespace {

using ::testing::HasSubstr;
using SteadyClock = std::chrono::steady_clock;

int64_t MsSince(SteadyClock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             SteadyClock::now() - start)
      .count();
}

// Calls `respond` with `response` after `ms`, from a one-shot timer on the
// loop thread: what an async handler does.
void RespondLater(uv_loop_t* loop, uint64_t ms, HttpServer::Respond respond,
                  HttpResponse response) {
  struct Later {
    uv_timer_t timer;
    HttpServer::Respond respond;
    HttpResponse response;
  };
  auto* later = new Later{{}, std::move(respond), std::move(response)};
  uv_timer_init(loop, &later->timer);
  later->timer.data = later;
  uv_timer_start(
      &later->timer,
      [](uv_timer_t* timer) {
        auto* l = static_cast<Later*>(timer->data);
        l->respond(std::move(l->response));
        uv_close(reinterpret_cast<uv_handle_t*>(timer),
                 [](uv_handle_t* h) { delete static_cast<Later*>(h->data); });
      },
      ms, 0);
}

// A server on its own loop thread. The handler runs on that thread.
class ServerThread {
 public:
  explicit ServerThread(HttpServer::Handler handler,
                        HttpServerOptions options = {}) {
    uv_loop_init(&loop_);
    options.port = 0;
    auto server = HttpServer::Listen(&loop_, options, std::move(handler));
    EXPECT_OK(server.status());
    if (server.ok()) server_ = std::move(server).value();
    inbox_ = Inbox::Create(&loop_);
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }

  ~ServerThread() {
    if (thread_.joinable()) {
      EXPECT_EQ(Stop(), 0);
    }
  }

  uv_loop_t* loop() { return &loop_; }
  int port() const { return server_ ? server_->port() : 0; }

  // Runs `fn` on the loop thread and waits for it.
  template <typename Fn>
  auto OnLoop(Fn fn) {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    decltype(fn()) result{};
    inbox_->Post([&] {
      result = fn();
      std::lock_guard lock(mu);
      done = true;
      cv.notify_one();
    });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
    return result;
  }

  size_t Connections() {
    return OnLoop([this] { return server_->connection_count(); });
  }

  // Closes the server (and every connection) on the loop thread, waits for
  // the loop to run dry, and returns uv_loop_close().
  int Stop() {
    inbox_->Post([this] {
      if (server_) server_->Close([this] { closed_ = true; });
      inbox_->Close(nullptr);
    });
    thread_.join();
    if (server_) {
      EXPECT_TRUE(closed_);
    }
    server_.reset();
    return uv_loop_close(&loop_);
  }

 private:
  uv_loop_t loop_;
  std::unique_ptr<HttpServer> server_;
  std::shared_ptr<Inbox> inbox_;
  bool closed_ = false;
  std::thread thread_;
};

// One parsed response.
struct Reply {
  bool ok = false;  // a complete response arrived
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// A blocking client socket with a 5 s receive timeout.
class Client {
 public:
  explicit Client(int port) {
    fd_ = test::ConnectLoopback(port);
    connected_ = fd_ >= 0;
  }
  ~Client() { Close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  // Closes with a RST instead of a FIN.
  void Abort() {
    linger l{.l_onoff = 1, .l_linger = 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    Close();
  }

  bool Send(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n =
          send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // The status line and headers only (ok once they are complete).
  Reply ReadHead() {
    Reply reply;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return reply;
    }
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0) return reply;
    reply.status = std::stoi(status_line.substr(9, 3));
    size_t pos = line_end;
    while (pos != std::string::npos && pos < head.size()) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line =
          head.substr(pos + 2, next == std::string::npos ? std::string::npos
                                                         : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(c));
        reply.headers[name] = line.substr(colon + 2);
      }
      pos = next;
    }
    reply.ok = true;
    return reply;
  }

  Reply Read() {
    Reply reply = ReadHead();
    if (!reply.ok) return reply;
    reply.ok = false;
    if (reply.headers["transfer-encoding"] == "chunked") {
      for (;;) {
        std::string chunk;
        if (!ReadChunk(&chunk)) return reply;
        if (chunk.empty()) break;
        reply.body += chunk;
      }
      reply.ok = true;
      return reply;
    }
    size_t length = reply.headers.count("content-length")
                        ? std::stoul(reply.headers["content-length"])
                        : 0;
    while (buf_.size() < length) {
      if (!Fill()) return reply;
    }
    reply.body = buf_.substr(0, length);
    buf_.erase(0, length);
    reply.ok = true;
    return reply;
  }

  // One chunk of a chunked body ("" for the last one); false on a
  // malformed chunk or a timeout.
  bool ReadChunk(std::string* chunk) {
    size_t eol;
    while ((eol = buf_.find("\r\n")) == std::string::npos) {
      if (!Fill()) return false;
    }
    const size_t size = std::stoul(buf_.substr(0, eol), nullptr, 16);
    while (buf_.size() < eol + 2 + size + 2) {
      if (!Fill()) return false;
    }
    if (buf_.compare(eol + 2 + size, 2, "\r\n") != 0) return false;
    *chunk = buf_.substr(eol + 2, size);
    buf_.erase(0, eol + 2 + size + 2);
    return true;
  }

  // True when the server closes the connection (FIN or RST) within the
  // receive timeout with nothing more to read.
  bool WaitClosed() {
    char c;
    ssize_t n = recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool Fill() {
    char chunk[4096];
    ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buf_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

// Records every request and answers "<method> <target> <body>".
class Recorder {
 public:
  HttpServer::Handler Handler() {
    return [this](const HttpRequest& request, HttpServer::Respond respond) {
      {
        std::lock_guard lock(mu_);
        requests_.push_back(request);
      }
      respond(HttpResponse{
          .status = 200,
          .headers = {{"Content-Type", "text/plain"}},
          .body = request.method + " " + request.target + " " + request.body});
    };
  }
  std::vector<HttpRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  std::mutex mu_;
  std::vector<HttpRequest> requests_;
};

std::string Get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n";
}

std::string Post(const std::string& target, const std::string& body) {
  return "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(HttpServerTest, GetAndPostReachTheHandlerExactly) {
  Recorder recorder;
  ServerThread server(recorder.Handler());
  Client client(server.port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send(Get("/hello/world?x=1&y=2", "X-Test: One\r\n")));
  Reply get = client.Read();
  ASSERT_TRUE(get.ok);
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, "GET /hello/world?x=1&y=2 ");
  EXPECT_EQ(get.headers["content-type"], "text/plain");
  EXPECT_EQ(get.headers["content-length"], "25");

  std::string body("binary\0body\r\n\xff", 14);
  ASSERT_TRUE(client.Send(Post("/echo", body)));
  Reply post = client.Read();
  ASSERT_TRUE(post.ok);
  EXPECT_EQ(post.body, "POST /echo " + body);

  std::vector<HttpRequest> seen = recorder.requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].target, "/hello/world?x=1&y=2");
  EXPECT_EQ(seen[0].path, "/hello/world");
  EXPECT_EQ(seen[0].header("x-test"), "One");
  EXPECT_EQ(seen[0].header("host"), "x");
  EXPECT_EQ(seen[0].header("absent"), "");
  EXPECT_EQ(seen[0].body, "");
  EXPECT_EQ(seen[1].method, "POST");
  EXPECT_EQ(seen[1].path, "/echo");
  EXPECT_EQ(seen[1].body, body);
  EXPECT_EQ(seen[1].header("content-length"), "14");
}

TEST(HttpServerTest, RequestSplitIntoSingleBytesIsParsed) {
  Recorder recorder;
  ServerThread server(recorder.Handler());
  Client client(server.port());
  std::string request = Post("/slowly", "abcdef");
  for (char c : request) {
    ASSERT_TRUE(client.Send(std::string(1, c)));
  }
  Reply reply = client.Read();
  ASSERT_TRUE(reply.ok);
  EXPECT_EQ(reply.body, "POST /slowly abcdef");
}

TEST(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  Recorder recorder;
  ServerThread server(recorder.Handler());
  Client client(server.port());
  ASSERT_TRUE(client.Send(Get("/one")));
  Reply first = client.Read();
  ASSERT_TRUE(first.ok);
  EXPECT_EQ(first.headers.count("connection"), 0u);
  ASSERT_TRUE(client.Send(Get("/two")));
  Reply second = client.Read();
  ASSERT_TRUE(second.ok);
  EXPECT_EQ(second.body, "GET /two ");
  EXPECT_EQ(server.Connections(), 1u);
}

TEST(HttpServerTest, ConnectionCloseIsHonoured) {
  Recorder recorder;
  ServerThread server(recorder.Handler());
  Client client(server.port());
  ASSERT_TRUE(client.Send(Get("/bye", "Connection: close\r\n")));
  Reply reply = client.Read();
  ASSERT_TRUE(reply.ok);
  EXPECT_EQ(reply.headers["connection"], "close");
  EXPECT_TRUE(client.WaitClosed());
}

TEST(HttpServerTest, Http10ClosesUnlessKeepAlive) {
  Recorder recorder;
  ServerThread server(recorder.Handler());
  {
    Client client(server.port());
    ASSERT_TRUE(client.Send("GET /old HTTP/1.0\r\n\r\n"));
    Reply reply = client.Read();
    ASSERT_TRUE(reply.ok);
    EXPECT_EQ(reply.headers["connection"], "close");
    EXPECT_TRUE(client.WaitClosed());
  }
  Client client(server.port());
  ASSERT_TRUE(client.Send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  Reply reply = client.Read();
  ASSERT_TRUE(reply.ok);
  EXPECT_EQ(reply.headers["connection"], "keep-alive");
  ASSERT_TRUE(client.Send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_EQ(client.Read().body, "GET /b ");
}

TEST(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  uv_loop_t* loop = nullptr;
  // "/slow" answers 50 ms later: the two after it must still come second
  // and third.
  ServerThread server(
      [&](const HttpRequest& request, HttpServer::Respond respond) {
        HttpResponse response{.body = request.path + ":" + request.body};
        if (request.path == "/slow") {
          RespondLater(loop, 50, std::move(respond), std::move(response));
        } else {
          respond(std::move(response));
        }
      });
  loop = server.loop();
  Client client(server.port());
  ASSERT_TRUE(
      client.Send(Get("/slow") + Post("/fast1", "body1") + Get("/fast2")));
  EXPECT_EQ(client.Read().body, "/slow:");
  EXPECT_EQ(client.Read().body, "/fast1:body1");
  EXPECT_EQ(client.Read().body, "/fast2:");
}

TEST(HttpServerTest, ChunkedRequestBodyIsDecoded) {
  Recorder recorder;
  ServerThread server(recorder.Handler());
  Client client(server.port());
  ASSERT_TRUE(client.Send(
      "POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"));
  Reply reply = client.Read();
  ASSERT_TRUE(reply.ok);
  EXPECT_EQ(reply.body, "POST /chunks hello world");
  // The connection stays usable after a chunked request.
  ASSERT_TRUE(client.Send(Get("/after")));
  EXPECT_EQ(client.Read().body, "GET /after ");
}

TEST(HttpServerTest, ExpectContinueGets100BeforeTheBody) {
  Recorder recorder;
  ServerThread server(recorder.Handler());
  Client client(server.port());
  ASSERT_TRUE(
      client.Send("POST /big HTTP/1.1\r\nContent-Length: 4\r\n"
                  "Expect: 100-continue\r\n\r\n"));
  Reply interim = client.Read();
  ASSERT_TRUE(interim.ok);
  EXPECT_EQ(interim.status, 100);
  ASSERT_TRUE(client.Send("data"));
  Reply reply = client.Read();
  ASSERT_TRUE(reply.ok);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "POST /big data");
}

TEST(HttpServerTest, AsyncHandlerRespondsLater) {
  uv_loop_t* loop = nullptr;
  ServerThread server([&](const HttpRequest& request,
                          HttpServer::Respond respond) {
    RespondLater(loop, 50, std::move(respond),
                 HttpResponse{.status = 202, .body = "later " + request.path});
  });
  loop = server.loop();
  Client client(server.port());
  SteadyClock::time_point start = SteadyClock::now();
  ASSERT_TRUE(client.Send(Get("/wait")));
  Reply reply = client.Read();
  ASSERT_TRUE(reply.ok);
  EXPECT_GE(MsSince(start), 45);
  EXPECT_EQ(reply.status, 202);
  EXPECT_EQ(reply.body, "later /wait");
}

TEST(HttpServerTest, MalformedRequestGets400AndClose) {
  Recorder recorder;
  ServerThread server(recorder.Handler());
  Client client(server.port());
  ASSERT_TRUE(client.Send("NOT A REQUEST\r\n\r\n"));
  Reply reply = client.Read();
  ASSERT_TRUE(reply.ok);
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("HPE_"));
  EXPECT_EQ(reply.headers["connection"], "close");
  EXPECT_TRUE(client.WaitClosed());
  EXPECT_TRUE(recorder.requests().empty());
}

TEST(HttpServerTest, BadHeaderAfterGoodRequestAnswersTheGoodOneFirst) {
  Recorder recorder;
  ServerThread server(recorder.Handler());
  Client client(server.port());
  ASSERT_TRUE(
      client.Send(Get("/ok") + "GET /bad HTTP/1.1\r\nBad Header\r\n\r\n"));
  EXPECT_EQ(client.Read().body, "GET /ok ");
  Reply reply = client.Read();
  ASSERT_TRUE(reply.ok);
  EXPECT_EQ(reply.status, 400);
  EXPECT_TRUE(client.WaitClosed());
}

TEST(HttpServerTest, OversizeBodyGets413AndClose) {
  Recorder recorder;
  ServerThread server(recorder.Handler(), {.max_body_bytes = 1000});
  {
    Client client(server.port());
    ASSERT_TRUE(client.Send(Post("/big", std::string(5000, 'x'))));
    Reply reply = client.Read();
    ASSERT_TRUE(reply.ok);
    EXPECT_EQ(reply.status, 413);
    EXPECT_TRUE(client.WaitClosed());
  }
  {
    // Chunked: no size up front, the limit trips while decoding.
    Client client(server.port());
    std::string chunk(600, 'y');
    ASSERT_TRUE(client.Send(
        "POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n" +
        chunk + "\r\n258\r\n" + chunk + "\r\n0\r\n\r\n"));
    Reply reply = client.Read();
    ASSERT_TRUE(reply.ok);
    EXPECT_EQ(reply.status, 413);
    EXPECT_TRUE(client.WaitClosed());
  }
  // Exactly at the limit is fine.
  Client client(server.port());
  ASSERT_TRUE(client.Send(Post("/fits", std::string(1000, 'z'))));
  EXPECT_EQ(client.Read().status, 200);
  EXPECT_EQ(recorder.requests().size(), 1u);
}

TEST(HttpServerTest, TooLargeHeadersGet431AndClose) {
  Recorder recorder;
  ServerThread server(recorder.Handler(), {.max_header_bytes = 1024});
  Client client(server.port());
  ASSERT_TRUE(
      client.Send(Get("/", "X-Big: " + std::string(2000, 'h') + "\r\n")));
  Reply reply = client.Read();
  ASSERT_TRUE(reply.ok);
  EXPECT_EQ(reply.status, 431);
  EXPECT_TRUE(client.WaitClosed());
  EXPECT_TRUE(recorder.requests().empty());
}

TEST(HttpServerTest, IdleConnectionCloses) {
  Recorder recorder;
  // Long enough for the client below to send its request in time on a
  // loaded machine.
  ServerThread server(recorder.Handler(), {.idle_timeout_ms = 1000});
  {
    const SteadyClock::time_point start =
        SteadyClock::now();  // before the accept
    Client client(server.port());
    EXPECT_TRUE(client.WaitClosed());
    EXPECT_GE(MsSince(start), 990);
  }
  // Also idle after a request was answered.
  Client client(server.port());
  ASSERT_TRUE(client.Send(Get("/x")));
  ASSERT_TRUE(client.Read().ok);
  EXPECT_TRUE(client.WaitClosed());
}

TEST(HttpServerTest, SlowHandlerIsNotIdle) {
  uv_loop_t* loop = nullptr;
  ServerThread server(
      [&](const HttpRequest&, HttpServer::Respond respond) {
        RespondLater(loop, 3000, std::move(respond),
                     HttpResponse{.body = "ok"});
      },
      {.idle_timeout_ms = 1000});
  loop = server.loop();
  Client client(server.port());
  ASSERT_TRUE(client.Send(Get("/slow")));
  Reply reply = client.Read();
  ASSERT_TRUE(reply.ok);
  EXPECT_EQ(reply.body, "ok");
}

TEST(HttpServerTest, ClientGoneBeforeAsyncRespondIsSafe) {
  std::atomic<int> seen{0};
  std::vector<HttpServer::Respond> held;  // loop thread only
  ServerThread server(
      [&](const HttpRequest& request, HttpServer::Respond respond) {
        if (request.path == "/now") {
          respond(HttpResponse{.body = "alive"});
          return;
        }
        held.push_back(std::move(respond));  // answered once the clients left
        ++seen;
      });
  {
    Client fin(server.port());
    ASSERT_TRUE(fin.Send(Get("/late")));
    Client rst(server.port());
    ASSERT_TRUE(rst.Send(Get("/late")));
    // The server has both requests before the clients vanish.
    ASSERT_TRUE(Eventually([&] { return seen.load() == 2; }));
    fin.Close();
    rst.Abort();
  }
  // Respond after the clients have gone, and twice.
  const int responded = server.OnLoop([&] {
    int n = 0;
    for (HttpServer::Respond& respond : held) {
      respond(HttpResponse{.body = "late"});
      respond(HttpResponse{.body = "late"});
      ++n;
    }
    held.clear();
    return n;
  });
  EXPECT_EQ(responded, 2);
  Client client(server.port());
  ASSERT_TRUE(client.Send(Get("/now")));
  EXPECT_EQ(client.Read().body, "alive");
  client.Close();
  // Connections of the vanished clients are gone too.
  EXPECT_TRUE(Eventually([&] { return server.Connections() == 0; }));
}

TEST(HttpServerTest, HalfClosedClientStillGetsItsAnswer) {
  uv_loop_t* loop = nullptr;
  ServerThread server([&](const HttpRequest&, HttpServer::Respond respond) {
    RespondLater(loop, 50, std::move(respond), HttpResponse{.body = "done"});
  });
  loop = server.loop();
  Client client(server.port());
  ASSERT_TRUE(client.Send(Get("/half")));
  shutdown(client.fd(), SHUT_WR);
  Reply reply = client.Read();
  ASSERT_TRUE(reply.ok);
  EXPECT_EQ(reply.body, "done");
  EXPECT_TRUE(client.WaitClosed());
}

TEST(HttpServerTest, HandlerExceptionBecomes500) {
  ServerThread server([](const HttpRequest&, HttpServer::Respond) {
    throw std::runtime_error("boom");
  });
  Client client(server.port());
  ASSERT_TRUE(client.Send(Get("/throw")));
  Reply reply = client.Read();
  ASSERT_TRUE(reply.ok);
  EXPECT_EQ(reply.status, 500);
  EXPECT_THAT(reply.body, HasSubstr("boom"));
}

TEST(HttpServerTest, ResponseHeadersCannotInjectOrOverrideLength) {
  ServerThread server([](const HttpRequest&, HttpServer::Respond respond) {
    respond(HttpResponse{.status = 201,
                         .headers = {{"X-Ok", "yes"},
                                     {"X-Evil", "a\r\nSet-Cookie: x"},
                                     {"Content-Length", "999"}},
                         .body = "abc"});
  });
  Client client(server.port());
  ASSERT_TRUE(client.Send(Get("/")));
  Reply reply = client.Read();
  ASSERT_TRUE(reply.ok);
  EXPECT_EQ(reply.status, 201);
  EXPECT_EQ(reply.headers["x-ok"], "yes");
  EXPECT_EQ(reply.headers.count("x-evil"), 0u);
  EXPECT_EQ(reply.headers.count("set-cookie"), 0u);
  EXPECT_EQ(reply.headers["content-length"], "3");
  EXPECT_EQ(reply.body, "abc");
}

TEST(HttpServerTest, PortAlreadyTakenIsAClearError) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  auto noop = [](const HttpRequest&, HttpServer::Respond respond) {
    respond(HttpResponse{});
  };
  auto first = HttpServer::Listen(&loop, {.port = 0}, noop);
  ASSERT_OK(first.status());
  const int port = (*first)->port();
  auto second = HttpServer::Listen(&loop, {.port = port}, noop);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(),
            "127.0.0.1:" + std::to_string(port) + ": address already in use");

  auto bad_host = HttpServer::Listen(&loop, {.host = "not-an-ip"}, noop);
  EXPECT_TRUE(bad_host.status().IsInvalidArgument());

  bool closed = false;
  (*first)->Close([&] { closed = true; });
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_TRUE(closed);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

TEST(HttpServerTest, CloseWithOpenConnectionsFinishes) {
  std::mutex mu;
  std::vector<HttpServer::Respond> parked;
  std::atomic<int> seen{0};
  auto server = std::make_unique<ServerThread>(
      [&](const HttpRequest&, HttpServer::Respond respond) {
        std::lock_guard lock(mu);
        parked.push_back(std::move(respond));  // never answered
        ++seen;
      });
  Client idle(server->port());
  Client waiting(server->port());
  Client partial(server->port());
  ASSERT_TRUE(waiting.Send(Get("/parked")));
  ASSERT_TRUE(partial.Send("POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nab"));
  ASSERT_TRUE(Eventually([&] { return seen.load() == 1; }));
  EXPECT_TRUE(Eventually([&] { return server->Connections() == 3u; }));
  EXPECT_EQ(seen.load(), 1);

  EXPECT_EQ(server->Stop(), 0);
  EXPECT_TRUE(idle.WaitClosed());
  EXPECT_TRUE(waiting.WaitClosed());
  EXPECT_TRUE(partial.WaitClosed());
  // The loop is gone; a late Respond finds nothing and does nothing.
  parked[0](HttpResponse{.body = "too late"});
}

size_t CurlAppend(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

TEST(HttpServerTest, WorksWithLibcurl) {
  Recorder recorder;
  ServerThread server(recorder.Handler());
  CURL* curl = curl_easy_init();
  ASSERT_NE(curl, nullptr);
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  std::string body;
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &CurlAppend);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);

  curl_easy_setopt(curl, CURLOPT_URL, (base + "/curl?q=1").c_str());
  ASSERT_EQ(curl_easy_perform(curl), CURLE_OK);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(body, "GET /curl?q=1 ");

  // Same handle: curl reuses the kept-alive connection.
  body.clear();
  const std::string payload = std::string(100000, 'p');
  curl_easy_setopt(curl, CURLOPT_URL, (base + "/upload").c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE,
                   static_cast<long>(payload.size()));
  ASSERT_EQ(curl_easy_perform(curl), CURLE_OK);
  EXPECT_EQ(body, "POST /upload " + payload);
  long connects = -1;
  curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects);
  EXPECT_EQ(connects, 0);  // no new connection for the second request
  curl_easy_cleanup(curl);
  EXPECT_EQ(recorder.requests().size(), 2u);
}

// Random bytes, and random mutations of a valid request, on many
// connections: every one ends with a response or a close, and the server
// still answers afterwards.
TEST(HttpServerTest, GarbageNeverCrashes) {
  Recorder recorder;
  ServerThread server(recorder.Handler(),
                      {.max_body_bytes = 4096, .max_header_bytes = 4096});
  std::mt19937 rng(42);
  const std::string valid = Post("/p?q", "hello") + Get("/g", "A: b\r\n") +
                            "POST /c HTTP/1.1\r\nTransfer-Encoding: "
                            "chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  for (int i = 0; i < 200; ++i) {
    std::string input = valid;
    if (i % 2 == 0) {
      for (int k = 0; k < 1 + i % 7; ++k) {
        input[rng() % input.size()] = static_cast<char>(rng() % 256);
      }
    } else {
      input.resize(rng() % 300);
      for (char& c : input) c = static_cast<char>(rng() % 256);
    }
    Client client(server.port());
    ASSERT_TRUE(client.connected());
    client.Send(input);
    shutdown(client.fd(), SHUT_WR);
    // Drain until the server closes; no response may be malformed.
    while (true) {
      Reply reply = client.Read();
      if (!reply.ok) break;
      EXPECT_GE(reply.status, 200);
    }
  }
  Client client(server.port());
  ASSERT_TRUE(client.Send(Get("/still-up")));
  EXPECT_EQ(client.Read().body, "GET /still-up ");
}

// A handler that streams: the head and a first part at once, then the
// parts it is told to write from the test thread, on the loop thread.
class Streamer {
 public:
  HttpServer::Handler Handler() {
    return [this](const HttpRequest& request, HttpServer::Respond respond) {
      if (request.path != "/stream") {
        return respond({200, {}, "plain " + request.path});
      }
      HttpResponse r{200, {{"Content-Type", "text/event-stream"}}, "first;"};
      r.on_stream = [this](std::shared_ptr<HttpStream> stream) {
        stream->SetOnClosed([this] { closed_ = true; });
        stream_ = std::move(stream);
      };
      respond(std::move(r));
    };
  }
  std::shared_ptr<HttpStream> stream_;
  std::atomic<bool> closed_{false};
};

TEST(HttpServerTest, StreamedResponseArrivesInPartsThenTheConnectionGoesOn) {
  Streamer streamer;
  ServerThread server(streamer.Handler());
  Client client(server.port());
  ASSERT_TRUE(client.Send(Get("/stream")));
  Reply head = client.ReadHead();
  ASSERT_TRUE(head.ok);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["transfer-encoding"], "chunked");
  EXPECT_EQ(head.headers.count("content-length"), 0u);
  std::string chunk;
  ASSERT_TRUE(client.ReadChunk(&chunk));
  EXPECT_EQ(chunk, "first;");

  EXPECT_TRUE(
      server.OnLoop([&] { return streamer.stream_->Write("second;"); }));
  ASSERT_TRUE(client.ReadChunk(&chunk));
  EXPECT_EQ(chunk, "second;");
  // An empty write must not end the body (an empty chunk would).
  EXPECT_TRUE(server.OnLoop([&] { return streamer.stream_->Write(""); }));
  EXPECT_TRUE(server.OnLoop([&] {
    streamer.stream_->End();
    return !streamer.stream_->open() && !streamer.stream_->Write("late");
  }));
  ASSERT_TRUE(client.ReadChunk(&chunk));
  EXPECT_EQ(chunk, "");
  EXPECT_FALSE(streamer.closed_);

  // The same connection serves the next request.
  ASSERT_TRUE(client.Send(Get("/after")));
  Reply after = client.Read();
  ASSERT_TRUE(after.ok);
  EXPECT_EQ(after.body, "plain /after");
}

TEST(HttpServerTest, PipelinedRequestWaitsForTheStreamToEnd) {
  Streamer streamer;
  ServerThread server(streamer.Handler());
  Client client(server.port());
  ASSERT_TRUE(client.Send(Get("/stream") + Get("/next")));
  Reply head = client.ReadHead();
  ASSERT_TRUE(head.ok);
  std::string chunk;
  ASSERT_TRUE(client.ReadChunk(&chunk));
  server.OnLoop([&] {
    streamer.stream_->Write("more;");
    streamer.stream_->End();
    return 0;
  });
  ASSERT_TRUE(client.ReadChunk(&chunk));
  EXPECT_EQ(chunk, "more;");
  ASSERT_TRUE(client.ReadChunk(&chunk));
  EXPECT_EQ(chunk, "");
  Reply next = client.Read();
  ASSERT_TRUE(next.ok);
  EXPECT_EQ(next.body, "plain /next");
}

TEST(HttpServerTest, ClientLeavingAStreamRunsOnClosedAndWritesFail) {
  Streamer streamer;
  ServerThread server(streamer.Handler());
  {
    Client client(server.port());
    ASSERT_TRUE(client.Send(Get("/stream")));
    ASSERT_TRUE(client.ReadHead().ok);
  }
  ASSERT_TRUE(Eventually([&] { return streamer.closed_.load(); }));
  EXPECT_FALSE(server.OnLoop([&] { return streamer.stream_->Write("x"); }));
  EXPECT_EQ(server.Connections(), 0u);
}

TEST(HttpServerTest, QuietStreamOutlivesTheIdleTimeout) {
  Streamer streamer;
  HttpServerOptions options;
  // Long enough that the request and the first chunk make it on a loaded
  // machine; the stream then stays quiet for three times as long.
  options.idle_timeout_ms = 1000;
  ServerThread server(streamer.Handler(), options);
  Client client(server.port());
  ASSERT_TRUE(client.Send(Get("/stream")));
  ASSERT_TRUE(client.ReadHead().ok);
  std::string chunk;
  ASSERT_TRUE(client.ReadChunk(&chunk));
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  EXPECT_TRUE(server.OnLoop([&] { return streamer.stream_->Write("still"); }));
  ASSERT_TRUE(client.ReadChunk(&chunk));
  EXPECT_EQ(chunk, "still");
  EXPECT_FALSE(streamer.closed_);
}

TEST(HttpServerTest, Http10StreamEndsWithTheConnection) {
  Streamer streamer;
  ServerThread server(streamer.Handler());
  Client client(server.port());
  ASSERT_TRUE(client.Send("GET /stream HTTP/1.0\r\n\r\n"));
  // The handler has run: the stream exists.
  ASSERT_TRUE(Eventually([&] {
    return server.OnLoop([&] { return streamer.stream_ != nullptr; });
  }));
  server.OnLoop([&] {
    streamer.stream_->Write("rest");
    streamer.stream_->End();
    return 0;
  });
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = recv(client.fd(), buf, sizeof(buf), 0)) > 0) all.append(buf, n);
  EXPECT_THAT(all, HasSubstr("Connection: close\r\n"));
  EXPECT_EQ(all.find("Transfer-Encoding"), std::string::npos);
  EXPECT_TRUE(all.ends_with("\r\n\r\nfirst;rest")) << all;
}

}  // namespace
}  // namespace cde
