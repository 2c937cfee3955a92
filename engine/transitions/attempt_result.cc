// The result of an attempt: success, retry after a durable backoff, or
// permanent failure.
#include <algorithm>

#include "engine/transitions/progress.h"

namespace cde {

using nlohmann::json;
namespace ti = transitions_internal;

namespace {

// The result of an attempt stopped in flight (a step of another branch or
// item failed for good): recorded as what it is, so that the undo knows
// whether the effect happened, and then the undo (or the cancel) goes on.
void ApplyStoppedResult(const PlanContext& ctx, Plan& p, ti::At step,
                        const AttemptOutcome& o) {
  StepState& st = ti::MutableState(ctx, p, step);
  st.finished_ms = ctx.now_ms;
  EventData data = ti::StepRef(ctx.def, step, false, o.ref.attempt);
  data.Set("stopped", true);
  if (o.ok) {
    st.status = StepStatus::kSucceeded;
    st.error = {};
    st.output = o.output;
    data.Set("output", o.output);
    p.events.push_back({EventKind::kStepSucceeded, std::move(data)});
  } else {
    // Never ran (it waited at a gate) or abandoned (the engine restarted
    // while it was in flight): cancelled, as a stopped step is.
    const bool ended = o.error.kind == kStoppedErrorKind ||
                       o.error.kind == kAbandonedErrorKind;
    st.status = ended ? StepStatus::kCancelled : StepStatus::kFailed;
    st.error = o.error;
    data.Set("error", o.error);
    p.events.push_back({EventKind::kStepFailed, std::move(data)});
  }
  ti::ClearWait(p.saga, o.ref.path);
  ti::Advance(ctx, p);
}

// Plans outcome `o` into `p`; false if it is stale (not an attempt the saga
// waits for, by path and attempt).
bool ApplyAttemptResult(const PlanContext& ctx, Plan& p,
                        const AttemptOutcome& o) {
  const Wait* w = FindWait(p.saga, o.ref.path);
  const ti::At step = ti::StepAt(ctx.def, o.ref.path);
  if (w == nullptr || w->kind != Wait::Kind::kAttempt || step.step < 0 ||
      w->compensation != o.ref.compensation || w->attempt != o.ref.attempt) {
    return false;
  }
  if (w->stopped) {
    ApplyStoppedResult(ctx, p, step, o);
    return true;
  }
  const bool compensation = o.ref.compensation;
  const uint32_t attempt = o.ref.attempt;
  if (o.ok) {
    ti::Succeed(ctx, p, step, compensation, attempt, o.output);
    ti::Advance(ctx, p);
    return true;
  }
  const ActionSpec& spec = ti::SpecOf(ctx.def, step.step, compensation);
  const bool cancelling_forward = p.saga.cancel_requested && !compensation;
  // The budget counts this run's attempts (numbers go on after a replay).
  const StepState& was = ti::StateOf(ctx, p, step);
  const uint32_t base =
      compensation ? was.compensation_attempts_base : was.attempts_base;
  const uint32_t this_run = attempt > base ? attempt - base : 1;
  const bool retry = !cancelling_forward &&
                     !ti::IsAlwaysPermanent(o.error.kind) &&
                     !IsNonRetryable(spec.retry, o.error.kind) &&
                     this_run < spec.retry.max_attempts;
  if (!retry) {
    ti::FailPermanently(ctx, p, step, compensation, o.error);
    // A tolerated item's failure leaves the map going: more may start.
    if (p.saga.state == SagaState::kRunning) ti::Advance(ctx, p);
    return true;
  }
  StepState& st = ti::MutableState(ctx, p, step);
  (compensation ? st.compensation_error : st.error) = o.error;
  const int64_t due =
      ctx.now_ms + BackoffMs(spec.retry, this_run + 1,
                             ctx.jitter ? ctx.jitter() : ctx.jitter_sample);
  EventData data = ti::StepRef(ctx.def, step, compensation, attempt);
  data.Set("error", o.error).Set("retry_at_ms", due);
  p.events.push_back({EventKind::kAttemptFailed, std::move(data)});
  const Wait backoff{Wait::Kind::kBackoff, o.ref.path, compensation, attempt,
                     due};
  p.timers_put.push_back(TimerOf(backoff));
  p.actions.push_back({PlanAction::Kind::kArmTimer, o.ref, TimerOf(backoff)});
  ti::SetWait(p.saga, backoff);
  return true;
}

// A timer armed and cut within one plan is not armed (Build writes
// neither its row nor its deletion).
void DropCutTimers(Plan& p) {
  std::erase_if(p.actions, [&](const PlanAction& a) {
    return a.kind == PlanAction::Kind::kArmTimer &&
           std::find(p.timers_delete.begin(), p.timers_delete.end(), a.timer) !=
               p.timers_delete.end();
  });
}

}  // namespace

std::optional<Plan> PlanAttemptResult(const PlanContext& ctx, const Saga& saga,
                                      const AttemptOutcome& o) {
  Plan p = ti::From(saga);
  if (!ApplyAttemptResult(ctx, p, o)) return std::nullopt;
  return p;
}

std::optional<Plan> PlanAttemptResults(
    const PlanContext& ctx, const Saga& saga,
    const std::vector<AttemptOutcome>& outcomes, std::vector<bool>* applied) {
  Plan p;
  if (!PlanAttemptResultsInto(ctx, saga, outcomes, applied, &p)) {
    return std::nullopt;
  }
  return p;
}

bool PlanAttemptResultsInto(const PlanContext& ctx, const Saga& saga,
                            const std::vector<AttemptOutcome>& outcomes,
                            std::vector<bool>* applied, Plan* out) {
  Plan& p = *out;
  p.Reset(saga);
  applied->assign(outcomes.size(), false);
  bool any = false;
  for (size_t i = 0; i < outcomes.size() && !p.finishes(); ++i) {
    (*applied)[i] = ApplyAttemptResult(ctx, p, outcomes[i]);
    any = any || (*applied)[i];
  }
  if (!any) return false;
  if (outcomes.size() > 1) DropCutTimers(p);
  return true;
}

}  // namespace cde
