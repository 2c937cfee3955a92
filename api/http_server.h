// HttpServer: a small HTTP/1.1 server on a libuv loop, parsing with llhttp.
// It is the transport under the MCP Streamable HTTP endpoint; it knows
// nothing of JSON-RPC and hands each complete request to one Handler.
//
// What it does:
//   - keep-alive (HTTP/1.1 by default, HTTP/1.0 only with
//     "Connection: keep-alive"), honouring "Connection: close";
//   - pipelining: a connection handles one request at a time and parses the
//     next one only after the previous response is written, so responses go
//     out in request order;
//   - Content-Length and chunked request bodies (the handler sees the
//     decoded body); every response carries Content-Length, except a
//     streamed one (HttpResponse::on_stream), sent chunked;
//   - limits: a malformed request gets 400, a body over max_body_bytes 413,
//     headers over max_header_bytes 431, and the connection then closes;
//     an idle connection closes after idle_timeout_ms.
//
// Thread safety: none. Listen, Close, the Handler and every Respond run on
// the loop thread. A handler that works on another thread must hop back to
// the loop (engine/inbox.h) before calling Respond.
#ifndef CDE_API_HTTP_SERVER_H_
#define CDE_API_HTTP_SERVER_H_

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "storage/status.h"

namespace cde {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path + query ("/mcp?x=1")
  std::string path;    // target without query or fragment; not decoded
  // Lower-case names. Repeated headers are joined with ", ".
  std::map<std::string, std::string> headers;
  std::string body;  // decoded when the request was chunked
  // The address the connection comes from ("127.0.0.1", "::1"); "" if the
  // socket could not tell.
  std::string peer;

  // The value of header `lower_name`, or "" when absent.
  std::string header(const std::string& lower_name) const;
};

// The body of a streamed response (Server-Sent Events), written over time.
// A handle holds no reference that could dangle: after the connection is
// gone, Write returns false and End does nothing.
class HttpStream {
 public:
  virtual ~HttpStream() = default;
  // Sends `data` as the next part of the body. False once the connection
  // is gone (the client left, a write failed, the server closed).
  virtual bool Write(std::string_view data) = 0;
  // Ends the body; the connection goes on to its next request. Once only.
  virtual void End() = 0;
  virtual bool open() const = 0;
  // `on_closed` runs once if the connection goes away before End().
  virtual void SetOnClosed(std::function<void()> on_closed) = 0;
};

struct HttpResponse {
  int status = 200;
  // Sent as given, except that Content-Length is always computed by the
  // server and headers containing CR or LF are dropped (no injection).
  // "Connection: close" here closes the connection after this response.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Set for a streamed response: the head goes out without Content-Length
  // (chunked on HTTP/1.1; on HTTP/1.0 the end of the body is the close),
  // `body` as its first part, then `on_stream` receives the stream for the
  // rest. A streaming connection is never idle; a client that stops
  // reading for idle_timeout_ms is closed.
  std::function<void(std::shared_ptr<HttpStream>)> on_stream;
};

struct HttpServerOptions {
  // An IPv4 or IPv6 literal; no name resolution.
  std::string host = "127.0.0.1";
  int port = 8000;  // 0 picks an ephemeral port; see HttpServer::port()
  // Larger bodies get 413 and the connection closes.
  size_t max_body_bytes = 4 << 20;
  // Request line + header names and values; more gets 431 and a close.
  size_t max_header_bytes = 64 << 10;
  // A connection that receives no byte for this long is closed, unless a
  // request is waiting in its handler (never idle, however long it takes).
  // A response the client does not read for this long also closes it.
  // 0 disables the timeout.
  uint64_t idle_timeout_ms = 60000;
};

class HttpServer {
 public:
  // Sends the response to the request it was given for. Call it exactly
  // once, on the loop thread, during the handler or later. Calls after the
  // client went away or the server closed, and repeated calls, are ignored:
  // a Respond holds no reference that could dangle.
  using Respond = std::function<void(HttpResponse)>;
  // `request` is valid only during the call; copy what an async handler
  // needs. An exception escaping the handler becomes a 500 response.
  using Handler = std::function<void(const HttpRequest& request, Respond)>;

  // Binds and listens on options.host:options.port. On error (for example
  // "127.0.0.1:8000: address already in use") the half-made listener is
  // closed through the loop: run the loop once more before uv_loop_close.
  // REQUIRES: on the loop thread (or before the loop runs).
  static Result<std::unique_ptr<HttpServer>> Listen(uv_loop_t* loop,
                                                    HttpServerOptions options,
                                                    Handler handler);

  // REQUIRES: Close() has finished (on_closed ran), or Listen failed.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port; useful with options.port == 0.
  int port() const { return port_; }

  // Stops listening and closes every connection at once, dropping requests
  // still in their handler. `on_closed` runs once every handle is closed;
  // the server may be destroyed from it. Call at most once.
  void Close(std::function<void()> on_closed);

  // How many connections are open (for tests and metrics).
  size_t connection_count() const { return connections_.size(); }

 private:
  class Connection;
  class StreamHandle;

  HttpServer(uv_loop_t* loop, HttpServerOptions options, Handler handler);
  Status Bind();
  static void OnConnection(uv_stream_t* listener, int status);
  static void OnListenerClosed(uv_handle_t* handle);
  // Called by a connection once all its handles are closed; drops it.
  void OnConnectionClosed(Connection* connection);
  void MaybeFinishClose();

  uv_loop_t* const loop_;
  const HttpServerOptions options_;
  const Handler handler_;
  uv_tcp_t listener_;
  int port_ = 0;
  bool closing_ = false;
  bool listener_closed_ = false;
  std::function<void()> on_closed_;
  // The owning references; a connection removes itself here from its last
  // close callback. Responds hold weak_ptrs.
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections_;
  // One read buffer for all connections: each read is consumed (copied into
  // the connection's input) before the loop reads from another socket.
  std::unique_ptr<char[]> read_buffer_;
};

}  // namespace cde

#endif  // CDE_API_HTTP_SERVER_H_
