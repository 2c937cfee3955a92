// Prompts (prompts/list, prompts/get): conversations an agent or its user
// starts from, with what they need embedded, so that the model does not
// have to know which tools to call first. docs/mcp.md, "Prompts".
#include "api/jsonrpc.h"
#include "api/mcp_session.h"
#include "api/mcp_util.h"
#include "engine/dlq_entry.h"
#include "storage/saga_id.h"

namespace cde {
namespace {

using nlohmann::json;

constexpr size_t kDlqSummary = 50;  // entries embedded by operate_dlq

json Argument(const char* name, const char* description, bool required) {
  return {{"name", name}, {"description", description}, {"required", required}};
}

json UserText(std::string text) {
  return {{"role", "user"},
          {"content", {{"type", "text"}, {"text", std::move(text)}}}};
}

json UserResource(json contents) {
  return {
      {"role", "user"},
      {"content", {{"type", "resource"}, {"resource", std::move(contents)}}}};
}

}  // namespace

const json& McpSession::Prompts() {
  static const json prompts = json::array({
      {{"name", "diagnose_saga"},
       {"title", "Diagnose a saga"},
       {"description",
        "Why a saga failed, was compensated or is parked, and what to do "
        "about it: the saga and its log are embedded."},
       {"arguments",
        json::array({Argument("saga_id", "the saga to diagnose", true)})}},
      {{"name", "operate_dlq"},
       {"title", "Work through the dead-letter queue"},
       {"description",
        "The parked sagas (of one workflow, or all), why each was parked, "
        "and which to replay, cancel or leave."},
       {"arguments", json::array({Argument(
                         "workflow", "only this workflow's sagas", false)})}},
      {{"name", "write_workflow"},
       {"title", "Write a workflow"},
       {"description",
        "A workflow definition for a task described in words, ready for "
        "register_workflow: the definition language's JSON Schema and a "
        "registered workflow are embedded."},
       {"arguments",
        json::array({Argument("task", "what the workflow should do", true)})}},
  });
  return prompts;
}

bool McpSession::OnPromptRequest(const json& id, const std::string& method,
                                 const json& params) {
  if (method == "prompts/list") {
    if (auto c = params.find("cursor");
        c != params.end() && !c->is_null() &&
        (!c->is_string() || !c->get_ref<const std::string&>().empty())) {
      ReplyError(id, jsonrpc::kInvalidParams,
                 "params.cursor: not a cursor of prompts/list (it returns a "
                 "single page)");
      return true;
    }
    Reply(id, {{"prompts", Prompts()}});
    return true;
  }
  if (method != "prompts/get") return false;
  const std::string name = params.value("name", json()).is_string()
                               ? params["name"].get<std::string>()
                               : "";
  const json args = params.value("arguments", json::object());
  auto invalid = [&](const std::string& message) {
    ReplyError(id, jsonrpc::kInvalidParams, message);
    return true;
  };
  if (!args.is_object()) return invalid("params.arguments: must be an object");
  // Arguments are strings (the spec's prompts/get).
  auto arg = [&](const char* key) -> std::string {
    auto it = args.find(key);
    return it != args.end() && it->is_string() ? it->get<std::string>() : "";
  };
  for (const auto& [key, value] : args.items()) {
    if (!value.is_string()) {
      return invalid("params.arguments." + key + ": must be a string");
    }
  }
  std::weak_ptr<McpSession> weak = weak_from_this();
  if (name == "diagnose_saga") {
    const std::string saga_id = arg("saga_id");
    if (!IsSagaId(saga_id)) {
      return invalid("params.arguments.saga_id: required, a saga id");
    }
    ResourceContents("saga://" + saga_id, [weak, id,
                                           saga_id](Result<json> saga) {
      auto self = weak.lock();
      if (!self || self->closed_) return;
      if (!saga.ok()) {
        return self->ReplyError(
            id, jsonrpc::kInvalidParams,
            "params.arguments.saga_id: " + (saga.status().IsNotFound()
                                                ? "no saga " + saga_id
                                                : saga.status().ToString()));
      }
      self->ResourceContents(
          "saga://" + saga_id + "/log",
          [weak, id, saga_id, saga = std::move(*saga)](Result<json> log) {
            auto self = weak.lock();
            if (!self || self->closed_) return;
            if (!log.ok()) {
              return self->ReplyError(id, jsonrpc::kInternalError,
                                      log.status().ToString());
            }
            self->Reply(
                id,
                {{"description", "Diagnose saga " + saga_id},
                 {"messages",
                  json::array(
                      {UserResource(saga), UserResource(std::move(*log)),
                       UserText(
                           "Above are saga " + saga_id +
                           " of this CDE Orchestrator server and its durable "
                           "log. Say what went wrong, if anything: which "
                           "step failed, with which error, after how many "
                           "attempts, and whether its compensations ran. "
                           "Then say what to do, with the tools: "
                           "replay_saga runs a parked saga again from its "
                           "failed step (or from_step) once the cause is "
                           "fixed; start_workflow starts a new saga (a "
                           "compensated saga cannot be resumed); cancel_saga "
                           "stops a running one; get_saga_log pages through "
                           "a longer log. If the cause is outside the "
                           "workflow (a service down, a bad input), say "
                           "so.")})}});
          });
    });
    return true;
  }
  if (name == "operate_dlq") {
    DlqQuery q{.limit = kDlqSummary};
    if (std::string workflow = arg("workflow"); !workflow.empty()) {
      q.workflow = workflow;
    }
    QueryStore<DlqPage>(
        *engine_, [q](Store& store) { return store.ListDlq(q); },
        [weak, id, q](Result<DlqPage> r) {
          auto self = weak.lock();
          if (!self || self->closed_) return;
          if (!r.ok()) {
            return self->ReplyError(id, jsonrpc::kInternalError,
                                    r.status().ToString());
          }
          json entries = json::array();
          for (const DlqRecord& e : r->entries) {
            entries.push_back(DlqEntryJson(e));
          }
          const json summary = {
              {"workflow", q.workflow ? json(*q.workflow) : json(nullptr)},
              {"entries", std::move(entries)},
              {"more", !r->next_cursor.empty()}};
          self->Reply(
              id,
              {{"description", "The dead-letter queue"},
               {"messages",
                json::array(
                    {UserText("The dead-letter queue of this CDE "
                              "Orchestrator server (oldest first; `more`: "
                              "list_dlq pages through the rest):\n" +
                              summary.dump(2)),
                     UserText(
                         "Group these parked sagas by cause (the step and "
                         "its last error). For each group, say whether the "
                         "cause looks fixed or lasting, and what to do: "
                         "replay_saga {saga_id} (from_step to restart "
                         "elsewhere) runs one again once the cause is "
                         "fixed; get_saga and get_saga_log show one in "
                         "detail; an operator purges what should never run "
                         "again with `cde-admin dlq purge` or POST "
                         "/admin/dlq/purge. Replay one saga of a group "
                         "first and check it before replaying the rest.")})}});
        });
    return true;
  }
  if (name == "write_workflow") {
    const std::string task = arg("task");
    if (task.empty()) return invalid("params.arguments.task: required");
    std::string text =
        "Write a CDE Orchestrator workflow definition (JSON) that does this: " +
        task +
        "\n\nA definition has a name, a version (immutable: change means a new "
        "version), an optional description and input_schema (JSON Schema of "
        "the saga's input) and examples (inputs it accepts), and steps run "
        "in order. Each step has a name, an action (http, exec, sleep, echo, "
        "noop, fail), params (templates such as ${input.x} and "
        "${steps.NAME.output.y} are filled in when the step runs), optional "
        "retry ({max_attempts, initial_backoff_ms, ...}), timeout_ms, and a "
        "compensate action that undoes it when a later step fails for good. "
        "on_failure is compensate (default) or park. Register it with "
        "register_workflow: a refusal lists every problem with its path; fix "
        "them and register again.";
    // The language itself, as the validator knows it.
    json messages = json::array(
        {UserText("The workflow definition language of this server, as JSON "
                  "Schema (register_workflow's definition):\n" +
                  engine_->DefinitionSchema().dump(1))});
    const auto latest = mcp::LatestWorkflows(*engine_);
    if (latest.empty()) {
      messages.push_back(UserText(std::move(text)));
      Reply(id, {{"description", "Write a workflow"},
                 {"messages", std::move(messages)}});
      return true;
    }
    // An example from this server: the largest of its workflows, likely
    // the one that shows the most of the language.
    auto example = latest.front();
    for (const auto& def : latest) {
      if (def->steps.size() > example->steps.size()) example = def;
    }
    ResourceContents(
        "workflow://" + example->name + "/" + std::to_string(example->version),
        [weak, id, text = std::move(text),
         messages = std::move(messages)](Result<json> contents) mutable {
          auto self = weak.lock();
          if (!self || self->closed_) return;
          if (contents.ok()) {
            messages.push_back(UserText(
                "A workflow registered on this server, as an example:"));
            messages.push_back(UserResource(std::move(*contents)));
          }
          messages.push_back(UserText(text));
          self->Reply(id, {{"description", "Write a workflow"},
                           {"messages", std::move(messages)}});
        });
    return true;
  }
  return invalid("params.name: no prompt '" + name +
                 "' (diagnose_saga, operate_dlq, write_workflow)");
}

}  // namespace cde
