#include <cstdint>
#include <map>

#include "api/jsonrpc.h"
#include "api/mcp_session.h"
#include "api/mcp_util.h"
#include "engine/dlq_entry.h"
#include "engine/input_schema.h"
#include "engine/item_view.h"
#include "storage/saga_id.h"

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
// The annotations are hints a client may show or act on (confirming a
// destructive call, retrying an idempotent one): each says what holds for
// every call. open_world: the call can reach outside the server (a saga's
// steps call services and run programs).
struct Hints {
  bool read_only = false;
  bool destructive = false;
  bool idempotent = false;
  bool open_world = false;
};
constexpr Hints kReads{.read_only = true, .idempotent = true};

json Tool(const char* name, const char* title, const char* description,
          json input, json output, Hints hints) {
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
           {{"readOnlyHint", hints.read_only},
            {"destructiveHint", hints.destructive},
            {"idempotentHint", hints.idempotent},
            {"openWorldHint", hints.open_world}}}};
}

const json kSagaRef =
    Obj({{"saga_id", {{"type", "string"}}}, {"state", {{"type", "string"}}}},
        {"saga_id", "state"});

const json kLimit = {{"type", "integer"},
                     {"minimum", 1},
                     {"maximum", 1000},
                     {"description", "page size (default 50; 100 for logs)"}};

// The definition's first example, else one built from its schema.
json ExampleInputOf(const WorkflowDefinition& def) {
  if (def.examples.is_array() && !def.examples.empty()) {
    return def.examples[0];
  }
  return GenerateExampleInput(def.input_schema);
}

json StateNames() {
  json names = json::array();
  for (uint8_t code = 1; auto state = SagaStateFromCode(code); ++code) {
    names.push_back(SagaStateName(*state));
  }
  return names;
}

// The definitions of the engine by (name, version), for step names.
class Definitions {
 public:
  explicit Definitions(const Engine& engine) {
    for (auto& def : engine.ListWorkflows()) {
      defs_[{def->name, def->version}] = def;
    }
  }
  const WorkflowDefinition* Find(const std::string& name,
                                 uint32_t version) const {
    auto it = defs_.find({name, version});
    return it == defs_.end() ? nullptr : it->second.get();
  }

 private:
  std::map<std::pair<std::string, uint32_t>,
           std::shared_ptr<const WorkflowDefinition>>
      defs_;
};

// A saga as list_sagas shows it. current_step: the step it waits on, or
// for a parked saga the step that failed (its compensation, if that failed).
json SagaSummary(const SagaRecord& r, const WorkflowDefinition* def) {
  json out = {{"saga_id", r.id},
              {"workflow", r.workflow},
              {"version", r.version},
              {"state", SagaStateName(r.state)},
              {"created_ms", r.created_ms},
              {"updated_ms", r.updated_ms}};
  if (auto saga = FromRecord(r); saga.ok()) {
    const SagaView view(*saga, def);
    if (auto at = view.position(); at && at->step->spec != nullptr) {
      out["current_step"] = at->step->path;
    }
  }
  return out;
}

// A list tool's cursor: a saga id the previous page ended at, made opaque.
// "" for the first page; InvalidArgument for anything this server did not
// hand out (the store would take any string as a position).
Result<std::string> CursorArg(const json& args, const char* tool) {
  auto cursor = mcp::StringArg(args, "cursor", false);
  if (!cursor.ok() || cursor->empty()) return cursor;
  auto position = mcp::DecodeCursor(*cursor);
  if (!position || !IsSagaId(*position)) {
    return Status::InvalidArgument(
        std::string("arguments.cursor: not a next_cursor returned by ") + tool);
  }
  return *position;
}

// The arguments every paged list tool shares: workflow?, limit?, cursor?.
struct PageArgs {
  std::optional<std::string> workflow;
  size_t limit = 50;
  std::string cursor;  // the store's position; "" for the first page
};

Result<PageArgs> ParsePageArgs(const json& args, const char* tool) {
  PageArgs page;
  auto workflow = mcp::StringArg(args, "workflow", false);
  if (!workflow.ok()) return workflow.status();
  if (!workflow->empty()) page.workflow = *workflow;
  auto limit = mcp::IntArg(args, "limit", 1, 1000);
  if (!limit.ok()) return limit.status();
  page.limit = limit->value_or(50);
  auto cursor = CursorArg(args, tool);
  if (!cursor.ok()) return cursor.status();
  page.cursor = *cursor;
  return page;
}

}  // namespace

const json& McpSession::Tools() {
  static const json tools = [] {
    json list = json::array({
        Tool("list_workflows", "List workflows",
             "Start here. Every registered workflow: its name and versions, "
             "what it does, its input_schema (the JSON Schema its input must "
             "satisfy) and an example_input that satisfies it. Pass one to "
             "start_workflow as `input`, or call the workflow's own run_ tool "
             "(tools/list).",
             Obj(json::object()),
             Obj({{"workflows",
                   {{"type", "array"},
                    {"items",
                     Obj({{"name", {{"type", "string"}}},
                          {"version", {{"type", "integer"}}},
                          {"description", {{"type", "string"}}},
                          {"input_schema",
                           {{"type", {"object", "null"}},
                            {"description", "null: any object is accepted"}}},
                          {"example_input",
                           {{"type", {"object", "null"}},
                            {"description",
                             "an input the workflow accepts (null if none "
                             "could be built from its schema)"}}},
                          {"steps", {{"type", "integer"}}},
                          {"origin", {{"type", "string"}}},
                          {"registered_by", {{"type", {"string", "null"}}}}},
                         {"name", "version"})}}}},
                 {"workflows"}),
             kReads),
        Tool("register_workflow", "Register a workflow",
             "Defines a new workflow (or a new version of one): named steps "
             "run in order, each an action (http, exec, sleep, echo, noop, "
             "fail) with params, retries and an optional compensation run "
             "backwards when a later step fails. The definition's JSON Schema "
             "below is the whole language, with each key explained. The "
             "definition is validated first; a refusal lists every problem "
             "with its path. Versions are immutable: registering the same "
             "content again is a no-op, different content needs a new "
             "version. Then call start_workflow.",
             // ListTools puts the definition's JSON Schema here.
             Obj({{"definition", {{"type", "object"}}}}, {"definition"}),
             Obj({{"name", {{"type", "string"}}},
                  {"version", {{"type", "integer"}}}},
                 {"name", "version"}),
             {.idempotent = true}),
        Tool("start_workflow", "Start a workflow",
             "Runs a workflow as a saga: durable, resumed after a crash, "
             "compensated or parked when a step fails for good. Its steps "
             "call services and run programs. Returns the saga_id at once, "
             "or with wait_ms the saga when it ends (completed, compensated, "
             "cancelled or parked; timed_out: true if it is still going), "
             "with `next` saying what to do about it. Follow it with "
             "get_saga. An idempotency_key makes a repeated start return the "
             "same saga instead of starting another. Progress notifications "
             "follow each step when the request has a progressToken.",
             Obj({{"workflow", {{"type", "string"}}},
                  {"version", {{"type", "integer"}, {"minimum", 1}}},
                  {"input",
                   {{"type", "object"},
                    {"description",
                     "must satisfy the workflow's input_schema "
                     "(list_workflows)"}}},
                  {"idempotency_key", {{"type", "string"}}},
                  {"wait_ms",
                   {{"type", "integer"},
                    {"minimum", 0},
                    {"maximum", 600000},
                    {"description",
                     "wait up to this long for the saga to end (default 0: "
                     "answer once the start is durable)"}}}},
                 {"workflow"}),
             Obj({{"saga_id", {{"type", "string"}}},
                  {"state", {{"type", "string"}}},
                  {"created", {{"type", "boolean"}}},
                  {"saga",
                   {{"type", "object"},
                    {"description", "the ended saga, as get_saga shows it"}}},
                  {"timed_out", {{"type", "boolean"}}}},
                 {"saga_id", "state", "created"}),
             {.open_world = true}),
        Tool("get_saga", "Get a saga",
             "A saga's state, each step's status, attempts, output and error, "
             "and `next`: what to do about it (replay_saga for a parked one). "
             "get_saga_log has every event.",
             Obj({{"saga_id", {{"type", "string"}}}}, {"saga_id"}),
             Obj({{"saga_id", {{"type", "string"}}},
                  {"state", {{"type", "string"}}},
                  {"next", {{"type", "string"}}}},
                 {"saga_id", "state"}),
             kReads),
        Tool("cancel_saga", "Cancel a saga",
             "Stops a running saga after its current attempt, then undoes its "
             "completed steps by running their compensations (unless "
             "compensate is false), which call services too. A saga that "
             "already ended is left as it is.",
             Obj({{"saga_id", {{"type", "string"}}},
                  {"compensate", {{"type", "boolean"}}}},
                 {"saga_id"}),
             kSagaRef,
             {.destructive = true, .idempotent = true, .open_world = true}),
        Tool("replay_saga", "Replay a parked saga",
             "Runs a parked saga (one in the dead-letter queue: list_dlq) "
             "again from its failed step, or from from_step, with a fresh "
             "retry budget. Fix what made it fail first (get_saga says why).",
             Obj({{"saga_id", {{"type", "string"}}},
                  {"from_step", {{"type", "string"}}}},
                 {"saga_id"}),
             kSagaRef, {.open_world = true}),
        Tool("list_sagas", "List sagas",
             "Sagas newest first, optionally of one state and/or workflow, "
             "a page at a time (pass next_cursor back as cursor). get_saga "
             "shows one whole. Sagas whose stored rows do not read are "
             "listed apart under unreadable, with the error.",
             Obj({{"state", {{"type", "string"}, {"enum", StateNames()}}},
                  {"workflow", {{"type", "string"}}},
                  {"limit", kLimit},
                  {"cursor", {{"type", "string"}}}}),
             Obj({{"sagas", {{"type", "array"}}},
                  {"next_cursor", {{"type", "string"}}},
                  {"unreadable", {{"type", "array"}}}},
                 {"sagas"}),
             kReads),
        Tool("get_saga_log", "Get a saga's log",
             "The events of a saga's durable log in order (each attempt, its "
             "error, each retry and compensation), from from_seq on (pass "
             "next_seq back as from_seq for the next page). Use it to find "
             "out why a step failed.",
             Obj({{"saga_id", {{"type", "string"}}},
                  {"from_seq", {{"type", "integer"}, {"minimum", 0}}},
                  {"limit", kLimit}},
                 {"saga_id"}),
             Obj({{"saga_id", {{"type", "string"}}},
                  {"events", {{"type", "array"}}},
                  {"next_seq", {{"type", "integer"}}}},
                 {"saga_id", "events"}),
             kReads),
        Tool("list_map_items", "List the items of a map step",
             "The items of a saga's map step that have started, in index "
             "order, each with its outcome (status, error) and its steps' "
             "states; optionally only those of one status (failed: which "
             "items failed, and why). get_saga shows the map step's counts. "
             "Pass next_index back as from_index for the next page.",
             Obj({{"saga_id", {{"type", "string"}}},
                  {"map_step",
                   {{"type", "string"},
                    {"description",
                     "the map step's path, as get_saga names it, or for a "
                     "map step inside another map step one run of it, as "
                     "an outer item's step paths name it (orders[2].lines); "
                     "optional when the workflow has one map step outside "
                     "map steps"}}},
                  {"status",
                   {{"type", "string"}, {"enum", json(StepStatusNames())}}},
                  {"from_index", {{"type", "integer"}, {"minimum", 0}}},
                  {"limit", kLimit}},
                 {"saga_id"}),
             Obj({{"saga_id", {{"type", "string"}}},
                  {"map_step", {{"type", "string"}}},
                  {"total", {{"type", "integer"}}},
                  {"started", {{"type", "integer"}}},
                  {"items", {{"type", "array"}}},
                  {"next_index", {{"type", "integer"}}}},
                 {"saga_id", "map_step", "total", "started", "items"}),
             kReads),
        Tool("list_dlq", "List the dead-letter queue",
             "Parked sagas, oldest first, optionally of one workflow: why "
             "each was parked, its step, last error and attempts. replay_saga "
             "runs one again once the cause is fixed.",
             Obj({{"workflow", {{"type", "string"}}},
                  {"limit", kLimit},
                  {"cursor", {{"type", "string"}}}}),
             Obj({{"entries", {{"type", "array"}}},
                  {"next_cursor", {{"type", "string"}}}},
                 {"entries"}),
             kReads),
        Tool("engine_stats", "Engine statistics",
             "Active sagas by state, attempts in flight, timers, commits, "
             "attempts waiting at a rate limit or circuit breaker, and each "
             "circuit breaker's state: whether the engine and the services "
             "its steps call are healthy.",
             Obj(json::object()),
             Obj({{"active_by_state", {{"type", "object"}}},
                  {"waiting_at_gates", {{"type", "integer"}}},
                  {"circuit_breakers", {{"type", "array"}}}}),
             kReads),
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

std::optional<Scope> McpSession::ToolScope(const std::string& tool) {
  static const std::map<std::string, Scope> kScopes = {
      {"list_workflows", Scope::kRead}, {"get_saga", Scope::kRead},
      {"list_sagas", Scope::kRead},     {"get_saga_log", Scope::kRead},
      {"list_map_items", Scope::kRead}, {"list_dlq", Scope::kRead},
      {"engine_stats", Scope::kRead},   {"start_workflow", Scope::kRun},
      {"cancel_saga", Scope::kRun},     {"register_workflow", Scope::kDefine},
      {"replay_saga", Scope::kAdmin}};
  auto it = kScopes.find(tool);
  if (it == kScopes.end()) {
    // A workflow's own tool starts it, as start_workflow does.
    if (tool.starts_with("run_")) return Scope::kRun;
    return std::nullopt;
  }
  return it->second;
}

void McpSession::CallTool(const json& id, const std::string& name,
                          const json& args, const json& meta,
                          const McpMessageContext& context) {
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
                      {"input_schema", def->input_schema},
                      {"example_input", ExampleInputOf(*def)},
                      {"steps", def->steps.size()},
                      {"origin", DefinitionOriginName(def->origin)},
                      {"registered_by", def->registered_by.empty()
                                            ? json(nullptr)
                                            : json(def->registered_by)}});
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
        *def, DefinitionOrigin::kClient, context.caller.name,
        later([](McpSession& s, const json& id, Result<DefinitionRecord> r) {
          if (!r.ok()) return s.ToolError(id, r.status());
          s.ToolResult(id, {{"name", r->name}, {"version", r->version}});
        }));
  }
  if (name == "start_workflow") {
    return StartWorkflow(id, args, meta, context);
  }
  if (name == "list_sagas") return ListSagas(id, args);
  if (name == "get_saga_log") return GetSagaLog(id, args);
  if (name == "list_map_items") return ListMapItems(id, args);
  if (name == "list_dlq") return ListDlq(id, args);
  if (name == "engine_stats") {
    const EngineStats st = engine_->stats();
    return ToolResult(id,
                      {{"active_by_state", st.active_by_state},
                       {"attempts_in_flight", st.attempts_in_flight},
                       {"timers_pending", st.timers_pending},
                       {"queued", st.queued},
                       {"commits", st.commits},
                       {"commit_groups", st.commit_groups},
                       {"waiting_at_gates", st.waiting_at_gates},
                       {"circuit_breakers", mcp::BreakersJson(st.breakers)}});
  }
  // The rest name a saga.
  const bool known =
      name == "get_saga" || name == "cancel_saga" || name == "replay_saga";
  if (!known) {
    if (std::string workflow = WorkflowOfTool(name); !workflow.empty()) {
      return RunWorkflowTool(id, workflow, args, meta, context);
    }
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
      s.ToolResult(id, mcp::SagaJson(*s.engine_, std::move(*r)));
    }));
  }
  if (name == "cancel_saga") {
    auto c = args.find("compensate");
    if (c != args.end() && !c->is_boolean()) {
      return ToolError(id, Status::InvalidArgument(
                               "arguments.compensate: must be a boolean"));
    }
    const bool compensate = c == args.end() || c->get<bool>();
    return engine_->Cancel(*saga_id, compensate, context.caller.name,
                           state_reply);
  }
  auto from = mcp::StringArg(args, "from_step", false);
  if (!from.ok()) return ToolError(id, from.status());
  engine_->Replay(*saga_id, *from, context.caller.name, state_reply);
}

void McpSession::ListSagas(const json& id, const json& args) {
  SagaQuery q;
  auto state = mcp::StringArg(args, "state", false);
  if (!state.ok()) return ToolError(id, state.status());
  if (!state->empty()) {
    q.state = SagaStateFromName(*state);
    if (!q.state) {
      return ToolError(id, Status::InvalidArgument(
                               "arguments.state: unknown state '" + *state +
                               "'; one of " + mcp::SagaStateNames()));
    }
  }
  auto page = ParsePageArgs(args, "list_sagas");
  if (!page.ok()) return ToolError(id, page.status());
  q.workflow = page->workflow;
  q.limit = page->limit;
  q.cursor = page->cursor;
  std::weak_ptr<McpSession> weak = weak_from_this();
  QueryStore<SagaPage>(
      *engine_, [q](Store& store) { return store.ListSagas(q); },
      [weak, id](Result<SagaPage> r) {
        auto self = weak.lock();
        if (!self) return;
        if (!r.ok()) return self->ToolError(id, r.status());
        const Definitions defs(*self->engine_);
        json sagas = json::array();
        for (const SagaRecord& rec : r->sagas) {
          sagas.push_back(
              SagaSummary(rec, defs.Find(rec.workflow, rec.version)));
        }
        json out = {{"sagas", std::move(sagas)}};
        if (!r->next_cursor.empty()) {
          out["next_cursor"] = mcp::EncodeCursor(r->next_cursor);
        }
        if (!r->unreadable.empty()) {
          json unreadable = json::array();
          for (const SagaPage::Unreadable& u : r->unreadable) {
            unreadable.push_back(
                {{"saga_id", u.id}, {"error", u.error.ToString()}});
          }
          out["unreadable"] = std::move(unreadable);
        }
        self->ToolResult(id, out);
      });
}

void McpSession::GetSagaLog(const json& id, const json& args) {
  auto saga_id = mcp::StringArg(args, "saga_id");
  if (!saga_id.ok()) return ToolError(id, saga_id.status());
  auto from = mcp::IntArg(args, "from_seq", 0, INT64_MAX);
  if (!from.ok()) return ToolError(id, from.status());
  auto limit = mcp::IntArg(args, "limit", 1, 1000);
  if (!limit.ok()) return ToolError(id, limit.status());
  const size_t n = limit->value_or(100);
  std::weak_ptr<McpSession> weak = weak_from_this();
  QueryStore<std::vector<LogRecord>>(
      *engine_,
      [sid = *saga_id, from = from->value_or(1),
       n](Store& store) -> Result<std::vector<LogRecord>> {
        auto saga = store.GetSaga(sid);
        if (!saga.ok()) return saga.status();
        return store.ReadLog(sid, from, n + 1);  // one more: is there a next?
      },
      [weak, id, sid = *saga_id, n](Result<std::vector<LogRecord>> r) {
        auto self = weak.lock();
        if (!self) return;
        if (!r.ok()) return self->ToolError(id, r.status());
        json events = json::array();
        for (size_t i = 0; i < r->size() && i < n; ++i) {
          events.push_back(mcp::LogJson((*r)[i]));
        }
        json out = {{"saga_id", sid}, {"events", std::move(events)}};
        if (r->size() > n) out["next_seq"] = (*r)[n].seq;
        self->ToolResult(id, out);
      });
}

void McpSession::ListMapItems(const json& id, const json& args) {
  auto saga_id = mcp::StringArg(args, "saga_id");
  if (!saga_id.ok()) return ToolError(id, saga_id.status());
  ItemQuery query;
  auto map_step = mcp::StringArg(args, "map_step", /*required=*/false);
  if (!map_step.ok()) return ToolError(id, map_step.status());
  query.map_step = *map_step;
  auto status = mcp::StringArg(args, "status", /*required=*/false);
  if (!status.ok()) return ToolError(id, status.status());
  if (!status->empty()) {
    query.status = StepStatusFromName(*status);
    if (!query.status) {
      return ToolError(id,
                       Status::InvalidArgument("arguments.status: '" + *status +
                                               "' is not one of " +
                                               json(StepStatusNames()).dump()));
    }
  }
  auto from = mcp::IntArg(args, "from_index", 0, UINT32_MAX);
  if (!from.ok()) return ToolError(id, from.status());
  query.from_index = static_cast<uint32_t>(from->value_or(0));
  auto limit = mcp::IntArg(args, "limit", 1, 1000);
  if (!limit.ok()) return ToolError(id, limit.status());
  query.limit = limit->value_or(50);
  std::weak_ptr<McpSession> weak = weak_from_this();
  QueryStore<ItemPage>(
      *engine_,
      [sid = *saga_id, query](Store& store) {
        return ReadItemPage(store, sid, query);
      },
      [weak, id, sid = *saga_id](Result<ItemPage> r) {
        auto self = weak.lock();
        if (!self) return;
        if (!r.ok()) return self->ToolError(id, r.status());
        json out = {{"saga_id", sid},
                    {"map_step", r->map_step},
                    {"total", r->total},
                    {"started", r->started},
                    {"items", std::move(r->items)}};
        if (r->next_index) out["next_index"] = *r->next_index;
        self->ToolResult(id, out);
      });
}

void McpSession::ListDlq(const json& id, const json& args) {
  auto page = ParsePageArgs(args, "list_dlq");
  if (!page.ok()) return ToolError(id, page.status());
  DlqQuery q{
      .workflow = page->workflow, .limit = page->limit, .cursor = page->cursor};
  std::weak_ptr<McpSession> weak = weak_from_this();
  QueryStore<DlqPage>(
      *engine_, [q](Store& store) { return store.ListDlq(q); },
      [weak, id](Result<DlqPage> r) {
        auto self = weak.lock();
        if (!self) return;
        if (!r.ok()) return self->ToolError(id, r.status());
        json entries = json::array();
        for (const DlqRecord& e : r->entries) {
          entries.push_back(DlqEntryJson(e));
        }
        json out = {{"entries", std::move(entries)}};
        if (!r->next_cursor.empty()) {
          out["next_cursor"] = mcp::EncodeCursor(r->next_cursor);
        }
        self->ToolResult(id, out);
      });
}

}  // namespace cde
