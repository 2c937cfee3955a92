#include "api/stdio_transport.h"

#include "api/jsonrpc.h"

namespace cde {
namespace {

constexpr size_t kReadBuffer = 64 << 10;

struct WriteReq {
  uv_write_t req;
  std::string data;
};

}  // namespace

Result<std::unique_ptr<StdioTransport>> StdioTransport::Open(
    uv_loop_t* loop, Engine* engine, int in, int out, size_t max_message_bytes,
    std::function<void()> on_eof, McpSessionOptions session) {
  std::unique_ptr<StdioTransport> t(new StdioTransport());
  t->max_message_bytes_ = max_message_bytes;
  t->on_eof_ = std::move(on_eof);
  t->read_buf_ = std::make_unique<char[]>(kReadBuffer);
  uv_pipe_init(loop, &t->in_, 0);
  uv_pipe_init(loop, &t->out_, 0);
  t->in_.data = t->out_.data = t.get();
  t->open_handles_ = 2;
  int rc = uv_pipe_open(&t->in_, in);
  if (rc == 0) rc = uv_pipe_open(&t->out_, out);
  if (rc != 0) {
    Status s =
        Status::IOError(std::string("stdio transport: ") + uv_strerror(rc) +
                        " (stdin and stdout must be pipes)");
    t->Close(nullptr);  // closes the handles; the loop finishes it
    t.release();        // freed by the last close callback
    return s;
  }
  StdioTransport* raw = t.get();
  t->session_ = McpSession::Create(
      engine, loop,
      [raw](McpSession::OutFrame frame) { raw->Write(std::move(frame.text)); },
      [&] {
        session.rate_key = "session:stdio";
        return std::move(session);
      }());
  uv_read_start(reinterpret_cast<uv_stream_t*>(&t->in_), &OnAlloc, &OnRead);
  return t;
}

StdioTransport::~StdioTransport() = default;

void StdioTransport::OnAlloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<StdioTransport*>(h->data);
  *buf = uv_buf_init(self->read_buf_.get(), kReadBuffer);
}

void StdioTransport::OnRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* self = static_cast<StdioTransport*>(s->data);
  if (n < 0) {
    uv_read_stop(s);
    if (self->on_eof_) self->on_eof_();
    return;
  }
  std::string_view data(buf->base, static_cast<size_t>(n));
  while (!data.empty()) {
    const size_t nl = data.find('\n');
    const std::string_view chunk = data.substr(0, nl);
    if (!self->discarding_) {
      self->pending_.append(chunk);
      if (self->pending_.size() > self->max_message_bytes_) {
        // Refuse it now; skip the rest of the line as it arrives.
        self->Write(jsonrpc::EncodeError(
            nullptr, jsonrpc::kInvalidRequest,
            "message exceeds the limit of " +
                std::to_string(self->max_message_bytes_) + " bytes"));
        self->pending_.clear();
        self->discarding_ = true;
      }
    }
    if (nl == std::string_view::npos) break;
    if (!self->discarding_) {
      std::string line = std::move(self->pending_);
      self->pending_.clear();
      self->OnLine(line);
    }
    self->discarding_ = false;
    data.remove_prefix(nl + 1);
  }
}

void StdioTransport::OnLine(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
    line.remove_suffix(1);
  }
  if (line.empty()) return;
  session_->OnFrame(line);
}

void StdioTransport::Write(std::string frame) {
  if (closing_) return;
  auto* w = new WriteReq{{}, std::move(frame)};
  w->data.push_back('\n');
  uv_buf_t buf = uv_buf_init(w->data.data(), w->data.size());
  const int rc = uv_write(
      &w->req, reinterpret_cast<uv_stream_t*>(&out_), &buf, 1,
      [](uv_write_t* req, int) { delete reinterpret_cast<WriteReq*>(req); });
  if (rc != 0) delete w;  // stdout is gone; nothing to tell
}

void StdioTransport::Close(std::function<void()> on_closed) {
  closing_ = true;
  on_closed_ = std::move(on_closed);
  auto closed = [](uv_handle_t* h) {
    auto* self = static_cast<StdioTransport*>(h->data);
    if (--self->open_handles_ > 0) return;
    auto cb = std::move(self->on_closed_);
    if (!cb) {
      delete self;  // a failed Open: nobody owns it
      return;
    }
    cb();
  };
  if (session_) session_->Close();
  uv_close(reinterpret_cast<uv_handle_t*>(&in_), closed);
  // Replies already queued still reach the client: shut the write side down
  // (which waits for pending writes) before closing it.
  auto* shutdown = new uv_shutdown_t;
  shutdown->data = reinterpret_cast<void*>(+closed);
  const int rc =
      uv_shutdown(shutdown, reinterpret_cast<uv_stream_t*>(&out_),
                  [](uv_shutdown_t* req, int) {
                    auto cb = reinterpret_cast<uv_close_cb>(req->data);
                    uv_close(reinterpret_cast<uv_handle_t*>(req->handle), cb);
                    delete req;
                  });
  if (rc != 0) {
    delete shutdown;
    uv_close(reinterpret_cast<uv_handle_t*>(&out_), closed);
  }
}

}  // namespace cde
