#include "api/jsonrpc.h"
#include "api/mcp_session.h"
#include "api/mcp_util.h"

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

}  // namespace

const json& McpSession::Tools() {
  static const json tools = [] {
    json list = json::array({
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
             Obj({{"active_by_state", {{"type", "object"}}}}), true, false,
             true),
    });
    // A start may run as a task (MCP 2025-11-25): the task is the saga.
    for (json& tool : list) {
      if (tool["name"] == "start_workflow") {
        tool["execution"] = {{"taskSupport", "optional"}};
      }
    }
    return list;
  }();
  return tools;
}

void McpSession::CallTool(const json& id, const std::string& name,
                          const json& args, const json& meta) {
  (void)meta;
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
    auto workflow = mcp::StringArg(args, "workflow");
    if (!workflow.ok()) return ToolError(id, workflow.status());
    auto key = mcp::StringArg(args, "idempotency_key", false);
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
  auto saga_id = mcp::StringArg(args, "saga_id");
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
      s.ToolResult(id, mcp::SagaJson(*r));
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
  auto from = mcp::StringArg(args, "from_step", false);
  if (!from.ok()) return ToolError(id, from.status());
  engine_->Replay(*saga_id, *from, state_reply);
}

}  // namespace cde
