// Tasks (MCP 2025-11-25): a task-augmented start_workflow; the task is the
// saga.
#include "api/jsonrpc.h"
#include "api/mcp_session.h"
#include "api/mcp_util.h"

namespace cde {

using nlohmann::json;

bool McpSession::OnTaskRequest(const json& id, const std::string& method,
                               const json& params) {
  (void)id;
  (void)method;
  (void)params;
  return false;
}

void McpSession::CallToolAsTask(const json& id, const std::string& name,
                                const json& args, const json& task) {
  (void)name;
  (void)args;
  (void)task;
  ReplyError(id, jsonrpc::kInvalidParams,
             "params.task: task-augmented calls are not supported yet");
}

}  // namespace cde
