// EngineImpl: telemetry. Feeds the metrics registry (docs/metrics.md lists
// every metric and what it counts; keep the two in step) and writes a log
// line for each event a committed transition logged.
#include <cassert>

#include "engine/engine_impl.h"
#include "engine/log.h"

namespace cde {
namespace {

using Steady = std::chrono::steady_clock;  // for durations only

// The engine's names are fixed: registering them cannot fail unless two
// collide, which is a bug caught by every test that opens an engine.
template <typename T>
T* Must(Result<T*> family) {
  assert(family.ok() && "engine metric registration failed");
  return family.value();
}

double Seconds(Steady::duration d) {
  return std::max(0.0, std::chrono::duration<double>(d).count());
}

}  // namespace

EngineInstruments::EngineInstruments(Metrics& m)
    : sagas_started(Must(m.AddCounter("cde_sagas_started_total",
                                      "Sagas started (their start committed).",
                                      {"workflow"}))),
      sagas_finished(Must(m.AddCounter(
          "cde_sagas_finished_total",
          "Sagas that reached a terminal state or were parked in the DLQ, by "
          "that state.",
          {"workflow", "outcome"}))),
      // From a millisecond noop to an hour-long exec.
      step_duration(Must(m.AddHistogram(
          "cde_step_duration_seconds",
          "Time from dispatching a step's attempt to its outcome reaching the "
          "engine.",
          {"workflow", "step"},
          {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
           60, 300, 900, 3600}))),
      attempts(Must(m.AddCounter(
          "cde_attempts_total",
          "Attempts of steps that reached an outcome: ok, error or timeout.",
          {"workflow", "step", "result"}))),
      retries(Must(m.AddCounter(
          "cde_retries_total",
          "Failed attempts of steps for which a retry was scheduled.",
          {"workflow", "step"}))),
      compensations(Must(m.AddCounter(
          "cde_compensations_total",
          "Compensation attempts dispatched (retries of a compensation "
          "included).",
          {"workflow", "step"}))),
      parked(Must(m.AddCounter(
          "cde_dlq_parked_total",
          "Sagas parked in the dead-letter queue, by reason: step_failed, "
          "compensation_failed, poison.",
          {"workflow", "reason"}))),
      replays(Must(m.AddCounter("cde_replays_total",
                                "Parked sagas replayed out of the DLQ.",
                                {"workflow"}))),
      alerts(Must(m.AddCounter(
          "cde_workflow_failure_alerts_total",
          "Warnings logged because a workflow's sagas failed more often than "
          "alerts.workflow_failures allows.",
          {"workflow"}))),
      checkpoints(&Must(m.AddCounter("cde_checkpoints_total",
                                     "Attempts a graceful shutdown cut off "
                                     "and checkpointed."))
                       ->With({})),
      breaker_state(Must(m.AddGauge(
          "cde_circuit_breaker_state",
          "A circuit breaker's state: 0 closed, 1 open, 2 half-open.",
          {"key"}))),
      breaker_transitions(Must(m.AddCounter(
          "cde_circuit_breaker_transitions_total",
          "Circuit breaker state changes.", {"key", "from", "to"}))),
      gate_waits(Must(m.AddCounter(
          "cde_gate_waits_total",
          "Attempts held back before dispatch, by gate (rate_limit or "
          "circuit_breaker) and key.",
          {"gate", "key"}))),
      dlq_entries(&Must(m.AddGauge("cde_dlq_entries",
                                   "Sagas parked in the dead-letter queue."))
                       ->With({})),
      sagas_in_flight(&Must(m.AddGauge("cde_sagas_in_flight",
                                       "Sagas running, compensating or "
                                       "cancelling, including queued and "
                                       "dormant ones."))
                           ->With({})),
      attempts_in_flight(
          &Must(m.AddGauge("cde_attempts_in_flight",
                           "Attempts dispatched whose outcome is not known "
                           "yet."))
               ->With({})),
      commit_latency(
          &Must(m.AddHistogram(
                    "cde_commit_latency_seconds",
                    "Time from handing a transition to the commit writer to "
                    "acting on its durable commit on the loop thread.",
                    {},
                    {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                     0.05, 0.1, 0.25, 0.5, 1, 2.5}))
               ->With({})),
      commit_batch_size(
          &Must(m.AddHistogram("cde_commit_batch_size",
                               "Transitions written per group commit (one "
                               "store write, one fsync).",
                               {},
                               {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}))
               ->With({})),
      commit_groups_gathered(
          &Must(m.AddCounter(
                    "cde_commit_groups_gathered_total",
                    "Group commits for which the writer first waited, at "
                    "most one write's time, for the transitions its last "
                    "commit released to come back."))
               ->With({})) {}

namespace {

// How loud each logged event is: routine progress, a saga's start and
// completion included, is debug (two lines per saga cost a fifth of the
// server's throughput at info); what an operator did or should know is
// info; failures warn; a park (an operator must act) error.
LogLevel EventLevel(EventKind kind) {
  switch (kind) {
    case EventKind::kSagaCancelled:
    case EventKind::kCancelRequested:
    case EventKind::kReplayed:
    case EventKind::kCheckpoint:
      return LogLevel::kInfo;
    case EventKind::kAttemptFailed:
    case EventKind::kStepFailed:
    case EventKind::kSagaCompensating:
    case EventKind::kSagaCompensated:
    case EventKind::kCompensationFailed:
    case EventKind::kStepStopped:
    case EventKind::kItemFailed:
      return LogLevel::kWarn;
    case EventKind::kSagaParked:
    case EventKind::kSagaPoisoned:
      return LogLevel::kError;
    default:
      return LogLevel::kDebug;
  }
}

}  // namespace

void KeepEventsToLog(Plan* plan) {
  for (const PlannedEvent& e : plan->events) {
    if (!LogEnabled(EventLevel(e.kind))) continue;
    // Not outputs and inputs: they may be large or sensitive.
    plan->to_log.push_back({e.kind, e.data.Without({"output", "input"})});
  }
}

void LogSagaEvent(const Saga& saga, EventKind kind, const EventData& data) {
  const LogLevel level = EventLevel(kind);
  if (!LogEnabled(level)) return;
  LogFields f{.saga_id = saga.id,
              .workflow = saga.workflow,
              .correlation_id = saga.correlation_id,
              .trace_id = saga.trace_id};
  std::string step;
  nlohmann::json extra = nlohmann::json::object();
  data.ForEach([&](std::string_view k, const EventData::Value& v) {
    if (k == "step" && std::holds_alternative<std::string>(v)) {
      step = std::get<std::string>(v);
    } else if (k == "attempt" && std::holds_alternative<uint64_t>(v)) {
      f.attempt = static_cast<uint32_t>(std::get<uint64_t>(v));
    } else if (k != "output" && k != "input") {
      extra[std::string(k)] = EventData::ToJson(v);
    }
  });
  f.step = step;
  f.extra = std::move(extra);
  Log(level, "engine", EventKindName(kind), f);
}

void EngineImpl::ObserveCommitted(const Active& a, const Plan& plan) {
  const Saga& after = plan.saga;
  const std::string& wf = after.workflow;
  if (!plan.previous_state) series_.Started(a.def).Increment();
  const bool was_active = plan.previous_state && IsActive(*plan.previous_state);
  if (was_active != IsActive(after.state)) {
    m_.sagas_in_flight->Add(was_active ? -1 : 1);
  }
  if (plan.finishes()) series_.Finished(a.def, after.state).Increment();
  for (const PlannedEvent& e : plan.to_log) LogSagaEvent(after, e.kind, e.data);
  if (plan.dlq_put) {
    m_.dlq_entries->Add(1);
    m_.parked->With({wf, plan.dlq_put->reason}).Increment();
  }
  if (plan.previous_state == SagaState::kParked && IsActive(after.state)) {
    m_.replays->With({wf}).Increment();
  }
  if (plan.finishes() && (after.state == SagaState::kCompensated ||
                          after.state == SagaState::kParked)) {
    NoteFailure(wf);
  }
  if (plan.dlq_delete) m_.dlq_entries->Add(-1);
  // A retry: an attempt failed and its step now waits for a backoff.
  for (const PlanAction& action : plan.actions) {
    if (action.kind == PlanAction::Kind::kArmTimer &&
        action.timer.kind == TimerKind::kBackoff &&
        !action.attempt.compensation) {
      m_.retries->With({wf, StepLabel(action.attempt.path)}).Increment();
    }
  }
}

std::string StepLabel(std::string_view path) {
  std::string label;
  label.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '[') {
      const size_t close = path.find(']', i);
      if (close != std::string_view::npos) {
        i = close;
        continue;
      }
    }
    label.push_back(path[i]);
  }
  return label;
}

void EngineImpl::ObserveDispatch(const Active& a, Attempt& attempt) {
  attempt.dispatched = Steady::now();
  m_.attempts_in_flight->Set(static_cast<double>(attempts_.count()));
  if (attempt.ref.compensation) {
    m_.compensations->With({a.saga.workflow, StepLabel(attempt.ref.path)})
        .Increment();
  }
}

void EngineImpl::ObserveOutcome(const Active& a, const Attempt& attempt,
                                const AttemptOutcome& o,
                                Steady::time_point arrived) {
  m_.attempts_in_flight->Set(static_cast<double>(attempts_.count()));
  if (o.ref.compensation) return;  // counted by cde_compensations_total
  SeriesCache::Series& series = series_.Step(a.def, attempt.step, o.ref.path);
  const bool timeout = !o.ok && o.error.kind == "timeout";
  Counter*& attempts = o.ok      ? series.ok
                       : timeout ? series.timeout
                                 : series.error;
  // Each result's series once it happens: /metrics lists no result of a
  // step that never had it.
  if (attempts == nullptr) {
    const char* result = o.ok ? "ok" : timeout ? "timeout" : "error";
    attempts = &m_.attempts->With({a.def->name, series.label, result});
  }
  attempts->Increment();
  series.duration->Observe(Seconds(arrived - attempt.dispatched));
}

SeriesCache::OfDefinition& SeriesCache::Of(const Def& def) {
  OfDefinition& of = by_def_[def.get()];
  if (of.def == nullptr) {
    of.def = def;
    of.steps.resize(def->steps.size());
  }
  return of;
}

Counter& SeriesCache::Started(const Def& def) {
  OfDefinition& of = Of(def);
  if (of.started == nullptr) of.started = &m_.sagas_started->With({def->name});
  return *of.started;
}

Counter& SeriesCache::Finished(const Def& def, SagaState state) {
  Counter*& finished = Of(def).finished[state];
  if (finished == nullptr) {
    finished = &m_.sagas_finished->With({def->name, SagaStateName(state)});
  }
  return *finished;
}

SeriesCache::Series& SeriesCache::Step(const Def& def, int step,
                                       std::string_view path) {
  assert(step >= 0 && static_cast<size_t>(step) < def->steps.size());
  std::optional<Series>& cached = Of(def).steps[static_cast<size_t>(step)];
  if (!cached) {
    cached.emplace();
    cached->label = StepLabel(path);
    cached->duration = &m_.step_duration->With({def->name, cached->label});
  }
  return *cached;
}

void EngineImpl::ObservePoisoned(const std::string& workflow) {
  m_.sagas_finished->With({workflow, "parked"}).Increment();
  m_.parked->With({workflow, std::string(DlqReasonName(DlqReason::kPoison))})
      .Increment();
  m_.dlq_entries->Add(1);
  m_.sagas_in_flight->Add(-1);  // it was loaded as an active saga
}

void EngineImpl::Commit(Transition transition, LoopCommitter::Then then) {
  if (work_.drained()) {
    // Shutdown has closed the committer: nothing is written any more.
    then(Status::ShutdownInProgress("the engine has shut down"));
    return;
  }
  // What the continuation posted to the inbox runs before the next
  // continuation, not after all of those the writer completed together: a
  // synchronous action's result (a noop's, an echo's) is planned and
  // committed at once, so that a group's commits reach the writer spread
  // over the loop's pass instead of all at its end, and the writer writes
  // them while the loop works (CommitWriter's early writes).
  committer_->Commit(
      std::move(transition),
      [this, h = m_.commit_latency, start = Steady::now(), hold = work_.Enter(),
       then = std::move(then)](const Status& s) mutable {
        h->Observe(Seconds(Steady::now() - start));
        then(s);
        // Still inside the work gate: shutdown cannot drain between the
        // commit and what it set going.
        inbox_->RunPosted();
        hold.Leave();
      });
}

}  // namespace cde
