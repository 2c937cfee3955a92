#include "api/http_server.h"

#include <llhttp.h>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <cstdio>
#include <exception>
#include <string_view>

namespace cde {
namespace {

constexpr size_t kReadBufferBytes = 64 << 10;
// After the last response of a connection that must close, we keep reading
// (and discarding) until the client closes or this long passes. Closing with
// unread input would send a RST that can destroy the response before the
// client reads it (the "lingering close" of nginx and Apache).
constexpr uint64_t kLingerMs = 2000;

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

std::string ToLower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

bool HasCrLf(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

// "/a/b?x#y" -> "/a/b"; an absolute-form "http://h/a?x" -> "/a".
std::string PathOf(std::string_view target) {
  if (!target.empty() && target[0] != '/') {
    size_t scheme = target.find("://");
    if (scheme != std::string_view::npos) {
      size_t slash = target.find('/', scheme + 3);
      target = slash == std::string_view::npos ? std::string_view("/")
                                               : target.substr(slash);
    }
  }
  return std::string(target.substr(0, target.find_first_of("?#")));
}

}  // namespace

std::string HttpRequest::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

// One accepted socket. It owns two handles, the socket and its idle timer;
// both point back here through `data`, and the server drops its owning
// reference only when both have closed. Responds hold weak_ptrs, so one
// arriving after that finds nothing and does nothing.
class HttpServer::Connection
    : public std::enable_shared_from_this<HttpServer::Connection> {
 public:
  explicit Connection(HttpServer* server);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts reading once the socket has been accepted.
  void Start();
  // Closes both handles now, whatever is in flight.
  void CloseNow();

  uv_tcp_t* tcp() { return &tcp_; }

  // The streamed response of request `request_id` (see HttpStream).
  bool StreamOpen(uint64_t request_id) const;
  bool StreamWrite(uint64_t request_id, std::string_view data);
  void StreamEnd(uint64_t request_id);
  void SetStreamOnClosed(uint64_t request_id, std::function<void()> fn);

 private:
  enum class State {
    kOpen,       // reading and answering requests
    kDraining,   // writing the last response; input is ignored
    kLingering,  // response sent and write side shut; discarding input
    kClosing,    // uv_close called on both handles
  };

  // A response on the wire; freed in its write callback, which libuv runs
  // (with UV_ECANCELED if need be) before the socket's close callback.
  // req.data points to it.
  struct WriteReq {
    uv_write_t req;
    std::string head;
    std::string body;
    Connection* connection;
    bool last;     // close the connection once written
    bool interim;  // "100 Continue" or a part of a streamed body: the
                   // response is not complete yet
  };

  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void OnWrite(uv_write_t* req, int status);
  static void OnShutdown(uv_shutdown_t* req, int status);
  static void OnTimer(uv_timer_t* timer);
  static void OnClose(uv_handle_t* handle);

  // llhttp callbacks; parser->data is the Connection.
  static int OnMessageBegin(llhttp_t* parser);
  static int OnUrl(llhttp_t* parser, const char* at, size_t length);
  static int OnHeaderField(llhttp_t* parser, const char* at, size_t length);
  static int OnHeaderValue(llhttp_t* parser, const char* at, size_t length);
  static int OnHeaderValueComplete(llhttp_t* parser);
  static int OnHeadersComplete(llhttp_t* parser);
  static int OnBody(llhttp_t* parser, const char* at, size_t length);
  static int OnMessageComplete(llhttp_t* parser);
  static const llhttp_settings_t* Settings();

  // Counts header bytes; false (and the 431 error set) when over the limit.
  bool AddHeaderBytes(size_t n);
  int Fail(int status, const char* reason);

  void StartReading();
  void StopReading();
  void ArmTimer(uint64_t ms);
  // Runs the parser over buffered input until it needs more bytes, a
  // request is complete, or the input is bad.
  void Parse();
  void Dispatch();
  void OnRespond(uint64_t request_id, HttpResponse response);
  void SendError(int status, std::string body);
  void Send(const HttpResponse& response, bool last, bool head_only);
  void SendStreamHead(std::string head, const HttpResponse& response,
                      bool last);
  void SendContinue();
  // Writes `data` without ending the response; false if the write failed.
  bool WriteInterim(std::string data);
  void Linger();

  HttpServer* const server_;
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  int open_handles_ = 0;
  State state_ = State::kOpen;
  bool reading_ = false;
  bool peer_eof_ = false;  // the client shut its write side

  llhttp_t parser_;
  std::string input_;  // received, not yet parsed

  // The request being parsed, then the one in the handler.
  HttpRequest request_;
  std::string field_, value_;
  size_t header_bytes_ = 0;
  std::string peer_;  // the client's address, for every request
  bool keep_alive_ = true;
  // Set by a parser callback that rejects the request (413, 431).
  int error_status_ = 0;
  std::string error_body_;

  // From a complete request until its response is written: parsing of
  // pipelined requests waits, so answers go out in order, one at a time.
  bool busy_ = false;
  bool awaiting_respond_ = false;  // the handler has not responded yet
  uint64_t request_id_ = 0;        // matches a Respond to its request

  // A streamed response in progress (HttpResponse::on_stream).
  bool streaming_ = false;
  bool stream_chunked_ = false;  // HTTP/1.1: chunked; 1.0: ends by closing
  bool stream_last_ = false;     // close the connection when it ends
  int stream_writes_pending_ = 0;
  std::function<void()> stream_on_closed_;
};

class HttpServer::StreamHandle : public HttpStream {
 public:
  StreamHandle(std::weak_ptr<Connection> connection, uint64_t request_id)
      : connection_(std::move(connection)), request_id_(request_id) {}
  bool Write(std::string_view data) override {
    auto c = connection_.lock();
    return c && c->StreamWrite(request_id_, data);
  }
  void End() override {
    if (auto c = connection_.lock()) c->StreamEnd(request_id_);
  }
  bool open() const override {
    auto c = connection_.lock();
    return c && c->StreamOpen(request_id_);
  }
  void SetOnClosed(std::function<void()> on_closed) override {
    if (auto c = connection_.lock()) {
      c->SetStreamOnClosed(request_id_, std::move(on_closed));
    }
  }

 private:
  std::weak_ptr<Connection> connection_;
  const uint64_t request_id_;
};

HttpServer::Connection::Connection(HttpServer* server) : server_(server) {
  uv_tcp_init(server_->loop_, &tcp_);
  tcp_.data = this;
  uv_timer_init(server_->loop_, &timer_);
  timer_.data = this;
  open_handles_ = 2;
  llhttp_init(&parser_, HTTP_REQUEST, Settings());
  parser_.data = this;
}

const llhttp_settings_t* HttpServer::Connection::Settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &OnMessageBegin;
    s.on_url = &OnUrl;
    s.on_header_field = &OnHeaderField;
    s.on_header_value = &OnHeaderValue;
    s.on_header_value_complete = &OnHeaderValueComplete;
    s.on_headers_complete = &OnHeadersComplete;
    s.on_body = &OnBody;
    s.on_message_complete = &OnMessageComplete;
    return s;
  }();
  return &settings;
}

void HttpServer::Connection::Start() {
  uv_tcp_nodelay(&tcp_, 1);
  sockaddr_storage addr{};
  int len = sizeof(addr);
  char text[INET6_ADDRSTRLEN] = "";
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&addr), &len) ==
      0) {
    if (addr.ss_family == AF_INET) {
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&addr), text, sizeof(text));
    } else if (addr.ss_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&addr), text, sizeof(text));
    }
  }
  peer_ = text;
  StartReading();
  ArmTimer(server_->options_.idle_timeout_ms);
}

void HttpServer::Connection::StartReading() {
  if (reading_ || state_ == State::kClosing) return;
  if (uv_read_start(reinterpret_cast<uv_stream_t*>(&tcp_), &OnAlloc, &OnRead) ==
      0) {
    reading_ = true;
  } else {
    CloseNow();
  }
}

void HttpServer::Connection::StopReading() {
  if (!reading_) return;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  reading_ = false;
}

void HttpServer::Connection::ArmTimer(uint64_t ms) {
  if (state_ == State::kClosing) return;
  if (ms == 0) {
    uv_timer_stop(&timer_);
  } else {
    uv_timer_start(&timer_, &OnTimer, ms, 0);
  }
}

void HttpServer::Connection::CloseNow() {
  if (state_ == State::kClosing) return;
  state_ = State::kClosing;
  reading_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &OnClose);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &OnClose);
  if (streaming_) {
    streaming_ = false;
    auto on_closed = std::move(stream_on_closed_);
    stream_on_closed_ = nullptr;
    if (on_closed) on_closed();
  }
}

void HttpServer::Connection::OnClose(uv_handle_t* handle) {
  auto* self = static_cast<Connection*>(handle->data);
  if (--self->open_handles_ > 0) return;
  // Destroys *self: nothing may touch it after this line.
  self->server_->OnConnectionClosed(self);
}

void HttpServer::Connection::OnTimer(uv_timer_t* timer) {
  // Idle or lingering for too long either way: close without ceremony.
  static_cast<Connection*>(timer->data)->CloseNow();
}

void HttpServer::Connection::OnAlloc(uv_handle_t* handle, size_t,
                                     uv_buf_t* buf) {
  auto* self = static_cast<Connection*>(handle->data);
  buf->base = self->server_->read_buffer_.get();
  buf->len = kReadBufferBytes;
}

void HttpServer::Connection::OnRead(uv_stream_t* stream, ssize_t nread,
                                    const uv_buf_t* buf) {
  auto* self = static_cast<Connection*>(stream->data);
  if (nread == 0) return;  // EAGAIN; nothing happened
  if (nread < 0) {
    self->StopReading();
    // A client that leaves a streamed response is gone, not half-closed.
    if (self->streaming_) {
      self->CloseNow();
      return;
    }
    // EOF with a request in the handler may be a half-close: the client
    // still waits for the answer, so close only after sending it.
    if (nread == UV_EOF && self->busy_ &&
        (self->state_ == State::kOpen || self->state_ == State::kDraining)) {
      self->peer_eof_ = true;
      return;
    }
    self->CloseNow();
    return;
  }
  if (self->state_ != State::kOpen) return;  // draining or lingering
  self->input_.append(buf->base, static_cast<size_t>(nread));
  if (self->busy_) {
    // Pipelined input waits until the response is out. Stop reading when a
    // lot piles up, so a client cannot make us buffer without bound.
    const HttpServerOptions& o = self->server_->options_;
    if (self->input_.size() > o.max_header_bytes + kReadBufferBytes) {
      self->StopReading();
    }
    return;
  }
  self->ArmTimer(self->server_->options_.idle_timeout_ms);
  self->Parse();
}

void HttpServer::Connection::Parse() {
  while (state_ == State::kOpen && !busy_ && !input_.empty()) {
    const char* data = input_.data();
    llhttp_errno_t err = llhttp_execute(&parser_, data, input_.size());
    // A callback may have closed us (a failed 100 Continue write).
    if (state_ != State::kOpen) return;
    if (err == HPE_OK) {
      input_.clear();  // all consumed, partial spans included
      return;
    }
    if (err == HPE_PAUSED) {
      // OnMessageComplete paused right after the request's last byte.
      size_t used = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
      input_.erase(0, std::min(used, input_.size()));
      llhttp_resume(&parser_);
      Dispatch();
      continue;
    }
    if (error_status_ != 0) {
      SendError(error_status_, std::move(error_body_));
    } else {
      std::string body = "Bad Request: ";
      body += llhttp_errno_name(err);
      const char* reason = llhttp_get_error_reason(&parser_);
      if (reason != nullptr && *reason != '\0') {
        body += ": ";
        body += reason;
      }
      body += "\n";
      SendError(400, std::move(body));
    }
    return;
  }
}

void HttpServer::Connection::Dispatch() {
  busy_ = true;
  awaiting_respond_ = true;
  const uint64_t id = ++request_id_;
  // A request in the handler is not idle, however long it takes.
  uv_timer_stop(&timer_);
  std::weak_ptr<Connection> weak = weak_from_this();
  Respond respond = [weak, id](HttpResponse response) {
    if (auto self = weak.lock()) self->OnRespond(id, std::move(response));
  };
  try {
    server_->handler_(request_, respond);
  } catch (const std::exception& e) {
    OnRespond(id, HttpResponse{.status = 500,
                               .body = std::string("handler failed: ") +
                                       e.what() + "\n"});
  } catch (...) {
    OnRespond(id, HttpResponse{.status = 500, .body = "handler failed\n"});
  }
}

void HttpServer::Connection::OnRespond(uint64_t request_id,
                                       HttpResponse response) {
  // A repeated call, or one for a connection already being closed.
  if (!awaiting_respond_ || request_id != request_id_ ||
      state_ != State::kOpen) {
    return;
  }
  // After a half-close, answer what was pipelined before it, then close.
  bool last = !keep_alive_ || (peer_eof_ && input_.empty());
  for (const auto& [name, value] : response.headers) {
    if (ToLower(name) == "connection" && ToLower(value) == "close") {
      last = true;
    }
  }
  Send(response, last, request_.method == "HEAD");
}

void HttpServer::Connection::SendError(int status, std::string body) {
  HttpResponse response{.status = status,
                        .headers = {{"Content-Type", "text/plain"}},
                        .body = std::move(body)};
  Send(response, /*last=*/true, /*head_only=*/false);
}

void HttpServer::Connection::Send(const HttpResponse& response, bool last,
                                  bool head_only) {
  auto* w = new WriteReq;
  w->req.data = w;
  w->connection = this;
  w->last = last;
  w->interim = false;
  const int status =
      response.status >= 100 && response.status <= 999 ? response.status : 500;
  std::string& head = w->head;
  head = "HTTP/1.1 " + std::to_string(status) + " ";
  head += ReasonPhrase(status);
  head += "\r\n";
  for (const auto& [name, value] : response.headers) {
    const std::string lower = ToLower(name);
    if (name.empty() || HasCrLf(name) || HasCrLf(value) ||
        lower == "content-length" || lower == "connection" ||
        lower == "transfer-encoding") {
      continue;  // ours to set, or an attempt at header injection
    }
    head += name + ": " + value + "\r\n";
  }
  // 1xx, 204 and 304 responses have no body and no Content-Length.
  const bool no_body = status < 200 || status == 204 || status == 304;
  if (response.on_stream && !no_body && !head_only) {
    std::string stream_head = std::move(head);
    delete w;  // the stream writes its own parts
    return SendStreamHead(std::move(stream_head), response, last);
  }
  if (!no_body) {
    head += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
    if (!head_only) w->body = response.body;
  }
  if (last) {
    head += "Connection: close\r\n";
  } else if (parser_.http_major == 1 && parser_.http_minor == 0) {
    head += "Connection: keep-alive\r\n";  // 1.0 closes unless told
  }
  head += "\r\n";

  busy_ = true;
  awaiting_respond_ = false;
  if (last) {
    state_ = State::kDraining;
    StopReading();
  }
  // The write may stall on a client that does not read: keep a timeout.
  ArmTimer(last ? kLingerMs : server_->options_.idle_timeout_ms);
  uv_buf_t bufs[2] = {
      uv_buf_init(w->head.data(), static_cast<unsigned>(w->head.size())),
      uv_buf_init(w->body.data(), static_cast<unsigned>(w->body.size()))};
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), bufs,
                    w->body.empty() ? 1 : 2, &OnWrite);
  if (rc != 0) {
    delete w;
    CloseNow();
  }
}

void HttpServer::Connection::SendStreamHead(std::string head,
                                            const HttpResponse& response,
                                            bool last) {
  stream_chunked_ = parser_.http_major == 1 && parser_.http_minor >= 1;
  stream_last_ = last || !stream_chunked_;
  if (stream_chunked_) head += "Transfer-Encoding: chunked\r\n";
  if (stream_last_) head += "Connection: close\r\n";
  head += "\r\n";
  busy_ = true;
  awaiting_respond_ = false;
  streaming_ = true;
  // Input that arrives while streaming waits, as for any busy response.
  if (!WriteInterim(std::move(head))) return;
  if (!response.body.empty() && !StreamWrite(request_id_, response.body)) {
    return;
  }
  response.on_stream(
      std::make_shared<StreamHandle>(weak_from_this(), request_id_));
}

bool HttpServer::Connection::StreamOpen(uint64_t request_id) const {
  return streaming_ && request_id == request_id_ && state_ == State::kOpen;
}

bool HttpServer::Connection::StreamWrite(uint64_t request_id,
                                         std::string_view data) {
  if (!StreamOpen(request_id)) return false;
  if (data.empty()) return true;  // an empty chunk would end the body
  std::string framed;
  if (stream_chunked_) {
    char size[20];
    std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
    framed = size;
    framed.append(data);
    framed += "\r\n";
  } else {
    framed.assign(data);
  }
  return WriteInterim(std::move(framed));
}

void HttpServer::Connection::StreamEnd(uint64_t request_id) {
  if (!StreamOpen(request_id)) return;
  streaming_ = false;
  stream_on_closed_ = nullptr;
  if (!stream_chunked_) {
    // HTTP/1.0: the close ends the body, once what is queued is written.
    state_ = State::kDraining;
    StopReading();
    ArmTimer(kLingerMs);
    return Linger();
  }
  auto* w = new WriteReq;
  w->req.data = w;
  w->connection = this;
  w->last = stream_last_ || (peer_eof_ && input_.empty());
  w->interim = false;
  w->head = "0\r\n\r\n";
  if (w->last) {
    state_ = State::kDraining;
    StopReading();
  }
  ArmTimer(w->last ? kLingerMs : server_->options_.idle_timeout_ms);
  uv_buf_t buf =
      uv_buf_init(w->head.data(), static_cast<unsigned>(w->head.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1,
               &OnWrite) != 0) {
    delete w;
    CloseNow();
  }
}

void HttpServer::Connection::SetStreamOnClosed(uint64_t request_id,
                                               std::function<void()> fn) {
  if (StreamOpen(request_id)) stream_on_closed_ = std::move(fn);
}

bool HttpServer::Connection::WriteInterim(std::string data) {
  auto* w = new WriteReq;
  w->req.data = w;
  w->connection = this;
  w->last = false;
  w->interim = true;
  w->head = std::move(data);
  uv_buf_t buf =
      uv_buf_init(w->head.data(), static_cast<unsigned>(w->head.size()));
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1,
               &OnWrite) != 0) {
    delete w;
    CloseNow();
    return false;
  }
  // A client that stops reading a stream is closed after the idle timeout.
  if (streaming_ && stream_writes_pending_++ == 0) {
    ArmTimer(server_->options_.idle_timeout_ms);
  }
  return true;
}

void HttpServer::Connection::SendContinue() {
  auto* w = new WriteReq;
  w->req.data = w;
  w->connection = this;
  w->last = false;
  w->interim = true;
  w->head = "HTTP/1.1 100 Continue\r\n\r\n";
  uv_buf_t buf =
      uv_buf_init(w->head.data(), static_cast<unsigned>(w->head.size()));
  // libuv keeps writes in order, so this precedes the final response.
  if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&tcp_), &buf, 1,
               &OnWrite) != 0) {
    delete w;
    CloseNow();
  }
}

void HttpServer::Connection::OnWrite(uv_write_t* req, int status) {
  auto* w = static_cast<WriteReq*>(req->data);
  Connection* self = w->connection;
  const bool last = w->last;
  const bool interim = w->interim;
  delete w;
  if (self->state_ == State::kClosing) return;  // UV_ECANCELED
  if (status != 0) {
    self->CloseNow();
    return;
  }
  if (interim) {
    // A streamed response that is fully written is not stalled, just idle.
    if (self->streaming_ && --self->stream_writes_pending_ == 0) {
      uv_timer_stop(&self->timer_);
    }
    return;
  }
  if (last) {
    self->Linger();
    return;
  }
  // Next pipelined request, if any; reading resumes if it was stopped.
  self->busy_ = false;
  if (!self->peer_eof_) self->StartReading();
  self->Parse();
  // The client closed its side and every request it sent is answered.
  if (self->peer_eof_ && !self->busy_) self->CloseNow();
}

void HttpServer::Connection::Linger() {
  state_ = State::kLingering;
  auto* req = new uv_shutdown_t;
  req->data = this;
  if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&tcp_), &OnShutdown) !=
      0) {
    delete req;
    CloseNow();
  }
}

void HttpServer::Connection::OnShutdown(uv_shutdown_t* req, int status) {
  auto* self = static_cast<Connection*>(req->data);
  delete req;
  if (self->state_ == State::kClosing) return;  // UV_ECANCELED
  if (status != 0 || self->peer_eof_) {
    self->CloseNow();
    return;
  }
  // Discard what the client still sends until it closes (OnRead closes on
  // EOF in this state) or the linger timer fires.
  self->StartReading();
  self->ArmTimer(kLingerMs);
}

// ---- llhttp callbacks -------------------------------------------------

int HttpServer::Connection::Fail(int status, const char* reason) {
  error_status_ = status;
  error_body_ = std::string(ReasonPhrase(status)) + ": " + reason + "\n";
  llhttp_set_error_reason(&parser_, reason);
  return HPE_USER;
}

bool HttpServer::Connection::AddHeaderBytes(size_t n) {
  header_bytes_ += n;
  return header_bytes_ <= server_->options_.max_header_bytes;
}

int HttpServer::Connection::OnMessageBegin(llhttp_t* parser) {
  auto* self = static_cast<Connection*>(parser->data);
  self->request_ = HttpRequest();
  self->request_.peer = self->peer_;
  self->field_.clear();
  self->value_.clear();
  self->header_bytes_ = 0;
  return HPE_OK;
}

int HttpServer::Connection::OnUrl(llhttp_t* parser, const char* at,
                                  size_t length) {
  auto* self = static_cast<Connection*>(parser->data);
  if (!self->AddHeaderBytes(length)) {
    return self->Fail(431, "request line and headers too large");
  }
  self->request_.target.append(at, length);
  return HPE_OK;
}

int HttpServer::Connection::OnHeaderField(llhttp_t* parser, const char* at,
                                          size_t length) {
  auto* self = static_cast<Connection*>(parser->data);
  // +4 for ": " and CRLF, so a flood of empty headers also counts.
  if (!self->AddHeaderBytes(length + 4)) {
    return self->Fail(431, "request line and headers too large");
  }
  self->field_.append(at, length);
  return HPE_OK;
}

int HttpServer::Connection::OnHeaderValue(llhttp_t* parser, const char* at,
                                          size_t length) {
  auto* self = static_cast<Connection*>(parser->data);
  if (!self->AddHeaderBytes(length)) {
    return self->Fail(431, "request line and headers too large");
  }
  self->value_.append(at, length);
  return HPE_OK;
}

int HttpServer::Connection::OnHeaderValueComplete(llhttp_t* parser) {
  auto* self = static_cast<Connection*>(parser->data);
  std::string& slot = self->request_.headers[ToLower(self->field_)];
  if (!slot.empty()) slot += ", ";
  slot += self->value_;
  self->field_.clear();
  self->value_.clear();
  return HPE_OK;
}

int HttpServer::Connection::OnHeadersComplete(llhttp_t* parser) {
  auto* self = static_cast<Connection*>(parser->data);
  HttpRequest& r = self->request_;
  r.method = llhttp_method_name(static_cast<llhttp_method_t>(parser->method));
  r.path = PathOf(r.target);
  // Refuse a declared oversize body before reading any of it.
  if ((parser->flags & F_CONTENT_LENGTH) &&
      parser->content_length > self->server_->options_.max_body_bytes) {
    return self->Fail(413, "request body too large");
  }
  // curl and others wait (about a second) for this before sending a body.
  if (r.header("expect") == "100-continue" && parser->content_length > 0) {
    self->SendContinue();
  }
  return HPE_OK;
}

int HttpServer::Connection::OnBody(llhttp_t* parser, const char* at,
                                   size_t length) {
  auto* self = static_cast<Connection*>(parser->data);
  // Chunked bodies announce no size: check as the chunks arrive.
  if (self->request_.body.size() + length >
      self->server_->options_.max_body_bytes) {
    return self->Fail(413, "request body too large");
  }
  self->request_.body.append(at, length);
  return HPE_OK;
}

int HttpServer::Connection::OnMessageComplete(llhttp_t* parser) {
  auto* self = static_cast<Connection*>(parser->data);
  // We do not speak Upgrade/CONNECT: answer that request, then close.
  self->keep_alive_ =
      llhttp_should_keep_alive(parser) != 0 && parser->upgrade == 0;
  // Stop here so the request is handled before the next one is parsed.
  return HPE_PAUSED;
}

// ---- HttpServer -------------------------------------------------------

HttpServer::HttpServer(uv_loop_t* loop, HttpServerOptions options,
                       Handler handler)
    : loop_(loop),
      options_(std::move(options)),
      handler_(std::move(handler)),
      read_buffer_(new char[kReadBufferBytes]) {
  uv_tcp_init(loop_, &listener_);
  listener_.data = this;
}

HttpServer::~HttpServer() {
  assert(listener_closed_ && connections_.empty() &&
         "HttpServer destroyed before Close() finished");
}

Result<std::unique_ptr<HttpServer>> HttpServer::Listen(
    uv_loop_t* loop, HttpServerOptions options, Handler handler) {
  std::unique_ptr<HttpServer> server(
      new HttpServer(loop, std::move(options), std::move(handler)));
  Status s = server->Bind();
  if (s.ok()) return server;
  // The handle was initialised, so it must go through uv_close; the close
  // callback frees the server.
  HttpServer* raw = server.release();
  raw->closing_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&raw->listener_),
           [](uv_handle_t* handle) {
             auto* self = static_cast<HttpServer*>(handle->data);
             self->listener_closed_ = true;
             delete self;
           });
  return s;
}

Status HttpServer::Bind() {
  const std::string where = options_.host + ":" + std::to_string(options_.port);
  if (options_.port < 0 || options_.port > 65535) {
    return Status::InvalidArgument(where + ": bad port");
  }
  sockaddr_storage addr{};
  int rc = options_.host.find(':') == std::string::npos
               ? uv_ip4_addr(options_.host.c_str(), options_.port,
                             reinterpret_cast<sockaddr_in*>(&addr))
               : uv_ip6_addr(options_.host.c_str(), options_.port,
                             reinterpret_cast<sockaddr_in6*>(&addr));
  if (rc != 0) {
    return Status::InvalidArgument(where + ": not an IP address");
  }
  // libuv may defer a bind error such as EADDRINUSE to uv_listen.
  rc = uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 128,
                   &OnConnection);
  }
  if (rc != 0) return Status::IOError(where + ": " + uv_strerror(rc));
  sockaddr_storage bound{};
  int len = sizeof(bound);
  rc =
      uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&bound), &len);
  if (rc != 0) return Status::IOError(where + ": " + uv_strerror(rc));
  port_ = bound.ss_family == AF_INET6
              ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
              : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return Status::OK();
}

void HttpServer::OnConnection(uv_stream_t* listener, int status) {
  auto* self = static_cast<HttpServer*>(listener->data);
  if (status != 0 || self->closing_) return;  // e.g. EMFILE: try next time
  auto connection = std::make_shared<Connection>(self);
  Connection* raw = connection.get();
  self->connections_.emplace(raw, std::move(connection));
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(raw->tcp())) != 0) {
    raw->CloseNow();
    return;
  }
  raw->Start();
}

void HttpServer::OnConnectionClosed(Connection* connection) {
  connections_.erase(connection);
  MaybeFinishClose();
}

void HttpServer::Close(std::function<void()> on_closed) {
  assert(!closing_ && "HttpServer::Close called twice");
  closing_ = true;
  on_closed_ = std::move(on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&listener_), &OnListenerClosed);
  for (auto& [raw, connection] : connections_) raw->CloseNow();
}

void HttpServer::OnListenerClosed(uv_handle_t* handle) {
  auto* self = static_cast<HttpServer*>(handle->data);
  self->listener_closed_ = true;
  self->MaybeFinishClose();
}

void HttpServer::MaybeFinishClose() {
  if (!closing_ || !listener_closed_ || !connections_.empty()) return;
  // on_closed may destroy the server: take it out first, touch nothing after.
  auto on_closed = std::move(on_closed_);
  on_closed_ = nullptr;
  if (on_closed) on_closed();
}

}  // namespace cde
