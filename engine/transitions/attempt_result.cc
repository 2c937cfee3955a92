// The result of an attempt: success, retry after a durable backoff, or
// permanent failure.
#include "engine/transitions/progress.h"

namespace cde {

using nlohmann::json;
namespace ti = transitions_internal;

std::optional<Plan> PlanAttemptResult(const PlanContext& ctx, const Saga& saga,
                                      const AttemptOutcome& o) {
  const Wait& w = saga.wait;
  if (w.kind != Wait::Kind::kAttempt || w.step != o.step ||
      w.compensation != o.compensation || w.attempt != o.attempt) {
    return std::nullopt;
  }
  Plan p = ti::From(saga);
  if (o.ok) {
    ti::Succeed(ctx, p, o.step, o.compensation, o.attempt, o.output);
    if (p.saga.cancel_requested && p.saga.state == SagaState::kRunning) {
      ti::BeginCancel(ctx, p);
    } else {
      ti::Advance(ctx, p);
    }
    return p;
  }
  StepState& st = p.saga.steps[static_cast<size_t>(o.step)];
  const ActionSpec& spec = ti::SpecOf(ctx.def, o.step, o.compensation);
  const bool cancelling_forward = p.saga.cancel_requested && !o.compensation;
  const bool retry = !cancelling_forward &&
                     !ti::IsAlwaysPermanent(o.error.kind) &&
                     !IsNonRetryable(spec.retry, o.error.kind) &&
                     o.attempt < spec.retry.max_attempts;
  if (!retry) {
    ti::FailPermanently(ctx, p, o.step, o.compensation, o.error);
    return p;
  }
  (o.compensation ? st.compensation_error : st.error) = o.error;
  const int64_t due =
      ctx.now_ms + BackoffMs(spec.retry, o.attempt + 1, ctx.jitter_sample);
  json data = ti::StepRef(ctx.def, o.step, o.compensation, o.attempt);
  data["error"] = {{"kind", o.error.kind}, {"message", o.error.message}};
  data["retry_at_ms"] = due;
  p.events.push_back({EventKind::kAttemptFailed, std::move(data)});
  p.saga.wait = {Wait::Kind::kBackoff, o.step, o.compensation, o.attempt, due};
  p.timers_put.push_back({due, TimerKind::kBackoff});
  p.arm_timer = true;
  return p;
}

}  // namespace cde
