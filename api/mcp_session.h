// McpSession: one MCP client connection (a stdio process or an HTTP
// session) speaking JSON-RPC to the engine. Transport-agnostic: frames come
// in through OnFrame and frames go out through `send`, possibly later (tool
// calls answer when the engine's commit has landed; notifications follow
// saga changes).
//
// The implementation is split by capability:
//   mcp_session.cc    lifecycle, dispatch, replies, watches
//   mcp_tools.cc      tools/list and tools/call (docs/mcp.md)
//   mcp_resources.cc  resources/*, subscriptions
//   mcp_tasks.cc      tasks/* and task-augmented tools/call
//
// Thread safety: loop thread only.
#ifndef CDE_API_MCP_SESSION_H_
#define CDE_API_MCP_SESSION_H_

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

#include "engine/engine.h"

namespace cde {

// The protocol versions this server speaks, newest first.
inline constexpr const char* kProtocolVersions[] = {"2025-11-25", "2025-06-18",
                                                    "2025-03-26"};

class McpSession : public std::enable_shared_from_this<McpSession> {
 public:
  // Sends one frame to the client. `related` is the id of the request the
  // frame belongs to (its response, or a progress or log notification about
  // it), or null for a frame about no request (resource updates, task
  // status). Streamable HTTP uses it to pick the stream the frame goes on.
  using Send =
      std::function<void(std::string frame, const nlohmann::json& related)>;

  // REQUIRES: `engine` and `loop` outlive the session, or Close() is called
  // before the engine shuts down.
  static std::shared_ptr<McpSession> Create(Engine* engine, uv_loop_t* loop,
                                            Send send);
  ~McpSession();

  // Handles one incoming frame.
  void OnFrame(std::string_view text);

  // Ends the session: drops its watches and timers; replies still pending
  // are never sent. Call before the engine shuts down. Idempotent.
  void Close();

  bool initialized() const { return initialized_; }
  const std::string& protocol_version() const { return version_; }

  // The tool descriptions tools/list returns.
  static const nlohmann::json& Tools();

 private:
  McpSession(Engine* engine, uv_loop_t* loop, Send send)
      : engine_(engine), loop_(loop), send_(std::move(send)) {}

  void OnRequest(const nlohmann::json& id, const std::string& method,
                 const nlohmann::json& params);
  void OnNotification(const std::string& method, const nlohmann::json& params);

  // Replies and notifications.
  void Reply(const nlohmann::json& id, const nlohmann::json& result);
  void ReplyError(const nlohmann::json& id, int code, const std::string& msg);
  // A tool's successful result: structuredContent and its text rendering.
  void ToolResult(const nlohmann::json& id, const nlohmann::json& structured);
  // A tool that failed: isError with a stable code.
  void ToolError(const nlohmann::json& id, const Status& status);
  static nlohmann::json ToolResultJson(const nlohmann::json& structured);
  static nlohmann::json ToolErrorJson(const Status& status);
  void Notify(const std::string& method, const nlohmann::json& params,
              const nlohmann::json& related = nullptr);

  // Engine watches owned by this session; Close() drops them all.
  uint64_t WatchSaga(const std::string& saga_id,
                     std::function<void(const Saga&)> on_change);
  void UnwatchSaga(uint64_t watch_id);

  // Wraps a callback so that it runs only while the session is open.
  template <typename T>
  std::function<void(T)> IfOpen(std::function<void(McpSession&, T)> fn) {
    std::weak_ptr<McpSession> weak = weak_from_this();
    return [weak, fn](T value) {
      auto self = weak.lock();
      if (self && !self->closed_) fn(*self, std::move(value));
    };
  }

  // --- tools (mcp_tools.cc) ---
  void CallTool(const nlohmann::json& id, const std::string& name,
                const nlohmann::json& args, const nlohmann::json& meta);

  // --- resources (mcp_resources.cc) ---
  // Handles resources/* requests; false if `method` is not one of them.
  bool OnResourceRequest(const nlohmann::json& id, const std::string& method,
                         const nlohmann::json& params);

  // --- tasks (mcp_tasks.cc) ---
  // Handles tasks/* requests; false if `method` is not one of them.
  bool OnTaskRequest(const nlohmann::json& id, const std::string& method,
                     const nlohmann::json& params);
  // tools/call with params.task: answers with a CreateTaskResult.
  void CallToolAsTask(const nlohmann::json& id, const std::string& name,
                      const nlohmann::json& args, const nlohmann::json& task);

  Engine* engine_;
  uv_loop_t* loop_;
  Send send_;
  bool initialized_ = false;
  bool closed_ = false;
  std::string version_;
  std::set<uint64_t> watches_;
};

}  // namespace cde

#endif  // CDE_API_MCP_SESSION_H_
