#include "engine/transitions/progress.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "engine/action_policy.h"
#include "engine/templating.h"

namespace cde {
namespace transitions_internal {

using nlohmann::json;

bool IsAlwaysPermanent(const std::string& kind) {
  return kind == "template" || kind == "unknown_action" || kind == "params";
}

void SetWait(Saga& saga, Wait w) {
  ClearWait(saga, w.path);
  saga.waits.push_back(std::move(w));
}

void ClearWait(Saga& saga, const std::string& path) {
  std::erase_if(saga.waits, [&](const Wait& w) { return w.path == path; });
}

const Wait& OnlyWait(const Saga& saga) {
  static const Wait kNone;
  return saga.waits.empty() ? kNone : saga.waits.front();
}

const std::string& PathOf(const WorkflowDefinition& def, int step) {
  return def.steps[static_cast<size_t>(step)].name;
}

int StepAt(const WorkflowDefinition& def, const std::string& path) {
  return def.StepIndex(path);
}

const ActionSpec& SpecOf(const WorkflowDefinition& def, int step,
                         bool compensation) {
  const StepSpec& s = def.steps[static_cast<size_t>(step)];
  return compensation ? *s.compensate : s.run;
}

json StepRef(const WorkflowDefinition& def, int step, bool compensation,
             uint32_t attempt) {
  // Built member by member: an initializer list copies each value twice,
  // and every transition logs one of these.
  json ref(json::value_t::object);
  auto& members = ref.get_ref<json::object_t&>();
  members.emplace("attempt", attempt);
  members.emplace("compensation", compensation);
  members.emplace("step", def.steps[static_cast<size_t>(step)].name);
  return ref;
}

namespace {

// A sleep's duration, rendered from logged data like any params.
Result<int64_t> SleepDurationMs(const WorkflowDefinition& def,
                                const ActionSpec& spec, const Saga& saga,
                                const json& attempt) {
  std::map<std::string, json> outputs;
  TemplateContext tc = MakeTemplateContext(
      def, saga, &outputs, attempt.at("idempotency_key").get<std::string>(),
      attempt.at("attempt").get<uint32_t>());
  auto params = RenderTemplates(spec.params, tc);
  if (!params.ok()) return params.status();
  const json& d =
      params->contains("duration_ms") ? params->at("duration_ms") : json(0);
  // Unsigned first: a parsed integer above INT64_MAX is unsigned.
  const bool in_range =
      d.is_number_unsigned() ? d.get<uint64_t>() <= kMaxDurationMs
      : d.is_number_integer()
          ? d.get<int64_t>() >= 0 && d.get<uint64_t>() <= kMaxDurationMs
          : false;
  if (!in_range) {
    return Status::InvalidArgument(
        "params.duration_ms: must be an integer from 0 to " +
        std::to_string(kMaxDurationMs) + ", got " + d.dump());
  }
  return d.get<int64_t>();
}

}  // namespace

void Finish(Plan& p, SagaState state, EventKind event, json data) {
  p.saga.state = state;
  p.saga.waits.clear();
  p.events.push_back({event, std::move(data)});
  p.actions.push_back({PlanAction::Kind::kFinish, {}, {}});
}

void Park(const PlanContext& ctx, Plan& p, DlqReason why, int step,
          const ErrorInfo& error, uint32_t attempts) {
  const std::string reason(DlqReasonName(why));
  const std::string step_name =
      step >= 0 ? ctx.def.steps[static_cast<size_t>(step)].name : "";
  p.dlq_put =
      DlqRecord{p.saga.id, p.saga.workflow, p.saga.version,
                reason,    step_name,       error.kind + ": " + error.message,
                attempts,  ctx.now_ms,      p.saga.replay_count};
  json data = {
      {"reason", reason}, {"step", step_name}, {"error", error.message}};
  const auto& redrive = ctx.def.auto_replay;
  const bool again = redrive && p.saga.replay_count < redrive->max_replays;
  if (again) data["auto_replay_ms"] = ctx.now_ms + redrive->after_ms;
  Finish(p, SagaState::kParked, EventKind::kSagaParked, std::move(data));
  if (again) {
    // Durable like any timer: the engine replays it when the row falls due.
    const int64_t due = ctx.now_ms + redrive->after_ms;
    p.saga.waits.push_back({Wait::Kind::kRedrive, "", false, 0, due});
    p.timers_put.push_back({due, TimerKind::kRedrive, ""});
  }
}

// Decides what comes next for a saga that waits for nothing.
void Advance(const PlanContext& ctx, Plan& p) {
  Saga& s = p.saga;
  if (s.state == SagaState::kRunning) {
    for (size_t i = 0; i < s.steps.size(); ++i) {
      if (s.steps[i].status != StepStatus::kSucceeded) {
        StartAttempt(ctx, p, static_cast<int>(i), false);
        return;
      }
    }
    Finish(p, SagaState::kCompleted, EventKind::kSagaCompleted, json::object());
    return;
  }
  // compensating or cancelling: undo from the last step backwards.
  for (size_t i = s.steps.size(); i-- > 0;) {
    StepState& st = s.steps[i];
    if (st.compensation == CompensationStatus::kRunning) {
      StartAttempt(ctx, p, static_cast<int>(i), true);  // a retry
      return;
    }
    if (!NeedsCompensation(st)) continue;
    if (!ctx.def.steps[i].compensate) {
      st.compensation = CompensationStatus::kNotDefined;
      continue;
    }
    StartAttempt(ctx, p, static_cast<int>(i), true);
    return;
  }
  if (s.state == SagaState::kCancelling) {
    Finish(p, SagaState::kCancelled, EventKind::kSagaCancelled,
           {{"compensated", true}});
  } else {
    Finish(p, SagaState::kCompensated, EventKind::kSagaCompensated,
           json::object());
  }
}

void StartAttempt(const PlanContext& ctx, Plan& p, int step,
                  bool compensation) {
  StepState& st = p.saga.steps[static_cast<size_t>(step)];
  const uint32_t attempt =
      compensation ? ++st.compensation_attempts : ++st.attempts;
  if (compensation) {
    st.compensation = CompensationStatus::kRunning;
  } else {
    st.status = StepStatus::kRunning;
  }
  if (st.started_ms == 0) st.started_ms = ctx.now_ms;
  const ActionSpec& spec = SpecOf(ctx.def, step, compensation);
  json data = StepRef(ctx.def, step, compensation, attempt);
  const AttemptRef ref{PathOf(ctx.def, step), compensation, attempt};
  data["idempotency_key"] =
      AttemptKey(p.saga.id, ref.path, compensation, attempt);
  Wait wait{Wait::Kind::kAttempt, ref.path, compensation, attempt, 0};
  if (spec.action == "sleep") {
    // The timer is durable: its due time is fixed now and logged.
    auto duration = SleepDurationMs(ctx.def, spec, p.saga, data);
    if (!duration.ok()) {
      p.events.push_back({EventKind::kAttemptStarted, std::move(data)});
      FailPermanently(ctx, p, step, compensation,
                      {"template", duration.status().message()});
      return;
    }
    wait.kind = Wait::Kind::kSleep;
    wait.due_ms = ctx.now_ms + *duration;
    data["due_ms"] = wait.due_ms;
    p.timers_put.push_back(TimerOf(wait));
    p.actions.push_back({PlanAction::Kind::kArmTimer, ref, TimerOf(wait)});
  } else {
    p.actions.push_back({PlanAction::Kind::kRunAttempt, ref, {}});
  }
  SetWait(p.saga, std::move(wait));
  p.events.push_back({EventKind::kAttemptStarted, std::move(data)});
}

// The step (or compensation) succeeded.
void Succeed(const PlanContext& ctx, Plan& p, int step, bool compensation,
             uint32_t attempt, json output) {
  StepState& st = p.saga.steps[static_cast<size_t>(step)];
  st.finished_ms = ctx.now_ms;
  json data = StepRef(ctx.def, step, compensation, attempt);
  if (compensation) {
    st.compensation = CompensationStatus::kSucceeded;
    p.events.push_back({EventKind::kCompensationSucceeded, std::move(data)});
  } else {
    st.status = StepStatus::kSucceeded;
    st.error = {};
    data["output"] = output;
    st.output = std::move(output);
    p.events.push_back({EventKind::kStepSucceeded, std::move(data)});
  }
  ClearWait(p.saga, PathOf(ctx.def, step));
}

// A cancel was requested while the saga was busy; now it is not.
void BeginCancel(const PlanContext& ctx, Plan& p) {
  if (p.saga.compensate_on_cancel) {
    p.saga.state = SagaState::kCancelling;
    Advance(ctx, p);
  } else {
    Finish(p, SagaState::kCancelled, EventKind::kSagaCancelled,
           {{"compensated", false}});
  }
}

void FailPermanently(const PlanContext& ctx, Plan& p, int step,
                     bool compensation, const ErrorInfo& error) {
  StepState& st = p.saga.steps[static_cast<size_t>(step)];
  st.finished_ms = ctx.now_ms;
  json data = StepRef(ctx.def, step, compensation,
                      compensation ? st.compensation_attempts : st.attempts);
  data["error"] = {{"kind", error.kind}, {"message", error.message}};
  ClearWait(p.saga, PathOf(ctx.def, step));
  if (compensation) {
    st.compensation = CompensationStatus::kFailed;
    st.compensation_error = error;
    p.events.push_back({EventKind::kCompensationFailed, std::move(data)});
    Park(ctx, p, DlqReason::kCompensationFailed, step, error,
         st.compensation_attempts);
    return;
  }
  st.status = StepStatus::kFailed;
  st.error = error;
  p.events.push_back({EventKind::kStepFailed, std::move(data)});
  p.saga.failure = error;
  p.saga.failed_step = step;
  if (p.saga.cancel_requested) {
    BeginCancel(ctx, p);
  } else if (ctx.def.on_failure == OnFailure::kPark) {
    Park(ctx, p, DlqReason::kStepFailed, step, error, st.attempts);
  } else {
    p.saga.state = SagaState::kCompensating;
    p.events.push_back(
        {EventKind::kSagaCompensating,
         {{"step", ctx.def.steps[static_cast<size_t>(step)].name}}});
    Advance(ctx, p);
  }
}

Plan From(const Saga& saga) {
  Plan p;
  p.saga = saga;
  p.previous_state = saga.state;
  return p;
}
}  // namespace transitions_internal

using nlohmann::json;

bool Plan::finishes() const {
  for (const PlanAction& a : actions) {
    if (a.kind == PlanAction::Kind::kFinish) return true;
  }
  return false;
}

TimerRef TimerOf(const Wait& wait) {
  return {wait.due_ms, TimerKindOf(wait.kind).value(), wait.path};
}

Transition Plan::Build(int64_t now_ms) {
  saga.updated_ms = now_ms;
  Transition t;
  for (PlannedEvent& e : events) {
    t.AppendLog({saga.id, ++saga.last_seq, now_ms,
                 std::string(EventKindName(e.kind)), std::move(e.data)});
  }
  events.clear();
  for (const TimerRef& timer : timers_delete) {
    t.DeleteTimer(timer.due_ms, saga.id, TimerRowName(timer.kind, timer.path));
  }
  for (const TimerRef& timer : timers_put) {
    t.PutTimer({timer.due_ms, saga.id, TimerRowName(timer.kind, timer.path),
                json::object()});
  }
  if (dlq_put) t.PutDlq(*dlq_put);
  if (dlq_delete) t.DeleteDlq(saga.id);
  if (put_idempotency) t.PutIdempotency(saga.idempotency_key, saga.id);
  t.PutSaga(HeadOf(saga), EncodeSnapshot(saga), previous_state);
  return t;
}

TemplateContext MakeTemplateContext(const WorkflowDefinition& def,
                                    const Saga& saga,
                                    std::map<std::string, json>* outputs,
                                    std::string idempotency_key,
                                    uint32_t attempt) {
  for (size_t i = 0; i < saga.steps.size() && i < def.steps.size(); ++i) {
    if (saga.steps[i].status == StepStatus::kSucceeded) {
      (*outputs)[def.steps[i].name] = saga.steps[i].output;
    }
  }
  TemplateContext tc;
  tc.input = &saga.input;
  tc.outputs = outputs;
  tc.saga_id = saga.id;
  tc.idempotency_key = std::move(idempotency_key);
  tc.attempt = attempt;
  return tc;
}

int64_t BackoffMs(const RetryPolicy& policy, uint32_t next_attempt,
                  double jitter_sample) {
  const double base =
      static_cast<double>(policy.initial_backoff_ms) *
      std::pow(policy.multiplier, static_cast<double>(next_attempt - 2));
  const double capped =
      std::min(base, static_cast<double>(policy.max_backoff_ms));
  const double spread = capped * policy.jitter * (2 * jitter_sample - 1);
  return std::max<int64_t>(0, std::llround(capped + spread));
}

bool IsNonRetryable(const RetryPolicy& policy, const std::string& kind) {
  // The same params would be refused again, whatever the retry policy says.
  if (kind == kPolicyErrorKind || kind == kLimitErrorKind) return true;
  for (const std::string& pattern : policy.non_retryable) {
    if (ErrorKindMatches(pattern, kind)) return true;
  }
  return false;
}

}  // namespace cde
