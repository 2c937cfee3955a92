// start_workflow and what follows a start: the wait for the saga to finish
// (wait_ms), notifications/progress per finished step, notifications/cancelled
// of a waiting call, and log messages (notifications/message) about the
// sagas this session started or waits on.
//
// A followed saga has one engine watch. Each committed change is compared
// with the snapshot seen before it to tell what happened (a step succeeded,
// failed, is retried; the saga completed, parked...). A waiting call has a
// uv timer; whichever comes first, the saga ending or the timer, answers it.
#include <algorithm>

#include "api/jsonrpc.h"
#include "api/mcp_session.h"
#include "api/mcp_util.h"

namespace cde {

using nlohmann::json;

namespace {

// The longest wait_ms start_workflow accepts (10 minutes).
constexpr uint64_t kMaxWaitMs = 600000;
// Sagas followed only for log messages (started here, nobody waiting on
// them) beyond this many are not followed: each watch keeps its saga in
// memory even while it sleeps.
constexpr size_t kMaxFollowedSagas = 1000;

// A waiting call's timer and how to find the call again when it fires.
struct WaitTimerBox {
  uv_timer_t handle;
  std::weak_ptr<McpSession> session;
  std::string key;
  uint64_t serial;
};

void CloseTimer(uv_timer_t* timer) {
  if (timer == nullptr) return;
  uv_timer_stop(timer);
  uv_close(reinterpret_cast<uv_handle_t*>(timer),
           [](uv_handle_t* h) { delete static_cast<WaitTimerBox*>(h->data); });
}

// A wait ends in a terminal state, or when the saga is parked (it then waits
// for an operator, not for time).
bool EndsWait(SagaState s) { return IsTerminal(s) || s == SagaState::kParked; }

std::string Describe(const ErrorInfo& e) {
  return e.kind.empty() ? e.message : e.kind + ": " + e.message;
}

json ErrorJson(const ErrorInfo& e) {
  return {{"kind", e.kind}, {"message", e.message}};
}

// Something that happened between two snapshots of a saga.
struct SagaEvent {
  const char* level;  // of its log message
  bool progress;      // a step or a compensation finished
  json data;          // {saga_id, workflow, event, ..., message}
};

// Which events the session will send: those logged at `log_level` (an
// index in mcp::kLogLevels) or above, and the progress events if anyone
// waits with a progress token. Others are not built.
struct Wanted {
  int log_level = 0;
  bool progress = true;
};

// The events between `prev` (unknown: only a final state is reported) and
// `cur` that are `wanted`.
std::vector<SagaEvent> Diff(const std::optional<SagaProgress>& prev,
                            const SagaView& view, Wanted wanted) {
  const Saga& cur = view.saga();
  std::vector<SagaEvent> out;
  // An event's message and its own fields, described only when wanted.
  struct Described {
    std::string message;
    json fields = json::object();
  };
  auto add = [&](const char* level, bool progress, const char* event,
                 auto&& describe) {
    if (!(progress && wanted.progress) &&
        mcp::LogLevelIndex(level) < wanted.log_level) {
      return;
    }
    Described d = describe();
    json data = {
        {"saga_id", cur.id}, {"workflow", cur.workflow}, {"event", event}};
    data.update(d.fields);
    data["message"] = std::move(d.message);
    out.push_back({level, progress, std::move(data)});
  };
  if (prev) {
    for (size_t i = 0; i < view.steps().size() && i < prev->steps.size(); ++i) {
      const StepState& st = *view.steps()[i].state;
      auto name = [&] { return view.steps()[i].path; };
      if (prev->steps[i].status != st.status) {
        switch (st.status) {
          case StepStatus::kSucceeded:
            add("debug", true, "step_succeeded", [&] {
              return Described{"step '" + name() + "' succeeded",
                               {{"step", name()}, {"attempt", st.attempts}}};
            });
            break;
          case StepStatus::kFailed:
            add("warning", true, "step_failed", [&] {
              return Described{"step '" + name() + "' failed after " +
                                   std::to_string(st.attempts) +
                                   " attempt(s): " + Describe(st.error),
                               {{"step", name()},
                                {"attempt", st.attempts},
                                {"error", ErrorJson(st.error)}}};
            });
            break;
          default:
            break;
        }
      }
      if (prev->steps[i].compensation == st.compensation) continue;
      switch (st.compensation) {
        case CompensationStatus::kSucceeded:
          add("debug", true, "compensation_succeeded", [&] {
            return Described{
                "step '" + name() + "' compensated",
                {{"step", name()}, {"attempt", st.compensation_attempts}}};
          });
          break;
        case CompensationStatus::kFailed:
          add("warning", true, "compensation_failed", [&] {
            return Described{
                "the compensation of step '" + name() + "' failed after " +
                    std::to_string(st.compensation_attempts) +
                    " attempt(s): " + Describe(st.compensation_error),
                {{"step", name()},
                 {"attempt", st.compensation_attempts},
                 {"error", ErrorJson(st.compensation_error)}}};
          });
          break;
        default:
          break;
      }
    }
    // A retry: the saga now waits on a backoff it did not wait on before.
    for (const WaitView& w : view.waits()) {
      const StepView* step = view.Find(w.path);
      if (w.kind != Wait::Kind::kBackoff || step == nullptr || prev->Waits(w)) {
        continue;
      }
      add("warning", false, "attempt_failed", [&] {
        const StepState& st = *step->state;
        const ErrorInfo& e = w.compensation ? st.compensation_error : st.error;
        return Described{
            std::string(w.compensation ? "the compensation of step '"
                                       : "step '") +
                w.path + "' attempt " + std::to_string(w.attempt) +
                " failed (" + Describe(e) + "); retrying in " +
                std::to_string(
                    std::max<int64_t>(0, w.due_ms - cur.updated_ms)) +
                " ms",
            {{"step", w.path},
             {"compensation", w.compensation},
             {"attempt", w.attempt},
             {"error", ErrorJson(e)},
             {"retry_at_ms", w.due_ms}}};
      });
    }
  }
  if (prev ? prev->state == cur.state : !EndsWait(cur.state)) return out;
  auto failed_step = [&] {
    const StepView* step = view.failed_step();
    return step != nullptr ? step->path : std::string("?");
  };
  auto failure = [&] {
    return json{{"step", failed_step()}, {"error", ErrorJson(cur.failure)}};
  };
  switch (cur.state) {
    case SagaState::kCompensating:
      add("error", false, "saga_failed", [&] {
        return Described{"the saga failed at step '" + failed_step() + "' (" +
                             Describe(cur.failure) + "): compensating",
                         failure()};
      });
      break;
    case SagaState::kCancelling:
      add("notice", false, "saga_cancelling",
          [] { return Described{"the saga is cancelled: compensating"}; });
      break;
    case SagaState::kCompleted:
      add("info", false, "saga_completed",
          [] { return Described{"the saga completed"}; });
      break;
    case SagaState::kCompensated:
      add("error", false, "saga_compensated", [&] {
        return Described{"the saga failed at step '" + failed_step() + "' (" +
                             Describe(cur.failure) + ") and was compensated",
                         failure()};
      });
      break;
    case SagaState::kParked:
      add("error", false, "saga_parked", [&] {
        return Described{
            "the saga is parked in the dead-letter queue" +
                (cur.failure.empty()
                     ? std::string()
                     : ": step '" + failed_step() + "' failed (" +
                           Describe(cur.failure) + ")") +
                "; replay_saga runs it again once the cause is fixed",
            cur.failure.empty() ? json::object() : failure()};
      });
      break;
    case SagaState::kCancelled:
      add("notice", false, "saga_cancelled",
          [] { return Described{"the saga was cancelled"}; });
      break;
    case SagaState::kRunning:  // started, or replayed: nothing to report
      break;
  }
  return out;
}

// The steps are no longer followed: no waiter is left, and no log
// messages are due.
void StopFollowingSteps(SagaFollower& f) {
  f.steps = false;
  f.created = false;
  f.last.reset();
  f.def.reset();
  f.waiters.clear();
}

}  // namespace

SagaProgress SagaProgress::Of(const SagaView& view) {
  SagaProgress p{view.saga().state, view.waits(), {}};
  p.steps.reserve(view.steps().size());
  for (const StepView& step : view.steps()) {
    p.steps.push_back({step.state->status, step.state->compensation});
  }
  return p;
}

bool SagaProgress::Waits(const WaitView& w) const {
  for (const WaitView& mine : waits) {
    if (mine.kind == w.kind && mine.path == w.path &&
        mine.compensation == w.compensation && mine.attempt == w.attempt &&
        mine.due_ms == w.due_ms) {
      return true;
    }
  }
  return false;
}

void McpSession::StartWorkflow(const json& id, const json& args,
                               const json& meta,
                               const McpMessageContext& context) {
  auto req = mcp::StartArgs(args, meta, context.correlation_id,
                            context.traceparent, context.caller.name);
  if (!req.ok()) return ToolError(id, req.status());
  auto wait = mcp::IntArg(args, "wait_ms", 0, kMaxWaitMs);
  if (!wait.ok()) return ToolError(id, wait.status());
  const uint64_t wait_ms = wait->value_or(0);
  std::weak_ptr<McpSession> weak = weak_from_this();
  if (wait_ms == 0) {
    return engine_->Start(std::move(*req), [weak, id](Result<StartResult> r) {
      auto self = weak.lock();
      if (!self || self->closed_) return;
      if (!r.ok()) return self->ToolError(id, r.status());
      self->ToolResult(id, {{"saga_id", r->saga_id},
                            {"state", SagaStateName(r->state)},
                            {"created", r->created}});
      self->Follow(r->saga_id, r->state, r->created, "");
    });
  }
  const std::string key = id.dump();
  if (waiting_calls_.count(key) != 0) {
    return ReplyError(id, jsonrpc::kInvalidRequest,
                      "id: a call with this id is still in progress");
  }
  if (Status may = MayFollow(""); !may.ok()) return ToolError(id, may);
  json token = nullptr;
  if (meta.is_object()) {
    auto t = meta.find("progressToken");
    if (t != meta.end() && (t->is_string() || t->is_number_integer())) {
      token = *t;
    }
  }
  const uint64_t serial = next_wait_serial_++;
  waiting_calls_[key] = WaitingCall{
      .id = id, .serial = serial, .wait_ms = wait_ms, .progress_token = token};
  engine_->Start(std::move(*req), [weak, key, serial](Result<StartResult> r) {
    auto self = weak.lock();
    if (!self || self->closed_) return;
    auto it = self->waiting_calls_.find(key);
    const bool waiting =
        it != self->waiting_calls_.end() && it->second.serial == serial;
    if (!r.ok()) {
      if (!waiting) return;
      const json call_id = it->second.id;
      self->waiting_calls_.erase(it);
      return self->ToolError(call_id, r.status());
    }
    if (!waiting) {  // cancelled meanwhile: the saga runs on, unwatched
      return self->Follow(r->saga_id, r->state, r->created, "");
    }
    WaitingCall& call = it->second;
    call.saga_id = r->saga_id;
    call.created = r->created;
    auto* box = new WaitTimerBox{{}, weak, key, serial};
    uv_timer_init(self->loop_, &box->handle);
    box->handle.data = box;
    uv_timer_start(
        &box->handle,
        [](uv_timer_t* h) {
          auto* b = static_cast<WaitTimerBox*>(h->data);
          auto s = b->session.lock();
          if (s && !s->closed_) s->OnWaitTimeout(b->key, b->serial);
        },
        call.wait_ms, 0);
    call.timer = &box->handle;
    // After the reply to the start came the watch: Follow looks at the
    // saga's current state, so a saga that ended in between is seen.
    self->Follow(r->saga_id, r->state, r->created, key);
  });
}

void McpSession::Follow(const std::string& saga_id, SagaState state,
                        bool created, const std::string& waiter) {
  auto it = followers_.find(saga_id);
  if (it == followers_.end() || !it->second.steps) {
    if (waiter.empty() &&
        std::count_if(followers_.begin(), followers_.end(), [](const auto& f) {
          return f.second.steps;
        }) >= static_cast<std::ptrdiff_t>(kMaxFollowedSagas)) {
      return;
    }
    SagaFollower& f = FollowerOf(saga_id);
    f.steps = true;
    f.created = created;
    f.state = state;
    if (const Saga* s = engine_->FindActive(saga_id)) {
      f.state = s->state;
      f.def = mcp::FindWorkflow(*engine_, s->workflow, s->version);
      f.last = SagaProgress::Of(SagaView(*s, f.def.get()));
    } else {
      // Ended already, or dormant (a far timer): the snapshot tells.
      std::weak_ptr<McpSession> weak = weak_from_this();
      engine_->ReadSaga(saga_id, [weak, saga_id](Result<SagaRecord> r) {
        auto self = weak.lock();
        if (self && !self->closed_) {
          self->OnFollowedRead(saga_id, std::move(r));
        }
      });
    }
    it = followers_.find(saga_id);
  } else if (created) {
    it->second.created = true;
  }
  if (!waiter.empty()) it->second.waiters.push_back(waiter);
}

void McpSession::OnFollowedRead(const std::string& saga_id,
                                Result<SagaRecord> r) {
  auto it = followers_.find(saga_id);
  if (it == followers_.end() || !it->second.steps || it->second.last) {
    return;  // a change came first
  }
  SagaFollower& f = it->second;
  Result<Saga> saga = r.ok() ? FromRecord(*r) : Result<Saga>(r.status());
  if (!saga.ok()) {
    const std::vector<std::string> waiters = std::move(f.waiters);
    StopFollowingSteps(f);
    DropIfIdle(saga_id);
    for (const std::string& key : waiters) {
      auto w = waiting_calls_.find(key);
      if (w == waiting_calls_.end()) continue;
      const json id = w->second.id;
      CloseTimer(w->second.timer);
      waiting_calls_.erase(w);
      ToolError(id, saga.status());
    }
    return;
  }
  f.def = mcp::FindWorkflow(*engine_, saga->workflow, saga->version);
  f.state = saga->state;
  const SagaView view(*saga, f.def.get());
  if (!EndsWait(saga->state)) {
    f.last = SagaProgress::Of(view);
    return;
  }
  if (f.created) {
    const json related =
        f.waiters.empty() ? json(nullptr) : waiting_calls_.at(f.waiters[0]).id;
    for (const SagaEvent& e : Diff(std::nullopt, view, {log_level_, false})) {
      Log(e.level, e.data, related);
    }
  }
  FinishFollow(saga_id, *saga);
}

void McpSession::OnFollowedChange(const std::string& saga_id,
                                  const Saga& saga) {
  auto it = followers_.find(saga_id);
  if (it == followers_.end() || !it->second.steps) return;
  SagaFollower& f = it->second;
  if (!f.def) f.def = mcp::FindWorkflow(*engine_, saga.workflow, saga.version);
  bool progress = false;
  for (const std::string& key : f.waiters) {
    auto call = waiting_calls_.find(key);
    progress |=
        call != waiting_calls_.end() && !call->second.progress_token.is_null();
  }
  const SagaView view(saga, f.def.get());
  const std::vector<SagaEvent> events =
      Diff(f.last, view, {log_level_, progress});
  f.last = SagaProgress::Of(view);
  const uint64_t remaining = view.remaining();
  // Notify may close the session (and drop the follower): copy what the
  // messages need first.
  const std::vector<std::string> waiters = f.waiters;
  for (const SagaEvent& e : events) {
    if (closed_) return;
    if (e.progress) {
      for (const std::string& key : waiters) {
        auto call = waiting_calls_.find(key);
        if (call == waiting_calls_.end() ||
            call->second.progress_token.is_null()) {
          continue;
        }
        call->second.progress += 1;
        Notify("notifications/progress",
               {{"progressToken", call->second.progress_token},
                {"progress", call->second.progress},
                {"total", call->second.progress + remaining},
                {"message", e.data["message"]}},
               call->second.id);
      }
    }
    auto first = waiters.empty() ? waiting_calls_.end()
                                 : waiting_calls_.find(waiters[0]);
    Log(e.level, e.data,
        first == waiting_calls_.end() ? json(nullptr) : first->second.id);
  }
  if (!closed_ && EndsWait(saga.state)) FinishFollow(saga_id, saga);
}

void McpSession::FinishFollow(const std::string& saga_id, const Saga& saga) {
  auto it = followers_.find(saga_id);
  if (it == followers_.end() || !it->second.steps) return;
  const std::vector<std::string> waiters = std::move(it->second.waiters);
  // The saga as JSON text, written once for every waiter: the same bytes
  // as the structured result {created, saga: SagaJson, saga_id, state}.
  const std::string text =
      waiters.empty() ? "" : mcp::SagaJsonText(saga, it->second.def.get());
  StopFollowingSteps(it->second);
  DropIfIdle(saga_id);
  if (waiters.empty()) return;
  const std::string tail = R"(,"saga_id":)" + json(saga_id).dump() +
                           R"(,"state":")" +
                           std::string(SagaStateName(saga.state)) + "\"}";
  for (const std::string& key : waiters) {
    auto w = waiting_calls_.find(key);
    if (w == waiting_calls_.end()) continue;
    const json id = w->second.id;
    const bool created = w->second.created;
    CloseTimer(w->second.timer);
    waiting_calls_.erase(w);
    ToolResultText(id, (created ? R"({"created":true,"saga":)"
                                : R"({"created":false,"saga":)") +
                           text + tail);
  }
}

void McpSession::EndWait(const std::string& key, bool reply) {
  auto w = waiting_calls_.find(key);
  if (w == waiting_calls_.end()) return;
  const WaitingCall call = std::move(w->second);
  waiting_calls_.erase(w);
  CloseTimer(call.timer);
  SagaState state = SagaState::kRunning;
  if (auto f = followers_.find(call.saga_id);
      f != followers_.end() && f->second.steps) {
    auto& waiters = f->second.waiters;
    waiters.erase(std::remove(waiters.begin(), waiters.end(), key),
                  waiters.end());
    state = f->second.state;
    // Keep following a saga started here (log messages); drop the rest.
    if (waiters.empty() && !f->second.created) {
      StopFollowingSteps(f->second);
      DropIfIdle(call.saga_id);
    }
  }
  if (!reply) return;
  ToolResult(call.id, {{"saga_id", call.saga_id},
                       {"state", SagaStateName(state)},
                       {"created", call.created},
                       {"timed_out", true}});
}

void McpSession::OnWaitTimeout(const std::string& key, uint64_t serial) {
  auto w = waiting_calls_.find(key);
  if (w == waiting_calls_.end() || w->second.serial != serial) return;
  EndWait(key, true);
}

void McpSession::CancelRequest(const json& params) {
  if (!params.is_object()) return;
  auto id = params.find("requestId");
  if (id == params.end() || !(id->is_string() || id->is_number_integer())) {
    return;  // malformed: ignored, as the spec asks
  }
  EndWait(id->dump(), false);  // unknown or finished ids: nothing to do
}

void McpSession::SetLogLevel(const json& id, const json& params) {
  auto level = params.find("level");
  const int index = level != params.end() && level->is_string()
                        ? mcp::LogLevelIndex(level->get<std::string>())
                        : -1;
  if (index < 0) {
    std::string names;
    for (const char* l : mcp::kLogLevels) {
      names += names.empty() ? "" : ", ";
      names += l;
    }
    return ReplyError(id, jsonrpc::kInvalidParams,
                      "params.level: must be one of " + names);
  }
  log_level_ = index;
  Reply(id, json::object());
}

void McpSession::Log(const std::string& level, const json& data,
                     const json& related) {
  if (mcp::LogLevelIndex(level) < log_level_) return;
  Notify("notifications/message",
         {{"level", level}, {"logger", "cde.saga"}, {"data", data}}, related);
}

void McpSession::CloseWaits() {
  for (auto& [key, call] : waiting_calls_) CloseTimer(call.timer);
  waiting_calls_.clear();
  for (auto& [saga_id, f] : followers_) UnwatchSaga(f.watch);
  followers_.clear();
}

}  // namespace cde
