// Tasks (MCP 2025-11-25): a task-augmented start_workflow; the task is the
// saga (taskId = saga id), so tasks live exactly as long as saga logs and
// survive restarts. Only "who to notify" is session state (SagaFollower).
// docs/mcp.md, "Tasks".
#include <algorithm>
#include <optional>
#include <string_view>

#include "api/jsonrpc.h"
#include "api/mcp_session.h"
#include "api/mcp_util.h"

namespace cde {

using nlohmann::json;

namespace {

// Suggested tasks/get interval.
constexpr int kPollIntervalMs = 1000;
// Tasks per tasks/list page.
constexpr size_t kTaskPage = 100;
constexpr const char* kRelatedTask = "io.modelcontextprotocol/related-task";
constexpr const char* kTaskNotFound = "Failed to retrieve task: Task not found";

bool IsTerminalStatus(std::string_view status) {
  return status == "completed" || status == "failed" || status == "cancelled";
}

// The task status of a saga in `state`, once a cancel was requested or
// not. A cancel request is final for the task at once (the spec wants the
// task cancelled when tasks/cancel answers, and cancelled for good), even
// while the saga still compensates its completed steps.
std::string_view TaskStatusName(SagaState state, bool cancel_requested) {
  if (cancel_requested) return "cancelled";
  switch (state) {
    case SagaState::kCompleted:
      return "completed";
    case SagaState::kCompensated:
    case SagaState::kParked:
      return "failed";
    case SagaState::kCancelled:
      return "cancelled";
    default:
      return "working";
  }
}

// "kind: message" of an error.
std::string ErrorText(const ErrorInfo& e) {
  return e.kind.empty()      ? e.message
         : e.message.empty() ? e.kind
                             : e.kind + ": " + e.message;
}

// Why a saga failed: its failed step and error, else the compensation that
// failed (a saga parked by a failed compensation).
std::string FailureText(const SagaView& view) {
  const Saga& s = view.saga();
  if (!s.failure.empty()) {
    const StepView* step = view.failed_step();
    return "step " + (step != nullptr ? "'" + step->path + "'" : "?") +
           " failed (" + ErrorText(s.failure) + ")";
  }
  if (const StepView* step = view.failed_compensation()) {
    return "the compensation of step '" + step->path + "' failed (" +
           ErrorText(step->state->compensation_error) + ")";
  }
  return "";
}

// The message that goes with a saga's task status (TaskStatusName).
std::string TaskStatusMessage(const Engine& engine, const Saga& s) {
  const auto def = mcp::FindWorkflow(engine, s.workflow, s.version);
  const SagaView view(s, def.get());
  std::string failure = FailureText(view);
  if (s.cancel_requested) {
    const bool compensate = s.compensate_on_cancel;
    switch (s.state) {
      case SagaState::kCancelled:
        return compensate ? "The saga was cancelled; its "
                            "completed steps were compensated."
                          : "The saga was cancelled without "
                            "compensation.";
      case SagaState::kParked:
        return "The saga was cancelled, but " +
               (failure.empty() ? std::string("a compensation failed")
                                : failure) +
               ": it is parked in the dead-letter queue.";
      default:
        return compensate ? "Cancel requested: the saga stops after its "
                            "current attempt and compensates its completed "
                            "steps (saga state " +
                                std::string(SagaStateName(s.state)) + ")."
                          : "Cancel requested: the saga stops after its "
                            "current attempt.";
    }
  }
  if (failure.empty()) failure = "a step failed";
  switch (s.state) {
    case SagaState::kCompleted:
      return "The saga completed.";
    case SagaState::kCompensated:
      return "The saga failed and was compensated: " + failure + ".";
    case SagaState::kParked:
      return "The saga is parked in the dead-letter queue: " + failure +
             ". Fix the cause, then replay_saga runs it "
             "again from the failed step.";
    case SagaState::kCancelled:
      return "The saga was cancelled.";
    case SagaState::kCompensating:
      return "The saga failed: " + failure +
             "; compensating its completed steps.";
    default:
      if (view.waits().empty()) return "The saga is running.";
      const WaitView& w = view.waits().front();
      switch (w.kind) {
        case Wait::Kind::kAttempt:
        case Wait::Kind::kSleep:
          return "Running step '" + w.path + "' (attempt " +
                 std::to_string(w.attempt) + ").";
        case Wait::Kind::kBackoff:
          return "Step '" + w.path + "' failed; retrying at " +
                 mcp::IsoTime(w.due_ms) + ".";
        case Wait::Kind::kQueued:
          return "Queued under the workflow's max_concurrency limit.";
        default:
          return "The saga is running.";
      }
  }
}

// A stored saga's task status and its message. A snapshot that does not
// decode (the engine parks such a saga as poison) says so.
struct TaskState {
  std::string_view status;
  std::string message;
};
TaskState TaskStateOf(const Engine& engine, const SagaRecord& r) {
  auto saga = FromRecord(r);
  if (!saga.ok()) {
    return {TaskStatusName(r.state, false),
            "The saga's snapshot cannot be read: " + saga.status().message()};
  }
  return {TaskStatusName(r.state, saga->cancel_requested),
          TaskStatusMessage(engine, *saga)};
}

// What the start_workflow call would have returned, once the saga is over:
// an error result unless it completed.
json TaskResult(const Engine& engine, const SagaRecord& r) {
  const auto [status, message] = TaskStateOf(engine, r);
  json structured = {{"saga_id", r.id},
                     {"state", SagaStateName(r.state)},
                     {"saga", mcp::SagaJson(engine, r)}};
  const bool ok = status == "completed";
  if (!ok) {
    structured["error"] = {
        {"code", "saga_" + std::string(SagaStateName(r.state))},
        {"message", message}};
  }
  return {{"content", {{{"type", "text"}, {"text", structured.dump()}}}},
          {"structuredContent", structured},
          {"isError", !ok},
          {"_meta", {{kRelatedTask, {{"taskId", r.id}}}}}};
}

}  // namespace

json McpSession::TaskJson(const SagaRecord& r) const {
  const auto [status, message] = TaskStateOf(*engine_, r);
  return {{"taskId", r.id},
          {"status", status},
          {"statusMessage", message},
          {"createdAt", mcp::IsoTime(r.created_ms)},
          {"lastUpdatedAt", mcp::IsoTime(r.updated_ms)},
          {"ttl", nullptr},  // kept as long as the saga log
          {"pollInterval", kPollIntervalMs}};
}

bool McpSession::OnTaskRequest(const json& id, const std::string& method,
                               const json& params, const Principal& caller) {
  if (method == "tasks/list") {
    ListTasks(id, params);
    return true;
  }
  const bool get = method == "tasks/get", result = method == "tasks/result",
             cancel = method == "tasks/cancel";
  if (!get && !result && !cancel) return false;
  auto task_id = params.find("taskId");
  if (task_id == params.end() || !task_id->is_string()) {
    ReplyError(id, jsonrpc::kInvalidParams,
               "params.taskId: must be the taskId of a task");
    return true;
  }
  const std::string tid = task_id->get<std::string>();
  if (get) {
    GetTask(id, tid);
  } else if (result) {
    GetTaskResult(id, tid);
  } else {
    AuditCall(caller, method, {{"saga_id", tid}});
    CancelTask(id, tid, caller);
  }
  return true;
}

void McpSession::CallToolAsTask(const json& id, const std::string& name,
                                const json& args, const json& task,
                                const json& meta,
                                const McpMessageContext& context) {
  if (!task.is_object()) {
    return ReplyError(id, jsonrpc::kInvalidParams,
                      "params.task: must be an object");
  }
  if (auto ttl = task.find("ttl");
      ttl != task.end() && !ttl->is_null() && !ttl->is_number()) {
    return ReplyError(id, jsonrpc::kInvalidParams,
                      "params.task.ttl: must be a number of milliseconds");
  }
  const json tools = ListTools();
  const json* tool = nullptr;
  for (const json& t : tools) {
    if (t["name"] == name) tool = &t;
  }
  if (tool == nullptr) {
    return ReplyError(id, jsonrpc::kInvalidParams,
                      "params.name: unknown tool '" + name + "'");
  }
  // Tools without execution.taskSupport "optional" or "required" take no
  // task: -32601, as the spec's tool-level negotiation says.
  const std::string support =
      tool->value(json::json_pointer("/execution/taskSupport"), "forbidden");
  if (support == "forbidden" || name != "start_workflow") {
    return ReplyError(id, jsonrpc::kMethodNotFound,
                      "tool '" + name +
                          "' does not support task-augmented calls "
                          "(execution.taskSupport: forbidden); call it "
                          "without params.task");
  }
  // No task exists until the saga does: a start refused here is a protocol
  // error, with the tool error code as data.
  auto refuse = [](McpSession& s, const json& id, const Status& st) {
    const bool bad_params =
        st.IsInvalidArgument() || st.IsNotFound() || st.IsAlreadyExists();
    s.ReplyErrorData(
        id, bad_params ? jsonrpc::kInvalidParams : jsonrpc::kInternalError,
        st.message(), {{"code", mcp::ErrorCode(st)}});
  };
  auto req = mcp::StartArgs(args, meta, context.correlation_id,
                            context.traceparent, context.caller.name);
  if (!req.ok()) return refuse(*this, id, req.status());
  if (Status may = MayFollow(""); !may.ok()) return refuse(*this, id, may);
  std::weak_ptr<McpSession> weak = weak_from_this();
  engine_->Start(std::move(req).value(), [weak, id,
                                          refuse](Result<StartResult> started) {
    auto self = weak.lock();
    if (!self || self->closed_) return;
    if (!started.ok()) return refuse(*self, id, started.status());
    const bool created = started->created;
    self->engine_->ReadSaga(started->saga_id, [weak, id,
                                               created](Result<SagaRecord> r) {
      auto self = weak.lock();
      if (!self || self->closed_) return;
      if (!r.ok()) {
        return self->ReplyError(
            id, jsonrpc::kInternalError,
            "reading the new saga: " + r.status().ToString());
      }
      json task = self->TaskJson(*r);
      const std::string status = task["status"].get<std::string>();
      self->Reply(id, {{"task", task},
                       {"_meta",
                        {{"io.modelcontextprotocol/model-immediate-response",
                          std::string(created ? "Started" : "Found") +
                              " saga " + r->id + " of workflow " + r->workflow +
                              " v" + std::to_string(r->version) +
                              " as a task; it runs in the background "
                              "(tasks/get to follow it, tasks/result for its "
                              "outcome)."}}}});
      if (!IsTerminalStatus(status)) self->FollowTask(r->id, status);
    });
  });
}

void McpSession::FollowTask(const std::string& task_id,
                            const std::string& status) {
  SagaFollower& f = FollowerOf(task_id);
  if (f.task_status.empty()) f.task_status = status;
}

void McpSession::OnTaskChange(const std::string& task_id, const Saga& saga) {
  auto it = followers_.find(task_id);
  if (it == followers_.end()) return;
  // The status is known from the saga in memory; its record is built only
  // for what carries it, once.
  std::optional<SagaRecord> record;
  auto full = [&]() -> const SagaRecord& {
    if (!record) record = ToRecordWithInput(saga);
    return *record;
  };
  if (SagaFollower& f = it->second; !f.task_status.empty()) {
    const std::string_view now =
        TaskStatusName(saga.state, saga.cancel_requested);
    if (now != f.task_status) {
      f.task_status = IsTerminalStatus(now) ? "" : std::string(now);
      Notify("notifications/tasks/status", TaskJson(full()));
    }
  }
  it = followers_.find(task_id);  // Notify may have closed the session
  if (closed_ || it == followers_.end() || it->second.result_waiters.empty() ||
      IsActive(saga.state)) {
    return;
  }
  const std::vector<json> waiters = std::move(it->second.result_waiters);
  it->second.result_waiters.clear();
  const json result = TaskResult(*engine_, full());
  for (const json& id : waiters) Reply(id, result);
}

void McpSession::GetTask(const json& id, const std::string& task_id) {
  std::weak_ptr<McpSession> weak = weak_from_this();
  engine_->ReadSaga(task_id, [weak, id, task_id](Result<SagaRecord> r) {
    auto self = weak.lock();
    if (!self || self->closed_) return;
    if (r.status().IsNotFound()) {
      return self->ReplyErrorData(id, jsonrpc::kInvalidParams, kTaskNotFound,
                                  {{"taskId", task_id}});
    }
    if (!r.ok()) {
      return self->ReplyError(
          id, jsonrpc::kInternalError,
          "reading task " + task_id + ": " + r.status().ToString());
    }
    self->Reply(id, self->TaskJson(*r));
  });
}

// Blocks (answers later) until the saga is no longer active: completed,
// compensated, parked or cancelled, so the result holds the final saga.
void McpSession::GetTaskResult(const json& id, const std::string& task_id) {
  if (Status may = MayFollow(task_id); !may.ok()) {
    return ReplyErrorData(id, jsonrpc::kInvalidRequest, may.message(),
                          {{"code", mcp::ErrorCode(may)}});
  }
  // Follow first, then read: a change in between cannot be missed.
  FollowerOf(task_id).result_waiters.push_back(id);
  std::weak_ptr<McpSession> weak = weak_from_this();
  engine_->ReadSaga(task_id, [weak, id, task_id](Result<SagaRecord> r) {
    auto self = weak.lock();
    if (self && !self->closed_) self->OnTaskResultRead(id, task_id, r);
  });
}

void McpSession::OnTaskResultRead(const json& id, const std::string& task_id,
                                  const Result<SagaRecord>& r) {
  auto it = followers_.find(task_id);
  if (it == followers_.end()) return;
  auto& waiters = it->second.result_waiters;
  const auto waiting = std::find(waiters.begin(), waiters.end(), id);
  if (waiting == waiters.end()) return;      // a change answered it
  if (r.ok() && IsActive(r->state)) return;  // not over yet
  waiters.erase(waiting);
  DropIfIdle(task_id);
  if (r.status().IsNotFound()) {
    return ReplyErrorData(id, jsonrpc::kInvalidParams, kTaskNotFound,
                          {{"taskId", task_id}});
  }
  if (!r.ok()) {
    return ReplyError(id, jsonrpc::kInternalError,
                      "reading the task: " + r.status().ToString());
  }
  Reply(id, TaskResult(*engine_, *r));
}

void McpSession::ListTasks(const json& id, const json& params) {
  SagaQuery query{.limit = kTaskPage};
  if (auto c = params.find("cursor"); c != params.end() && !c->is_null()) {
    auto decoded = c->is_string() ? mcp::DecodeCursor(c->get<std::string>())
                                  : std::nullopt;
    if (!decoded || !decoded->starts_with("t") || decoded->size() == 1) {
      return ReplyError(id, jsonrpc::kInvalidParams,
                        "params.cursor: not a cursor of this server's "
                        "tasks/list");
    }
    query.cursor = decoded->substr(1);
  }
  std::weak_ptr<McpSession> weak = weak_from_this();
  QueryStore<SagaPage>(
      *engine_, [query](Store& s) { return s.ListSagas(query); },
      [weak, id](Result<SagaPage> page) {
        auto self = weak.lock();
        if (!self || self->closed_) return;
        if (!page.ok()) {
          if (page.status().IsInvalidArgument()) {
            return self->ReplyError(id, jsonrpc::kInvalidParams,
                                    "params.cursor: not a cursor of this "
                                    "server's tasks/list");
          }
          return self->ReplyError(id, jsonrpc::kInternalError,
                                  "listing tasks: " + page.status().ToString());
        }
        json tasks = json::array();
        for (const SagaRecord& r : page->sagas) {
          // An active saga may have moved on since the page was read.
          const Saga* live = self->engine_->FindActive(r.id);
          tasks.push_back(self->TaskJson(live ? ToRecord(*live) : r));
        }
        json result = {{"tasks", std::move(tasks)}};
        if (!page->next_cursor.empty()) {
          result["nextCursor"] = mcp::EncodeCursor("t" + page->next_cursor);
        }
        self->Reply(id, result);
      });
}

// Cancels the saga with compensation. The task is cancelled as soon as the
// cancel is durable; the saga then compensates in the background.
void McpSession::CancelTask(const json& id, const std::string& task_id,
                            const Principal& caller) {
  std::weak_ptr<McpSession> weak = weak_from_this();
  // Answers with the task as it now is; `refused` is why the engine did not
  // cancel it (OK if it did).
  auto answer = [weak, id, task_id](const Status& refused) {
    auto self = weak.lock();
    if (!self || self->closed_) return;
    self->engine_->ReadSaga(task_id, [weak, id, task_id,
                                      refused](Result<SagaRecord> r) {
      auto self = weak.lock();
      if (!self || self->closed_) return;
      if (r.status().IsNotFound()) {
        return self->ReplyErrorData(id, jsonrpc::kInvalidParams, kTaskNotFound,
                                    {{"taskId", task_id}});
      }
      if (!r.ok()) {
        return self->ReplyError(
            id, jsonrpc::kInternalError,
            "reading task " + task_id + ": " + r.status().ToString());
      }
      json task = self->TaskJson(*r);
      const std::string status = task["status"].get<std::string>();
      if (refused.ok()) return self->Reply(id, task);
      if (IsTerminalStatus(status)) {
        return self->ReplyError(
            id, jsonrpc::kInvalidParams,
            "Cannot cancel task: already in terminal status '" + status + "'");
      }
      self->ReplyError(id, jsonrpc::kInternalError,
                       "cancelling task " + task_id + ": " + refused.message());
    });
  };
  engine_->ReadSaga(task_id, [weak, id, task_id, by = caller.name,
                              answer](Result<SagaRecord> r) {
    auto self = weak.lock();
    if (!self || self->closed_) return;
    if (!r.ok()) return answer(r.status());
    const std::string status = self->TaskJson(*r)["status"].get<std::string>();
    if (IsTerminalStatus(status)) return answer(Status::InvalidArgument(""));
    self->engine_->Cancel(
        task_id, /*compensate=*/true, by,
        [answer](Result<SagaState> s) { answer(s.status()); });
  });
}

}  // namespace cde
