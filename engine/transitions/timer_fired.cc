// A durable timer fell due: the end of a backoff, or of a sleep.
#include <algorithm>

#include "engine/transitions/progress.h"

namespace cde {

using nlohmann::json;
namespace ti = transitions_internal;

std::optional<Plan> PlanTimerFired(const PlanContext& ctx, const Saga& saga,
                                   const TimerRef& timer) {
  const Wait* found = FindWait(saga, timer.path);
  const bool matches = found != nullptr &&
                       (found->kind == Wait::Kind::kBackoff ||
                        found->kind == Wait::Kind::kSleep) &&
                       TimerOf(*found) == timer;
  const ti::At step = ti::StepAt(ctx.def, timer.path);
  if (!matches || step.step < 0) return std::nullopt;
  const Wait w = *found;
  Plan p = ti::From(saga);
  p.timers_delete.push_back(timer);
  ti::ClearWait(p.saga, w.path);
  if (w.kind == Wait::Kind::kBackoff) {
    p.events.push_back({EventKind::kTimerFired,
                        EventData().Set("timer", std::string(TimerKindName(
                                                     TimerKind::kBackoff)))});
    ti::StartAttempt(ctx, p, step, w.compensation);
    // A sleep that could not start may fail a tolerated item: the map goes.
    if (p.saga.state == SagaState::kRunning) ti::Advance(ctx, p);
    return p;
  }
  const int64_t slept = timer.due_ms - ti::StateOf(ctx, p, step).started_ms;
  ti::Succeed(ctx, p, step, w.compensation, w.attempt,
              {{"slept_ms", std::max<int64_t>(0, slept)}});
  ti::Advance(ctx, p);
  return p;
}

}  // namespace cde
