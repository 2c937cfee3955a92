// A durable timer fell due: the end of a backoff, or of a sleep.
#include <algorithm>

#include "engine/transitions/progress.h"

namespace cde {

using nlohmann::json;
namespace ti = transitions_internal;

std::optional<Plan> PlanTimerFired(const PlanContext& ctx, const Saga& saga,
                                   const TimerRef& timer) {
  const Wait& w = saga.wait;
  const bool matches =
      (w.kind == Wait::Kind::kBackoff || w.kind == Wait::Kind::kSleep) &&
      TimerOf(w) == timer;
  if (!matches) return std::nullopt;
  Plan p = ti::From(saga);
  p.timers_delete.push_back(timer);
  p.saga.wait = {};
  if (w.kind == Wait::Kind::kBackoff) {
    p.events.push_back({EventKind::kTimerFired,
                        {{"timer", TimerKindName(TimerKind::kBackoff)}}});
    ti::StartAttempt(ctx, p, w.step, w.compensation);
    return p;
  }
  const int64_t slept =
      timer.due_ms - saga.steps[static_cast<size_t>(w.step)].started_ms;
  ti::Succeed(ctx, p, w.step, w.compensation, w.attempt,
              {{"slept_ms", std::max<int64_t>(0, slept)}});
  if (p.saga.cancel_requested && p.saga.state == SagaState::kRunning) {
    ti::BeginCancel(ctx, p);
  } else {
    ti::Advance(ctx, p);
  }
  return p;
}

}  // namespace cde
