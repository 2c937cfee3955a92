// EngineImpl: what an attempt's gates (attempt_gates.h) need from the
// engine (the breaker a step reports to, what counts against it, the
// dispatch of an attempt a gate lets go, a cancel of one that waits),
// run-time limits, and the repeated-failure alert.
#include <algorithm>

#include "engine/engine_impl.h"
#include "engine/log.h"
#include "engine/secrets.h"

namespace cde {
namespace {

// Steps that name no breaker share one per downstream: the URL's authority
// for http, the action for exec and native actions. Local built-ins
// (noop, echo, fail, sleep) cannot overload anything and have none.
// A host that a secret renders is "[secret]": the key names the breaker in
// metrics, logs and errors.
std::string BreakerKey(const StepSpec& step, const ActionSpec& spec,
                       const nlohmann::json& params,
                       const std::vector<std::string>& secrets) {
  if (!step.circuit_breaker.empty()) return step.circuit_breaker;
  if (spec.action == "http") {
    // A whole-string template may render the url to any type; the action
    // itself fails such an attempt with a `params` error.
    const auto it = params.find("url");
    if (it == params.end() || !it->is_string()) return "";
    const std::string& url = it->get_ref<const std::string&>();
    const size_t scheme = url.find("://");
    if (scheme == std::string::npos) return "";
    std::string authority = url.substr(scheme + 3);
    authority = authority.substr(0, authority.find_first_of("/?#"));
    if (const size_t at = authority.rfind('@'); at != std::string::npos) {
      authority = authority.substr(at + 1);  // never user:password
    }
    // Redacted before the case changes: a secret matches as written.
    RedactText(secrets, &authority);
    for (char& c : authority) c = static_cast<char>(std::tolower(c));
    return authority;
  }
  if (spec.action == "exec" || !IsBuiltinAction(spec.action)) {
    return spec.action;
  }
  return "";
}

// A failure that says the downstream is unwell. A 4xx answer (other than
// 408 and 429) or a template that does not resolve says the request was
// wrong, not the service.
bool CountsAgainstBreaker(const ErrorInfo& e) {
  if (e.kind == "template" || e.kind == "unknown_action") return false;
  if (e.kind.starts_with("http_4")) {
    return e.kind == "http_408" || e.kind == "http_429";
  }
  return true;
}

// An attempt waiting at a gate, as AttemptGates knows it: "<saga>/<path>".
// Saga ids hold no '/', so the first one splits it.
std::string GateWaiter(const std::string& saga_id, const std::string& path) {
  return saga_id + "/" + path;
}

// The outcome of an attempt that was out when the engine last stopped and
// ends (`how`: "stopped", "cancelled") before this process sent it again,
// while it waited at `gate`: it may have reached its service before the
// restart, so its outcome is unknown and its step is undone.
ErrorInfo UnknownOutcome(uint32_t attempt, std::string_view how,
                         const std::string& gate) {
  return {kAbandonedErrorKind,
          "attempt " + std::to_string(attempt) +
              " was out when the engine last stopped and was " +
              std::string(how) + " before it was sent again" +
              (gate.empty() ? "" : " (it waited at " + gate + ")") +
              ": its outcome is unknown"};
}

}  // namespace

bool EngineImpl::PassGates(const std::string& saga_id, Attempt& attempt,
                           const StepSpec& step, const ActionSpec& spec,
                           const nlohmann::json& params) {
  attempt.breaker_key = BreakerKey(step, spec, params, *secrets_.redactions());
  if (step.rate_limit.empty() && attempt.breaker_key.empty()) {
    attempt.gate.clear();  // no gate to pass: no waiter's name to build
    return true;
  }
  if (gates_.Pass(GateWaiter(saga_id, attempt.ref.path), step.rate_limit,
                  attempt.breaker_key, &attempt.gate)) {
    return true;
  }
  attempt.breaker_key.clear();
  return false;
}

bool EngineImpl::GoThroughGate(const std::string& waiter,
                               const std::string& gate) {
  const size_t slash = waiter.find('/');
  auto it = active_.find(waiter.substr(0, slash));
  if (it == active_.end() || slash == std::string::npos) return false;
  Active& a = *it->second;
  auto at = a.attempts.find(waiter.substr(slash + 1));
  if (at == a.attempts.end()) return false;
  Attempt& attempt = at->second;
  if (attempt.gate != gate || attempt.in_flight() ||
      !WaitsFor(a, attempt.ref)) {
    return false;
  }
  attempt.gate.clear();
  Dispatch(a, AttemptRef(attempt.ref));
  return true;
}

// A cancelled saga whose attempts wait at gates does not wait for the gates
// to open: those attempts never ran, so they fail as not run and the cancel
// goes on (compensating only what did run).
void EngineImpl::LeaveGates(const std::string& saga_id) {
  auto it = active_.find(saga_id);
  if (it == active_.end() || !it->second->saga.cancel_requested) return;
  std::vector<AttemptOutcome> left;
  for (auto& [path, attempt] : it->second->attempts) {
    if (attempt.gate.empty() || attempt.in_flight()) continue;
    gates_.Leave(attempt.gate, GateWaiter(saga_id, path));
    AttemptOutcome o{attempt.ref};
    const std::string gate = std::exchange(attempt.gate, "");
    o.error =
        attempt.maybe_sent
            ? UnknownOutcome(attempt.ref.attempt, "cancelled", gate)
            : ErrorInfo{"cancelled", "cancelled while waiting at " + gate};
    left.push_back(std::move(o));
  }
  for (AttemptOutcome& o : left) OnOutcome(saga_id, std::move(o));
}

void EngineImpl::StopAttempt(Active& a, const std::string& path) {
  auto at = a.attempts.find(path);
  const Wait* w = FindWait(a.saga, path);
  if (w == nullptr || !w->stopped) return;  // answered meanwhile
  AttemptOutcome o{{path, w->compensation, w->attempt}};
  if (at != a.attempts.end()) {
    Attempt& attempt = at->second;
    // Dispatched: it runs to its end (or its timeout), and its result
    // tells the undo whether its effect happened. Aborting it here would
    // not stop a request the service already has.
    if (attempt.in_flight()) return ArmStoppedDeadline(a.saga.id, attempt);
    o.error =
        attempt.maybe_sent
            ? UnknownOutcome(w->attempt, "stopped", attempt.gate)
            : ErrorInfo{kStoppedErrorKind,
                        "stopped before it ran" +
                            (attempt.gate.empty()
                                 ? std::string()
                                 : " (it waited at " + attempt.gate + ")")};
    if (!attempt.gate.empty()) {
      gates_.Leave(attempt.gate, GateWaiter(a.saga.id, path));
    }
    Abandon(attempt);
    a.attempts.erase(at);
  } else {
    o.error = {kAbandonedErrorKind, "attempt " + std::to_string(w->attempt) +
                                        " abandoned in flight"};
  }
  // Planned after the transition that stopped it, like any result.
  inbox_->Post([this, id = a.saga.id, o = std::move(o)]() mutable {
    OnOutcome(id, std::move(o));
  });
}

void EngineImpl::ArmStoppedDeadline(const std::string& saga_id,
                                    Attempt& attempt) {
  const int64_t ms = limits_.stopped_attempt_wait_ms;
  attempt.stopped_deadline = clock_.NewTimer([this, saga_id, ref = attempt.ref,
                                              ms] {
    auto it = active_.find(saga_id);
    if (it == active_.end()) return;
    Active& a = *it->second;
    auto at = a.attempts.find(ref.path);
    if (at == a.attempts.end() || at->second.ref.attempt != ref.attempt) {
      return;
    }
    Attempt& attempt = at->second;
    if (!attempt.gate.empty()) {
      gates_.Leave(std::exchange(attempt.gate, ""),
                   GateWaiter(saga_id, ref.path));
    }
    AttemptOutcome o{ref};
    o.error = {kAbandonedErrorKind, "attempt " + std::to_string(ref.attempt) +
                                        " stopped and not answered within " +
                                        std::to_string(ms) +
                                        " ms (limits.stopped_attempt_wait_ms)"};
    // Its work is aborted when the outcome is planned, as a timeout's is.
    OnOutcome(saga_id, std::move(o));
  });
  attempt.stopped_deadline->Start(ms);
}

void EngineImpl::RecordBreaker(Attempt& attempt, const AttemptOutcome& o) {
  if (attempt.breaker_key.empty()) return;
  const bool failed = !o.ok && CountsAgainstBreaker(o.error);
  gates_.Record(attempt.breaker_key, failed);
  attempt.breaker_key.clear();
}

void EngineImpl::OnBreakerTransition(const std::string& key, BreakerState from,
                                     BreakerState to) {
  const std::string f(BreakerStateName(from)), t(BreakerStateName(to));
  m_.breaker_transitions->With({key, f, t}).Increment();
  m_.breaker_state->With({key}).Set(to == BreakerState::kClosed ? 0
                                    : to == BreakerState::kOpen ? 1
                                                                : 2);
  Log(to == BreakerState::kOpen ? LogLevel::kWarn : LogLevel::kInfo, "engine",
      "circuit breaker " + t, {.extra = {{"breaker", key}, {"from", f}}});
}

std::optional<uint32_t> EngineImpl::ConcurrencyLimit(
    const WorkflowDefinition& def) const {
  auto it = limits_.max_concurrency.find(def.name);
  if (it != limits_.max_concurrency.end()) return it->second;
  return def.max_concurrency;
}

void EngineImpl::SetLimits(EngineLimits limits) {
  limits_ = std::move(limits);
  for (const std::string& workflow : slots_.Waiting()) FillSlots(workflow);
  gates_.SetPolicies(limits_);
}

void EngineImpl::NoteFailure(const std::string& workflow) {
  if (limits_.alert_failures == 0) return;
  const int64_t now = Now();
  auto& times = failures_[workflow];
  times.push_back(now);
  while (!times.empty() && times.front() <= now - limits_.alert_window_ms) {
    times.pop_front();
  }
  if (times.size() < limits_.alert_failures) return;
  int64_t& last = alerted_ms_[workflow];
  if (last != 0 && now - last < limits_.alert_window_ms) return;
  last = now;
  m_.alerts->With({workflow}).Increment();
  Log(LogLevel::kWarn, "engine", "workflow failing repeatedly",
      {.workflow = workflow,
       .extra = {{"failures", times.size()},
                 {"window_ms", limits_.alert_window_ms}}});
}

}  // namespace cde
