// Fuzzes the HTTP request parsing of api/http_server.cc (llhttp and the
// server's own header, body, limit, pipelining and connection handling)
// through a real HttpServer on 127.0.0.1, as a client would reach it.
//
// Each input is the byte stream of one connection: a client on the same
// libuv loop connects, writes it (in one to three pieces, cut where a hash
// of the input says, so that llhttp's partial spans are exercised), shuts
// its write side down and reads until the server closes. Checks:
//   - every request the handler sees is sane: a method, a path without
//     query or fragment, lower-case header names, a body within
//     max_body_bytes, a request line and headers within max_header_bytes;
//   - what the server sends back is valid HTTP/1.1 (parsed by llhttp as
//     responses), one final response per request handled, plus at most one
//     error response (400, 413 or 431) at the end;
//   - the server closes the connection once the client has shut its side
//     and every request is answered (no hang, no leaked connection).
// The handler answers by path, to exercise the server's response paths:
// /later (from a timer), /stream (a streamed body), /close (Connection:
// close), /throw (the handler throws: 500), /twice (Respond twice), /204,
// anything else at once.
#include <llhttp.h>
#include <uv.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_server.h"

namespace {

using namespace cde;

constexpr size_t kMaxBody = 1024;
constexpr size_t kMaxHeader = 1024;
constexpr auto kDeadline = std::chrono::seconds(3);

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_http_request: %s: %s\n", what, detail.c_str());
  std::abort();
}

// Runs `fn` on the next loop iteration.
void Soon(uv_loop_t* loop, std::function<void()> fn) {
  struct Later {
    uv_timer_t timer;
    std::function<void()> fn;
  };
  auto* later = new Later{{}, std::move(fn)};
  uv_timer_init(loop, &later->timer);
  later->timer.data = later;
  uv_timer_start(
      &later->timer,
      [](uv_timer_t* t) {
        auto* l = static_cast<Later*>(t->data);
        l->fn();
        uv_close(reinterpret_cast<uv_handle_t*>(t),
                 [](uv_handle_t* h) { delete static_cast<Later*>(h->data); });
      },
      0, 0);
}

void CheckRequest(const HttpRequest& r) {
  if (r.method.empty()) Fail("request", "no method");
  if (r.path.find_first_of("?#") != std::string::npos) {
    Fail("request", "path with a query or fragment: " + r.path);
  }
  if (r.target.find(r.path) == std::string::npos && r.path != "/") {
    Fail("request", "path '" + r.path + "' not in target '" + r.target + "'");
  }
  size_t header_bytes = r.target.size();
  for (const auto& [name, value] : r.headers) {
    for (char c : name) {
      if (std::isupper(static_cast<unsigned char>(c))) {
        Fail("request", "header name not lower-case: " + name);
      }
    }
    // The server counts name + 4 per header line and every value byte;
    // repeated headers are joined with ", ", which it does not count.
    size_t joins = 0;
    for (size_t at = value.find(", "); at != std::string::npos;
         at = value.find(", ", at + 2)) {
      ++joins;
    }
    header_bytes += name.size() + 4 + value.size() - 2 * joins;
  }
  if (header_bytes > kMaxHeader) {
    Fail("request", "headers of " + std::to_string(header_bytes) +
                        " bytes passed the limit");
  }
  if (r.body.size() > kMaxBody) Fail("request", "body over the limit");
}

struct Exchange {
  std::vector<std::string> handled;  // methods of the requests handled
  // A streamed response was cut short: the server closes a stream when the
  // client shuts its side (it left), so the body ends without its last
  // chunk. Shared with the stream's timer, which may outlive the input.
  std::shared_ptr<bool> stream_cut = std::make_shared<bool>(false);
};
Exchange* current = nullptr;

void Handle(uv_loop_t* loop, const HttpRequest& r,
            HttpServer::Respond respond) {
  CheckRequest(r);
  current->handled.push_back(r.method);
  HttpResponse response{.status = 200,
                        .headers = {{"Content-Type", "text/plain"}},
                        .body = r.method + " " + r.path + " " +
                                std::to_string(r.body.size()) + "\n"};
  const std::string& p = r.path;
  if (p.starts_with("/later")) {
    Soon(loop, [respond, response] { respond(response); });
  } else if (p.starts_with("/stream")) {
    response.on_stream =
        [loop, cut = current->stream_cut](std::shared_ptr<HttpStream> stream) {
          stream->Write("data: one\n\n");
          Soon(loop, [stream, cut] {
            if (!stream->open()) {
              *cut = true;
              return;
            }
            stream->Write("data: two\n\n");
            stream->End();
          });
        };
    respond(std::move(response));
  } else if (p.starts_with("/close")) {
    response.headers.emplace_back("Connection", "close");
    respond(std::move(response));
  } else if (p.starts_with("/throw")) {
    throw std::runtime_error("handler failed on purpose");
  } else if (p.starts_with("/twice")) {
    respond(response);
    respond(response);
  } else if (p.starts_with("/204")) {
    respond(HttpResponse{.status = 204});
  } else {
    respond(std::move(response));
  }
}

struct Fixture {
  uv_loop_t loop;
  std::unique_ptr<HttpServer> server;
  Fixture() {
    uv_loop_init(&loop);
    auto s = HttpServer::Listen(
        &loop,
        HttpServerOptions{.host = "127.0.0.1",
                          .port = 0,
                          .max_body_bytes = kMaxBody,
                          .max_header_bytes = kMaxHeader,
                          .idle_timeout_ms = 10000},
        [this](const HttpRequest& r, HttpServer::Respond respond) {
          Handle(&loop, r, std::move(respond));
        });
    if (!s.ok()) Fail("Listen", s.status().ToString());
    server = std::move(s).value();
  }
};

// The client end of one connection.
struct Client {
  uv_tcp_t tcp;
  uv_connect_t connect;
  bool connected = false;
  bool eof = false;
  bool reset = false;  // the server reset the connection
  bool closed = false;
  std::string received;
  char buffer[16 << 10];
};

// Parses what the server sent as HTTP responses.
struct ResponseCheck {
  const std::vector<std::string>* handled;
  size_t finals = 0;  // final (non-1xx) responses seen
  int status = 0;
  std::vector<int> statuses;

  static int OnHeadersComplete(llhttp_t* p) {
    auto* self = static_cast<ResponseCheck*>(p->data);
    self->status = p->status_code;
    if (self->status >= 100 && self->status < 200) return 0;
    // A response to HEAD has a Content-Length but no body.
    if (self->finals < self->handled->size() &&
        (*self->handled)[self->finals] == "HEAD") {
      return 1;
    }
    return 0;
  }
  static int OnMessageComplete(llhttp_t* p) {
    auto* self = static_cast<ResponseCheck*>(p->data);
    if (self->status >= 200) {
      ++self->finals;
      self->statuses.push_back(self->status);
    }
    return 0;
  }
};

void CheckResponses(const std::string& bytes,
                    const std::vector<std::string>& handled, bool cut) {
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_headers_complete = &ResponseCheck::OnHeadersComplete;
  settings.on_message_complete = &ResponseCheck::OnMessageComplete;
  llhttp_t parser;
  llhttp_init(&parser, HTTP_RESPONSE, &settings);
  ResponseCheck check{&handled};
  parser.data = &check;
  llhttp_errno_t err = llhttp_execute(&parser, bytes.data(), bytes.size());
  if (err == HPE_OK) err = llhttp_finish(&parser);
  if (cut && err == HPE_INVALID_EOF_STATE) {
    // The last response is the stream that was cut: every one before it
    // is complete.
    if (check.finals + 1 != handled.size()) {
      Fail("responses", std::to_string(check.finals) +
                            " complete responses before a cut stream, " +
                            std::to_string(handled.size()) +
                            " requests handled:\n" + bytes);
    }
    return;
  }
  if (err != HPE_OK) {
    Fail("server sent invalid HTTP", std::string(llhttp_errno_name(err)) + " " +
                                         llhttp_get_error_reason(&parser) +
                                         " in:\n" + bytes);
  }
  if (check.finals < handled.size() || check.finals > handled.size() + 1) {
    Fail("responses", std::to_string(check.finals) + " responses to " +
                          std::to_string(handled.size()) +
                          " handled requests:\n" + bytes);
  }
  if (check.finals == handled.size() + 1) {
    const int last = check.statuses.back();
    if (last != 400 && last != 413 && last != 431) {
      Fail("responses", "an extra response " + std::to_string(last));
    }
  }
}

uint32_t Hash(std::string_view s) {
  uint32_t h = 2166136261u;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  return h;
}

// Where to cut `input` into pieces: one to three, chosen by its hash.
std::vector<std::string_view> Pieces(std::string_view input) {
  std::vector<std::string_view> pieces;
  const uint32_t h = Hash(input);
  std::vector<size_t> cuts;
  const int extra = static_cast<int>(h % 3);
  for (int i = 0; i < extra && input.size() > 1; ++i) {
    cuts.push_back(1 + ((h >> (8 + 8 * i)) & 0xff) * (input.size() - 1) / 256);
  }
  std::sort(cuts.begin(), cuts.end());
  size_t from = 0;
  for (size_t cut : cuts) {
    if (cut > from) pieces.push_back(input.substr(from, cut - from));
    from = std::max(from, cut);
  }
  pieces.push_back(input.substr(from));
  return pieces;
}

void RunUntil(uv_loop_t* loop, const std::function<bool()>& done,
              const char* what) {
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) Fail("hang", what);
    uv_run(loop, UV_RUN_NOWAIT);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fx = new Fixture();
  uv_loop_t* loop = &fx->loop;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  Exchange exchange;
  current = &exchange;
  Client client;
  uv_tcp_init(loop, &client.tcp);
  client.tcp.data = &client;
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", fx->server->port(), &addr);
  client.connect.data = &client;
  if (uv_tcp_connect(&client.connect, &client.tcp,
                     reinterpret_cast<const sockaddr*>(&addr),
                     [](uv_connect_t* req, int status) {
                       if (status != 0) {
                         Fail("connect", uv_strerror(status));
                       }
                       static_cast<Client*>(req->data)->connected = true;
                     }) != 0) {
    Fail("connect", "uv_tcp_connect");
  }
  RunUntil(
      loop,
      [&] { return client.connected && fx->server->connection_count() == 1; },
      "connect");
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&client.tcp),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* c = static_cast<Client*>(h->data);
        *buf = uv_buf_init(c->buffer, sizeof(c->buffer));
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* c = static_cast<Client*>(s->data);
        if (n > 0) c->received.append(buf->base, static_cast<size_t>(n));
        if (n == UV_EOF) c->eof = true;
        if (n < 0 && n != UV_EOF) {
          if (n != UV_ECONNRESET) Fail("client read", uv_strerror(n));
          c->reset = true;
        }
        if (n < 0) uv_read_stop(s);
      });

  // Writes are synchronous on a fresh socket with room in its buffer; the
  // loop runs between pieces so the server reads each one on its own.
  for (std::string_view piece : Pieces(input)) {
    if (piece.empty()) continue;
    uv_buf_t buf = uv_buf_init(const_cast<char*>(piece.data()),
                               static_cast<unsigned>(piece.size()));
    const int rc =
        uv_try_write(reinterpret_cast<uv_stream_t*>(&client.tcp), &buf, 1);
    // The server may have answered and closed already (a bad request).
    if (rc < 0 && rc != UV_EPIPE && rc != UV_ECONNRESET) {
      Fail("client write", uv_strerror(rc));
    }
    if (rc >= 0 && static_cast<size_t>(rc) != piece.size()) {
      Fail("client write", "short write");
    }
    uv_run(loop, UV_RUN_NOWAIT);
    uv_run(loop, UV_RUN_NOWAIT);
  }
  auto* shutdown = new uv_shutdown_t;
  if (uv_shutdown(shutdown, reinterpret_cast<uv_stream_t*>(&client.tcp),
                  [](uv_shutdown_t* req, int) { delete req; }) != 0) {
    delete shutdown;
  }
  RunUntil(
      loop, [&] { return client.eof || client.reset; },
      "the server never closed the connection");
  uv_close(reinterpret_cast<uv_handle_t*>(&client.tcp), [](uv_handle_t* h) {
    static_cast<Client*>(h->data)->closed = true;
  });
  RunUntil(
      loop,
      [&] { return client.closed && fx->server->connection_count() == 0; },
      "the server kept the connection after the client left");
  // Timers of /later and /stream that outlived their connection.
  uv_run(loop, UV_RUN_NOWAIT);
  current = nullptr;
  if (!client.reset) {
    CheckResponses(client.received, exchange.handled, *exchange.stream_cut);
  }
  return 0;
}
