// McpSession: one MCP client connection (a stdio process or an HTTP
// session) speaking JSON-RPC to the engine. Transport-agnostic: frames come
// in through OnFrame and replies go out through `send`, possibly later
// (tool calls answer when the engine's commit has landed).
//
// Implemented so far: the lifecycle (initialize with version negotiation,
// notifications/initialized, ping) and the tools list_workflows,
// register_workflow, start_workflow, get_saga, cancel_saga, replay_saga and
// engine_stats (docs/mcp.md).
//
// Thread safety: loop thread only.
#ifndef CDE_API_MCP_SESSION_H_
#define CDE_API_MCP_SESSION_H_

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "engine/engine.h"

namespace cde {

// The protocol versions this server speaks, newest first.
inline constexpr const char* kProtocolVersions[] = {"2025-11-25", "2025-06-18",
                                                    "2025-03-26"};

class McpSession : public std::enable_shared_from_this<McpSession> {
 public:
  using Send = std::function<void(std::string frame)>;

  // REQUIRES: `engine` outlives every reply (replies check `alive`).
  static std::shared_ptr<McpSession> Create(Engine* engine, Send send);

  // Handles one incoming frame.
  void OnFrame(std::string_view text);

  bool initialized() const { return initialized_; }
  const std::string& protocol_version() const { return version_; }

  // The tool descriptions tools/list returns.
  static const nlohmann::json& Tools();

 private:
  McpSession(Engine* engine, Send send) : engine_(engine), send_(send) {}

  void OnRequest(const nlohmann::json& id, const std::string& method,
                 const nlohmann::json& params);
  void CallTool(const nlohmann::json& id, const std::string& name,
                const nlohmann::json& args);
  void Reply(const nlohmann::json& id, const nlohmann::json& result);
  void ReplyError(const nlohmann::json& id, int code, const std::string& msg);
  // A tool's successful result: structuredContent and its text rendering.
  void ToolResult(const nlohmann::json& id, const nlohmann::json& structured);
  // A tool that failed: isError with a stable code.
  void ToolError(const nlohmann::json& id, const Status& status);

  Engine* engine_;
  Send send_;
  bool initialized_ = false;
  std::string version_;
};

}  // namespace cde

#endif  // CDE_API_MCP_SESSION_H_
