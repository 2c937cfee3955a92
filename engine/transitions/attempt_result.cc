// The result of an attempt: success, retry after a durable backoff, or
// permanent failure.
#include "engine/transitions/progress.h"

namespace cde {

using nlohmann::json;
using transitions_internal::Advance;
using transitions_internal::BeginCancel;
using transitions_internal::FailPermanently;
using transitions_internal::Finish;
using transitions_internal::From;
using transitions_internal::IsAlwaysPermanent;
using transitions_internal::SpecOf;
using transitions_internal::StartAttempt;
using transitions_internal::StepRef;
using transitions_internal::Succeed;

std::optional<Plan> PlanAttemptResult(const PlanContext& ctx, const Saga& saga,
                                      const AttemptOutcome& o) {
  const Wait& w = saga.wait;
  if (w.kind != Wait::Kind::kAttempt || w.step != o.step ||
      w.compensation != o.compensation || w.attempt != o.attempt) {
    return std::nullopt;
  }
  Plan p = From(saga);
  if (o.ok) {
    Succeed(ctx, p, o.step, o.compensation, o.attempt, o.output);
    if (p.saga.cancel_requested && p.saga.state == SagaState::kRunning) {
      BeginCancel(ctx, p);
    } else {
      Advance(ctx, p);
    }
    return p;
  }
  StepState& st = p.saga.steps[static_cast<size_t>(o.step)];
  const ActionSpec& spec = SpecOf(ctx.def, o.step, o.compensation);
  const bool cancelling_forward = p.saga.cancel_requested && !o.compensation;
  const bool retry = !cancelling_forward && !IsAlwaysPermanent(o.error.kind) &&
                     !IsNonRetryable(spec.retry, o.error.kind) &&
                     o.attempt < spec.retry.max_attempts;
  if (!retry) {
    FailPermanently(ctx, p, o.step, o.compensation, o.error);
    return p;
  }
  (o.compensation ? st.compensation_error : st.error) = o.error;
  const int64_t due =
      ctx.now_ms + BackoffMs(spec.retry, o.attempt + 1, ctx.jitter_sample);
  json data = StepRef(ctx.def, o.step, o.compensation, o.attempt);
  data["error"] = {{"kind", o.error.kind}, {"message", o.error.message}};
  data["retry_at_ms"] = due;
  p.events.push_back({"attempt_failed", std::move(data)});
  p.saga.wait = {Wait::Kind::kBackoff, o.step, o.compensation, o.attempt, due};
  p.timers_put.push_back({due, "backoff"});
  p.arm_timer = true;
  return p;
}

}  // namespace cde
