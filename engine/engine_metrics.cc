// EngineImpl: feeding the metrics registry. docs/metrics.md lists every
// metric and what it counts; keep the two in step.
#include <cassert>

#include "engine/engine_impl.h"

namespace cde {
namespace {

using Clock = std::chrono::steady_clock;

// The engine's names are fixed: registering them cannot fail unless two
// collide, which is a bug caught by every test that opens an engine.
template <typename T>
T* Must(Result<T*> family) {
  assert(family.ok() && "engine metric registration failed");
  return family.value();
}

double Seconds(Clock::duration d) {
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
               ->With({})) {}

namespace {

const std::string& StepName(const WorkflowDefinition& def, int step) {
  static const std::string kNone = "";
  return step >= 0 && static_cast<size_t>(step) < def.steps.size()
             ? def.steps[static_cast<size_t>(step)].name
             : kNone;
}

}  // namespace

void EngineImpl::ObserveCommitted(const Active& a, const Plan& plan) {
  const Saga& after = plan.saga;
  const std::string& wf = after.workflow;
  if (!plan.previous_state) m_.sagas_started->With({wf}).Increment();
  const bool was_active = plan.previous_state && IsActive(*plan.previous_state);
  if (was_active != IsActive(after.state)) {
    m_.sagas_in_flight->Add(was_active ? -1 : 1);
  }
  if (plan.finished) {
    m_.sagas_finished->With({wf, std::string(SagaStateName(after.state))})
        .Increment();
  }
  if (plan.dlq_put) m_.dlq_entries->Add(1);
  if (plan.dlq_delete) m_.dlq_entries->Add(-1);
  // A retry: the saga waited for an attempt and now waits for its backoff.
  if (a.saga.wait.kind == Wait::Kind::kAttempt &&
      after.wait.kind == Wait::Kind::kBackoff && !after.wait.compensation) {
    m_.retries->With({wf, StepName(*a.def, after.wait.step)}).Increment();
  }
}

void EngineImpl::ObserveDispatch(Active& a) {
  a.dispatched = Clock::now();
  m_.attempts_in_flight->Set(static_cast<double>(attempts_in_flight_));
  if (a.saga.wait.compensation) {
    m_.compensations
        ->With({a.saga.workflow, StepName(*a.def, a.saga.wait.step)})
        .Increment();
  }
}

void EngineImpl::ObserveOutcome(const Active& a, const AttemptOutcome& o,
                                Clock::time_point arrived) {
  m_.attempts_in_flight->Set(static_cast<double>(attempts_in_flight_));
  if (o.compensation) return;  // counted by cde_compensations_total
  const std::string& step = StepName(*a.def, o.step);
  const char* result = o.ok                        ? "ok"
                       : o.error.kind == "timeout" ? "timeout"
                                                   : "error";
  m_.attempts->With({a.saga.workflow, step, result}).Increment();
  m_.step_duration->With({a.saga.workflow, step})
      .Observe(Seconds(arrived - a.dispatched));
}

void EngineImpl::ObservePoisoned(const std::string& workflow) {
  m_.sagas_finished->With({workflow, "parked"}).Increment();
  m_.dlq_entries->Add(1);
  m_.sagas_in_flight->Add(-1);  // it was loaded as an active saga
}

void EngineImpl::Commit(Transition transition, LoopCommitter::Then then) {
  committer_->Commit(std::move(transition),
                     [h = m_.commit_latency, start = Clock::now(),
                      then = std::move(then)](const Status& s) {
                       h->Observe(Seconds(Clock::now() - start));
                       then(s);
                     });
}

}  // namespace cde
