// The result of an attempt: success, retry after a durable backoff, or
// permanent failure.
#include "engine/transitions/progress.h"

namespace cde {

using nlohmann::json;
namespace ti = transitions_internal;

std::optional<Plan> PlanAttemptResult(const PlanContext& ctx, const Saga& saga,
                                      const AttemptOutcome& o) {
  const Wait* w = FindWait(saga, o.ref.path);
  const ti::At step = ti::StepAt(ctx.def, o.ref.path);
  if (w == nullptr || w->kind != Wait::Kind::kAttempt || step.step < 0 ||
      w->compensation != o.ref.compensation || w->attempt != o.ref.attempt) {
    return std::nullopt;
  }
  const bool compensation = o.ref.compensation;
  const uint32_t attempt = o.ref.attempt;
  Plan p = ti::From(saga);
  if (o.ok) {
    ti::Succeed(ctx, p, step, compensation, attempt, o.output);
    ti::Advance(ctx, p);
    return p;
  }
  const ActionSpec& spec = ti::SpecOf(ctx.def, step.step, compensation);
  const bool cancelling_forward = p.saga.cancel_requested && !compensation;
  const bool retry = !cancelling_forward &&
                     !ti::IsAlwaysPermanent(o.error.kind) &&
                     !IsNonRetryable(spec.retry, o.error.kind) &&
                     attempt < spec.retry.max_attempts;
  if (!retry) {
    ti::FailPermanently(ctx, p, step, compensation, o.error);
    // A tolerated item's failure leaves the map going: more may start.
    if (p.saga.state == SagaState::kRunning) ti::Advance(ctx, p);
    return p;
  }
  StepState& st = ti::MutableState(ctx, p, step);
  (compensation ? st.compensation_error : st.error) = o.error;
  const int64_t due =
      ctx.now_ms + BackoffMs(spec.retry, attempt + 1, ctx.jitter_sample);
  json data = ti::StepRef(ctx.def, step, compensation, attempt);
  data["error"] = {{"kind", o.error.kind}, {"message", o.error.message}};
  data["retry_at_ms"] = due;
  p.events.push_back({EventKind::kAttemptFailed, std::move(data)});
  const Wait backoff{Wait::Kind::kBackoff, o.ref.path, compensation, attempt,
                     due};
  p.timers_put.push_back(TimerOf(backoff));
  p.actions.push_back({PlanAction::Kind::kArmTimer, o.ref, TimerOf(backoff)});
  ti::SetWait(p.saga, backoff);
  return p;
}

}  // namespace cde
