#include "api/mcp_session.h"

#include "api/jsonrpc.h"
#include "api/mcp_util.h"

namespace cde {

using nlohmann::json;

std::shared_ptr<McpSession> McpSession::Create(Engine* engine, uv_loop_t* loop,
                                               Send send) {
  return std::shared_ptr<McpSession>(
      new McpSession(engine, loop, std::move(send)));
}

McpSession::~McpSession() { Close(); }

void McpSession::Close() {
  if (closed_) return;
  closed_ = true;
  for (uint64_t w : watches_) engine_->Unwatch(w);
  watches_.clear();
}

void McpSession::OnFrame(std::string_view text) {
  if (closed_) return;
  jsonrpc::Message msg = jsonrpc::Decode(text);
  if (auto* err = std::get_if<jsonrpc::DecodeError>(&msg)) {
    return send_(jsonrpc::EncodeError(err->id, err->code, err->message),
                 err->id);
  }
  if (auto* req = std::get_if<jsonrpc::Request>(&msg)) {
    return OnRequest(req->id, req->method, req->params);
  }
  if (auto* note = std::get_if<jsonrpc::Notification>(&msg)) {
    return OnNotification(note->method, note->params);
  }
  // Responses to requests we never sent are ignored.
}

void McpSession::OnNotification(const std::string& method, const json&) {
  if (method == "notifications/initialized") initialized_ = true;
  // Other notifications need no answer.
}

void McpSession::OnRequest(const json& id, const std::string& method,
                           const json& params) {
  const json p = params.is_object() ? params : json::object();
  if (method == "initialize") {
    const std::string asked = p.value("protocolVersion", std::string());
    version_ = kProtocolVersions[0];
    for (const char* v : kProtocolVersions) {
      if (asked == v) version_ = v;
    }
    json capabilities = {
        {"tools", {{"listChanged", false}}},
        {"resources", {{"subscribe", true}, {"listChanged", false}}},
        {"logging", json::object()},
        {"completions", json::object()},
        {"tasks",
         {{"list", json::object()},
          {"cancel", json::object()},
          {"requests", {{"tools", {{"call", json::object()}}}}}}}};
    return Reply(id, {{"protocolVersion", version_},
                      {"capabilities", capabilities},
                      {"serverInfo",
                       {{"name", "cde-orchestrator"},
                        {"title", "CDE Orchestrator"},
                        {"version", "0.1.0"}}},
                      {"instructions",
                       "Durable sagas: register_workflow, start_workflow, "
                       "then get_saga to follow a saga."}});
  }
  if (method == "ping") return Reply(id, json::object());
  if (version_.empty()) {
    return ReplyError(id, jsonrpc::kInvalidRequest,
                      "the session is not initialized: send initialize "
                      "first");
  }
  if (method == "tools/list") return Reply(id, {{"tools", Tools()}});
  if (method == "tools/call") {
    auto name = p.find("name");
    if (name == p.end() || !name->is_string()) {
      return ReplyError(id, jsonrpc::kInvalidParams,
                        "params.name: must be the name of a tool");
    }
    const json args = p.value("arguments", json::object());
    if (!args.is_object()) {
      return ReplyError(id, jsonrpc::kInvalidParams,
                        "params.arguments: must be an object");
    }
    if (auto task = p.find("task"); task != p.end() && !task->is_null()) {
      return CallToolAsTask(id, name->get<std::string>(), args, *task);
    }
    return CallTool(id, name->get<std::string>(), args,
                    p.value("_meta", json::object()));
  }
  if (OnResourceRequest(id, method, p)) return;
  if (OnTaskRequest(id, method, p)) return;
  ReplyError(id, jsonrpc::kMethodNotFound,
             "method '" + method + "' is not supported");
}

uint64_t McpSession::WatchSaga(const std::string& saga_id,
                               std::function<void(const Saga&)> on_change) {
  const uint64_t w = engine_->Watch(saga_id, std::move(on_change));
  watches_.insert(w);
  return w;
}

void McpSession::UnwatchSaga(uint64_t watch_id) {
  if (watches_.erase(watch_id) != 0) engine_->Unwatch(watch_id);
}

void McpSession::Reply(const json& id, const json& result) {
  if (!closed_) send_(jsonrpc::EncodeResult(id, result), id);
}

void McpSession::ReplyError(const json& id, int code, const std::string& msg) {
  if (!closed_) send_(jsonrpc::EncodeError(id, code, msg), id);
}

void McpSession::Notify(const std::string& method, const json& params,
                        const json& related) {
  if (closed_) return;
  send_(json{{"jsonrpc", "2.0"}, {"method", method}, {"params", params}}.dump(),
        related);
}

json McpSession::ToolResultJson(const json& structured) {
  return {{"content", {{{"type", "text"}, {"text", structured.dump()}}}},
          {"structuredContent", structured},
          {"isError", false}};
}

json McpSession::ToolErrorJson(const Status& status) {
  const json error = {{"code", mcp::ErrorCode(status)},
                      {"message", status.message()}};
  return {{"content",
           {{{"type", "text"},
             {"text",
              error["code"].get<std::string>() + ": " + status.message()}}}},
          {"structuredContent", {{"error", error}}},
          {"isError", true}};
}

void McpSession::ToolResult(const json& id, const json& structured) {
  Reply(id, ToolResultJson(structured));
}

void McpSession::ToolError(const json& id, const Status& status) {
  Reply(id, ToolErrorJson(status));
}

}  // namespace cde
