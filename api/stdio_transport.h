// StdioTransport: MCP over stdin/stdout, newline-delimited JSON (the stdio
// transport Claude Desktop and the MCP SDKs use). stdout carries protocol
// frames only; every log line goes to stderr. EOF on stdin ends the session
// (the server then shuts down gracefully).
#ifndef CDE_API_STDIO_TRANSPORT_H_
#define CDE_API_STDIO_TRANSPORT_H_

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "api/mcp_session.h"

namespace cde {

class StdioTransport {
 public:
  // Reads frames from fd `in` and writes replies to fd `out` (pipes or
  // terminals). `on_eof` runs once stdin is closed. The session gets
  // `session`, with the rate key "session:stdio".
  static Result<std::unique_ptr<StdioTransport>> Open(
      uv_loop_t* loop, Engine* engine, int in, int out,
      size_t max_message_bytes, std::function<void()> on_eof,
      McpSessionOptions session = {});
  ~StdioTransport();  // REQUIRES: Close() finished

  void Close(std::function<void()> on_closed);

 private:
  StdioTransport() = default;
  static void OnAlloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
  void Write(std::string frame);
  void OnLine(std::string_view line);

  uv_pipe_t in_;
  uv_pipe_t out_;
  std::shared_ptr<McpSession> session_;
  std::string pending_;      // bytes after the last newline
  bool discarding_ = false;  // inside an oversized line
  size_t max_message_bytes_ = 0;
  std::function<void()> on_eof_;
  std::function<void()> on_closed_;
  int open_handles_ = 0;
  bool closing_ = false;
  std::unique_ptr<char[]> read_buf_;
};

}  // namespace cde

#endif  // CDE_API_STDIO_TRANSPORT_H_
