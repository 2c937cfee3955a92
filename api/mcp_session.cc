#include "api/mcp_session.h"

#include "api/jsonrpc.h"

namespace cde {
namespace {

using nlohmann::json;

json Obj(json properties, json required = json::array()) {
  return {{"type", "object"},
          {"properties", std::move(properties)},
          {"required", std::move(required)}};
}

// Tool errors carry {"error": {code, message}} as structuredContent, which
// clients validate against the output schema too: so every output schema
// lists `error`, and the success fields are described but not required.
json Tool(const char* name, const char* title, const char* description,
          json input, json output, bool read_only, bool destructive,
          bool idempotent) {
  output["properties"]["error"] = {
      {"type", "object"},
      {"description", "present when isError is true"},
      {"properties",
       {{"code", {{"type", "string"}}}, {"message", {{"type", "string"}}}}},
      {"required", {"code", "message"}}};
  output.erase("required");
  return {{"name", name},
          {"title", title},
          {"description", description},
          {"inputSchema", std::move(input)},
          {"outputSchema", std::move(output)},
          {"annotations",
           {{"readOnlyHint", read_only},
            {"destructiveHint", destructive},
            {"idempotentHint", idempotent},
            {"openWorldHint", false}}}};
}

const json kSagaRef =
    Obj({{"saga_id", {{"type", "string"}}}, {"state", {{"type", "string"}}}},
        {"saga_id", "state"});

// Stable tool error codes (docs/mcp.md).
std::string ErrorCode(const Status& s) {
  switch (s.code()) {
    case Status::Code::kInvalidArgument:
      return "invalid_argument";
    case Status::Code::kNotFound:
      return "not_found";
    case Status::Code::kAlreadyExists:
      return "already_exists";
    case Status::Code::kShutdownInProgress:
      return "shutting_down";
    case Status::Code::kBusy:
      return "busy";
    default:
      return "internal";
  }
}

// Reads a string argument; InvalidArgument naming it when it is missing or
// of the wrong type.
Result<std::string> StringArg(const json& args, const char* name,
                              bool required = true) {
  auto it = args.find(name);
  if (it == args.end() || it->is_null()) {
    if (!required) return std::string();
    return Status::InvalidArgument(std::string("arguments.") + name +
                                   ": required");
  }
  if (!it->is_string()) {
    return Status::InvalidArgument(std::string("arguments.") + name +
                                   ": must be a string");
  }
  return it->get<std::string>();
}

json SagaJson(const SagaRecord& r) {
  json out = {{"saga_id", r.id},
              {"workflow", r.workflow},
              {"version", r.version},
              {"state", SagaStateName(r.state)},
              {"created_ms", r.created_ms},
              {"updated_ms", r.updated_ms},
              {"last_seq", r.last_seq}};
  for (const char* key : {"input", "steps", "wait", "failure"}) {
    if (r.body.contains(key)) out[key] = r.body[key];
  }
  if (!r.idempotency_key.empty()) out["idempotency_key"] = r.idempotency_key;
  return out;
}

}  // namespace

std::shared_ptr<McpSession> McpSession::Create(Engine* engine, Send send) {
  return std::shared_ptr<McpSession>(new McpSession(engine, std::move(send)));
}

const json& McpSession::Tools() {
  static const json tools = json::array({
      Tool("list_workflows", "List workflows",
           "Registered workflow definitions with their versions.",
           Obj(json::object()),
           Obj({{"workflows", {{"type", "array"}}}}, {"workflows"}), true,
           false, true),
      Tool("register_workflow", "Register a workflow",
           "Validates and stores a workflow definition (docs/workflows.md). "
           "Versions are immutable.",
           Obj({{"definition", {{"type", "object"}}}}, {"definition"}),
           Obj({{"name", {{"type", "string"}}},
                {"version", {{"type", "integer"}}}},
               {"name", "version"}),
           false, false, true),
      Tool("start_workflow", "Start a workflow",
           "Starts a saga of a workflow. With an idempotency_key, a repeated "
           "start returns the same saga.",
           Obj({{"workflow", {{"type", "string"}}},
                {"version", {{"type", "integer"}}},
                {"input", {{"type", "object"}}},
                {"idempotency_key", {{"type", "string"}}}},
               {"workflow"}),
           Obj({{"saga_id", {{"type", "string"}}},
                {"state", {{"type", "string"}}},
                {"created", {{"type", "boolean"}}}},
               {"saga_id", "state", "created"}),
           false, false, true),
      Tool("get_saga", "Get a saga",
           "State, per-step status, attempts, outputs and errors of a saga.",
           Obj({{"saga_id", {{"type", "string"}}}}, {"saga_id"}),
           Obj({{"saga_id", {{"type", "string"}}},
                {"state", {{"type", "string"}}}},
               {"saga_id", "state"}),
           true, false, true),
      Tool("cancel_saga", "Cancel a saga",
           "Stops a running saga after its current attempt, then compensates "
           "(unless compensate is false).",
           Obj({{"saga_id", {{"type", "string"}}},
                {"compensate", {{"type", "boolean"}}}},
               {"saga_id"}),
           kSagaRef, false, true, false),
      Tool("replay_saga", "Replay a parked saga",
           "Takes a saga out of the dead-letter queue and runs it again from "
           "its failed step (or from_step) with a fresh retry budget.",
           Obj({{"saga_id", {{"type", "string"}}},
                {"from_step", {{"type", "string"}}}},
               {"saga_id"}),
           kSagaRef, false, false, false),
      Tool("engine_stats", "Engine statistics",
           "Active sagas by state, attempts in flight, timers, commits.",
           Obj(json::object()),
           Obj({{"active_by_state", {{"type", "object"}}}}), true, false, true),
  });
  return tools;
}

void McpSession::OnFrame(std::string_view text) {
  jsonrpc::Message msg = jsonrpc::Decode(text);
  if (auto* err = std::get_if<jsonrpc::DecodeError>(&msg)) {
    return send_(jsonrpc::EncodeError(err->id, err->code, err->message));
  }
  if (auto* req = std::get_if<jsonrpc::Request>(&msg)) {
    return OnRequest(req->id, req->method, req->params);
  }
  if (auto* note = std::get_if<jsonrpc::Notification>(&msg)) {
    if (note->method == "notifications/initialized") initialized_ = true;
    return;  // other notifications need no answer
  }
  // Responses to requests we never sent are ignored.
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
    return Reply(id, {{"protocolVersion", version_},
                      {"capabilities", {{"tools", {{"listChanged", false}}}}},
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
    return CallTool(id, name->get<std::string>(), args);
  }
  ReplyError(id, jsonrpc::kMethodNotFound,
             "method '" + method + "' is not supported");
}

void McpSession::CallTool(const json& id, const std::string& name,
                          const json& args) {
  std::weak_ptr<McpSession> weak = weak_from_this();
  // Replies of asynchronous calls go to the session only if it still exists.
  auto later = [weak, id](auto fn) {
    return [weak, id, fn](auto result) {
      if (auto self = weak.lock()) fn(*self, id, std::move(result));
    };
  };
  if (name == "list_workflows") {
    json list = json::array();
    for (const auto& def : engine_->ListWorkflows()) {
      list.push_back({{"name", def->name},
                      {"version", def->version},
                      {"description", def->description},
                      {"steps", def->steps.size()}});
    }
    return ToolResult(id, {{"workflows", list}});
  }
  if (name == "register_workflow") {
    auto def = args.find("definition");
    if (def == args.end() || !def->is_object()) {
      return ToolError(id, Status::InvalidArgument(
                               "arguments.definition: must be an object"));
    }
    return engine_->RegisterWorkflow(
        *def,
        later([](McpSession& s, const json& id, Result<DefinitionRecord> r) {
          if (!r.ok()) return s.ToolError(id, r.status());
          s.ToolResult(id, {{"name", r->name}, {"version", r->version}});
        }));
  }
  if (name == "start_workflow") {
    auto workflow = StringArg(args, "workflow");
    if (!workflow.ok()) return ToolError(id, workflow.status());
    auto key = StringArg(args, "idempotency_key", false);
    if (!key.ok()) return ToolError(id, key.status());
    StartRequest req{.workflow = *workflow,
                     .input = args.value("input", json::object()),
                     .idempotency_key = *key};
    if (auto v = args.find("version"); v != args.end() && !v->is_null()) {
      if (!v->is_number_unsigned()) {
        return ToolError(id, Status::InvalidArgument(
                                 "arguments.version: must be an integer >= 1"));
      }
      req.version = v->get<uint32_t>();
    }
    return engine_->Start(
        std::move(req),
        later([](McpSession& s, const json& id, Result<StartResult> r) {
          if (!r.ok()) return s.ToolError(id, r.status());
          s.ToolResult(id, {{"saga_id", r->saga_id},
                            {"state", SagaStateName(r->state)},
                            {"created", r->created}});
        }));
  }
  if (name == "engine_stats") {
    const EngineStats st = engine_->stats();
    return ToolResult(id, {{"active_by_state", st.active_by_state},
                           {"attempts_in_flight", st.attempts_in_flight},
                           {"timers_pending", st.timers_pending},
                           {"queued", st.queued},
                           {"commits", st.commits},
                           {"commit_groups", st.commit_groups}});
  }
  // The rest name a saga.
  const bool known =
      name == "get_saga" || name == "cancel_saga" || name == "replay_saga";
  if (!known) {
    return ReplyError(id, jsonrpc::kInvalidParams,
                      "params.name: unknown tool '" + name + "'");
  }
  auto saga_id = StringArg(args, "saga_id");
  if (!saga_id.ok()) return ToolError(id, saga_id.status());
  auto state_reply = [weak, id, sid = *saga_id](Result<SagaState> r) {
    auto self = weak.lock();
    if (!self) return;
    if (!r.ok()) return self->ToolError(id, r.status());
    self->ToolResult(id, {{"saga_id", sid}, {"state", SagaStateName(*r)}});
  };
  if (name == "get_saga") {
    return engine_->ReadSaga(*saga_id, later([](McpSession& s, const json& id,
                                                Result<SagaRecord> r) {
      if (!r.ok()) return s.ToolError(id, r.status());
      s.ToolResult(id, SagaJson(*r));
    }));
  }
  if (name == "cancel_saga") {
    auto c = args.find("compensate");
    if (c != args.end() && !c->is_boolean()) {
      return ToolError(id, Status::InvalidArgument(
                               "arguments.compensate: must be a boolean"));
    }
    const bool compensate = c == args.end() || c->get<bool>();
    return engine_->Cancel(*saga_id, compensate, state_reply);
  }
  auto from = StringArg(args, "from_step", false);
  if (!from.ok()) return ToolError(id, from.status());
  engine_->Replay(*saga_id, *from, state_reply);
}

void McpSession::Reply(const json& id, const json& result) {
  send_(jsonrpc::EncodeResult(id, result));
}

void McpSession::ReplyError(const json& id, int code, const std::string& msg) {
  send_(jsonrpc::EncodeError(id, code, msg));
}

void McpSession::ToolResult(const json& id, const json& structured) {
  Reply(id, {{"content", {{{"type", "text"}, {"text", structured.dump()}}}},
             {"structuredContent", structured},
             {"isError", false}});
}

void McpSession::ToolError(const json& id, const Status& status) {
  const json error = {{"code", ErrorCode(status)},
                      {"message", status.message()}};
  Reply(id, {{"content",
              {{{"type", "text"},
                {"text",
                 error["code"].get<std::string>() + ": " + status.message()}}}},
             {"structuredContent", {{"error", error}}},
             {"isError", true}});
}

}  // namespace cde
