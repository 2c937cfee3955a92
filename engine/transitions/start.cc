// A new saga, and a queued saga that gets its slot.
#include "engine/transitions/progress.h"

namespace cde {

using nlohmann::json;
namespace ti = transitions_internal;

Plan PlanStart(const PlanContext& ctx, std::string saga_id, json input,
               std::string idempotency_key, std::string correlation_id,
               std::string trace_id, std::string started_by, bool queued) {
  Plan p;
  Saga& s = p.saga;
  s.id = std::move(saga_id);
  s.workflow = ctx.def.name;
  s.version = ctx.def.version;
  s.state = SagaState::kRunning;
  s.created_ms = ctx.now_ms;
  s.idempotency_key = std::move(idempotency_key);
  s.correlation_id = std::move(correlation_id);
  s.trace_id = std::move(trace_id);
  s.started_by = std::move(started_by);
  s.input = std::move(input);
  s.steps.resize(ctx.def.steps.size());
  p.put_idempotency = !s.idempotency_key.empty();
  EventData data;
  data.Set("workflow", s.workflow)
      .Set("version", s.version)
      .Set("input", s.input);
  if (!s.idempotency_key.empty()) {
    data.Set("idempotency_key", s.idempotency_key);
  }
  if (!s.correlation_id.empty()) data.Set("correlation_id", s.correlation_id);
  if (!s.trace_id.empty()) data.Set("trace_id", s.trace_id);
  if (!s.started_by.empty()) data.Set("started_by", s.started_by);
  p.events.push_back({EventKind::kSagaStarted, std::move(data)});
  if (queued) {
    s.waits.push_back({Wait::Kind::kQueued, "", false, 0, 0});
    p.events.push_back({EventKind::kSagaQueued, {}});
  } else {
    ti::Advance(ctx, p);
  }
  return p;
}

Plan PlanDequeue(const PlanContext& ctx, const Saga& saga) {
  Plan p = ti::From(saga);
  ti::ClearWait(p.saga, "");
  p.events.push_back({EventKind::kSagaDequeued, {}});
  ti::Advance(ctx, p);
  return p;
}

}  // namespace cde
