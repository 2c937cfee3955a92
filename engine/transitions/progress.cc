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

const std::string& PathOf(const WorkflowDefinition& def, int step) {
  return def.steps[static_cast<size_t>(step)].path;
}

int StepAt(const WorkflowDefinition& def, const std::string& path) {
  return def.StepAtPath(path);
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
  members.emplace("step", def.steps[static_cast<size_t>(step)].path);
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
      step >= 0 ? ctx.def.steps[static_cast<size_t>(step)].path : "";
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

namespace {

bool Undoing(SagaState state) {
  return state == SagaState::kCompensating || state == SagaState::kCancelling;
}

// The output of a parallel step: each branch's, which is its last step's.
json BranchOutputs(const Saga& saga, const StepSpec& parallel) {
  json out = json::object();
  for (const Branch& b : parallel.branches) {
    out[b.name] = saga.steps[static_cast<size_t>(b.steps.back())].output;
  }
  return out;
}

void SucceedParallel(const PlanContext& ctx, Plan& p, int step) {
  StepState& st = p.saga.steps[static_cast<size_t>(step)];
  st.status = StepStatus::kSucceeded;
  st.finished_ms = ctx.now_ms;
  st.output = BranchOutputs(p.saga, ctx.def.steps[static_cast<size_t>(step)]);
  json data = StepRef(ctx.def, step, false, 0);
  data["output"] = st.output;
  p.events.push_back({EventKind::kStepSucceeded, std::move(data)});
}

// Forward through `seq`: starts the first step not yet done, unless it is
// under way; a parallel step runs each of its branches so. True once every
// step of `seq` has succeeded.
bool RunSequence(const PlanContext& ctx, Plan& p, const std::vector<int>& seq) {
  for (const int i : seq) {
    const StepSpec& spec = ctx.def.steps[static_cast<size_t>(i)];
    StepState& st = p.saga.steps[static_cast<size_t>(i)];
    if (st.status == StepStatus::kSucceeded) continue;
    if (spec.kind == StepKind::kParallel) {
      if (st.status != StepStatus::kRunning) {
        st.status = StepStatus::kRunning;
        if (st.started_ms == 0) st.started_ms = ctx.now_ms;
      }
      bool all = true;
      for (const Branch& branch : spec.branches) {
        all = RunSequence(ctx, p, branch.steps) && all;
        // A step that could not start failed for good: the saga moved on.
        if (p.saga.state != SagaState::kRunning) return false;
      }
      if (!all) return false;
      SucceedParallel(ctx, p, i);
      continue;
    }
    if (FindWait(p.saga, spec.path) != nullptr) return false;  // under way
    StartAttempt(ctx, p, i, false);
    return false;
  }
  return true;
}

// Backward through `seq`: starts the compensation of the newest step that
// needs one, unless one is under way; a parallel step undoes its branches
// side by side. True once nothing in `seq` is left to undo.
bool UndoSequence(const PlanContext& ctx, Plan& p,
                  const std::vector<int>& seq) {
  for (auto it = seq.rbegin(); it != seq.rend(); ++it) {
    const int i = *it;
    const StepSpec& spec = ctx.def.steps[static_cast<size_t>(i)];
    StepState& st = p.saga.steps[static_cast<size_t>(i)];
    if (spec.kind == StepKind::kParallel) {
      bool all = true;
      for (const Branch& branch : spec.branches) {
        all = UndoSequence(ctx, p, branch.steps) && all;
        if (!Undoing(p.saga.state)) return false;  // parked
      }
      if (!all) return false;
      continue;
    }
    if (FindWait(p.saga, spec.path) != nullptr) return false;  // under way
    if (st.compensation == CompensationStatus::kRunning) {
      StartAttempt(ctx, p, i, true);  // cut off by a park: a retry
      return false;
    }
    if (!NeedsCompensation(st)) continue;
    if (!spec.compensate) {
      st.compensation = CompensationStatus::kNotDefined;
      continue;
    }
    StartAttempt(ctx, p, i, true);
    return false;
  }
  return true;
}

// The parallel steps still running when the saga stops going forward:
// those that hold `failed` failed with it; with `others`, the rest were cut
// short.
void EndParallelSteps(const PlanContext& ctx, Plan& p, int failed,
                      bool others) {
  for (int at = failed >= 0 ? ctx.def.steps[static_cast<size_t>(failed)].parent
                            : -1;
       at >= 0; at = ctx.def.steps[static_cast<size_t>(at)].parent) {
    StepState& st = p.saga.steps[static_cast<size_t>(at)];
    if (st.status != StepStatus::kRunning) continue;
    st.status = StepStatus::kFailed;
    st.error = p.saga.steps[static_cast<size_t>(failed)].error;
    st.finished_ms = ctx.now_ms;
  }
  if (others) {
    for (size_t i = 0; i < ctx.def.steps.size(); ++i) {
      StepState& st = p.saga.steps[i];
      if (ctx.def.steps[i].kind == StepKind::kParallel &&
          st.status == StepStatus::kRunning) {
        st.status = StepStatus::kCancelled;
        st.finished_ms = ctx.now_ms;
      }
    }
  }
}

}  // namespace

void Advance(const PlanContext& ctx, Plan& p) {
  Saga& s = p.saga;
  if (s.state == SagaState::kRunning) {
    if (s.cancel_requested) {
      // What is in flight finishes first: its outcome decides what to undo.
      if (s.waits.empty()) BeginCancel(ctx, p);
      return;
    }
    if (RunSequence(ctx, p, ctx.def.sequence) &&
        s.state == SagaState::kRunning) {
      Finish(p, SagaState::kCompleted, EventKind::kSagaCompleted,
             json::object());
    }
    return;
  }
  if (!Undoing(s.state)) return;
  if (!UndoSequence(ctx, p, ctx.def.sequence) || !Undoing(s.state)) return;
  if (s.state == SagaState::kCancelling) {
    Finish(p, SagaState::kCancelled, EventKind::kSagaCancelled,
           {{"compensated", true}});
  } else {
    Finish(p, SagaState::kCompensated, EventKind::kSagaCompensated,
           json::object());
  }
}

void CutTimer(const PlanContext& ctx, Plan& p, const Wait& w) {
  p.timers_delete.push_back(TimerOf(w));
  ClearWait(p.saga, w.path);
  const int step = StepAt(ctx.def, w.path);
  if (step < 0) return;
  // A backoff's retries are abandoned: the step failed (a timeout among its
  // attempts still calls for undoing it). A sleep is cut off: it never
  // finished, and there is nothing to undo.
  StepState& st = p.saga.steps[static_cast<size_t>(step)];
  st.status = w.kind == Wait::Kind::kBackoff ? StepStatus::kFailed
                                             : StepStatus::kCancelled;
  st.finished_ms = ctx.now_ms;
}

void StopOthers(const PlanContext& ctx, Plan& p, int failed) {
  const std::string& failed_path = PathOf(ctx.def, failed);
  const std::vector<Wait> waits = p.saga.waits;
  for (const Wait& w : waits) {
    const int step = StepAt(ctx.def, w.path);
    if (step < 0 || step == failed) continue;
    StepState& st = p.saga.steps[static_cast<size_t>(step)];
    json data = StepRef(ctx.def, step, w.compensation, w.attempt);
    data["reason"] = "step " + failed_path + " failed";
    switch (w.kind) {
      case Wait::Kind::kAttempt:
        // It may have had its effect: compensated like a timeout.
        st.status = StepStatus::kCancelled;
        st.error = {kAbandonedErrorKind, "attempt " +
                                             std::to_string(w.attempt) +
                                             " abandoned in flight: step " +
                                             failed_path + " failed"};
        p.actions.push_back({PlanAction::Kind::kStopAttempt,
                             {w.path, w.compensation, w.attempt},
                             {}});
        st.finished_ms = ctx.now_ms;
        ClearWait(p.saga, w.path);
        break;
      case Wait::Kind::kBackoff:
      case Wait::Kind::kSleep:
        CutTimer(ctx, p, w);
        break;
      case Wait::Kind::kNothing:
      case Wait::Kind::kQueued:
      case Wait::Kind::kRedrive:
        continue;
    }
    p.events.push_back({EventKind::kStepStopped, std::move(data)});
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
  EndParallelSteps(ctx, p, -1, true);
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
  EndParallelSteps(ctx, p, step, !p.saga.cancel_requested);
  if (p.saga.cancel_requested) {
    Advance(ctx, p);  // the cancel begins once nothing is in flight
    return;
  }
  StopOthers(ctx, p, step);
  if (ctx.def.on_failure == OnFailure::kPark) {
    Park(ctx, p, DlqReason::kStepFailed, step, error, st.attempts);
  } else {
    p.saga.state = SagaState::kCompensating;
    p.events.push_back(
        {EventKind::kSagaCompensating, {{"step", PathOf(ctx.def, step)}}});
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
