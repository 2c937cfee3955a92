// EngineImpl: what stands between a planned attempt and its dispatch (a
// step's rate limit, its circuit breaker), run-time limits, and the
// repeated-failure alert.
//
// A gate never fails an attempt. An attempt it holds back waits in the
// gate's FIFO, in memory only: its `attempt_started` is already logged, so a
// restart dispatches it again like any attempt whose result was not logged,
// and it consumes no retry because it never ran.
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
    RedactText(
        secrets,
        &authority);  // before the case changes    for (char& c : authority) c
                      // = static_cast<char>(std::tolower(c));
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

constexpr const char* kRateGate = "rate_limit";
constexpr const char* kBreakerGate = "circuit_breaker";

std::string GateName(const char* kind, const std::string& key) {
  return std::string(kind) + ":" + key;
}

}  // namespace

bool EngineImpl::PassGates(Active& a, const StepSpec& step,
                           const ActionSpec& spec,
                           const nlohmann::json& params) {
  const int64_t now = clock_.MonotonicMs();
  a.breaker_key.clear();
  if (!step.rate_limit.empty() &&
      !TryGate(GateName(kRateGate, step.rate_limit), a,
               [&] { return outbound_.TryTake(step.rate_limit, now); })) {
    return false;
  }
  const std::string key =
      BreakerKey(step, spec, params, *secrets_.redactions());
  if (key.empty()) return true;
  if (!TryGate(GateName(kBreakerGate, key), a, [&]() -> int64_t {
        const int64_t at = breakers_.Admit(key, now);
        return at == 0 ? 0 : std::max<int64_t>(1, at - now);
      })) {
    return false;
  }
  a.breaker_key = key;
  return true;
}

// First come, first served: an attempt arriving while others wait at the
// gate queues behind them even if the gate would let it through now.
bool EngineImpl::TryGate(const std::string& gate, Active& a,
                         const std::function<int64_t()>& wait_ms) {
  auto it = gates_.find(gate);
  const bool others = it != gates_.end() && !it->second.waiting.empty();
  const bool at_front = others && it->second.waiting.front() == a.saga.id;
  if (others && !at_front) {
    WaitAtGate(gate, a, 0, false);
    return false;
  }
  const int64_t wait = wait_ms();
  if (wait == 0) {
    if (at_front) it->second.waiting.pop_front();
    return true;
  }
  WaitAtGate(gate, a, wait, at_front);
  return false;
}

void EngineImpl::WaitAtGate(const std::string& gate, Active& a, int64_t wait_ms,
                            bool at_front) {
  Gate& g = gates_[gate];
  if (!at_front) {
    g.waiting.push_back(a.saga.id);
    const size_t colon = gate.find(':');
    m_.gate_waits->With({gate.substr(0, colon), gate.substr(colon + 1)})
        .Increment();
  }
  a.gate = gate;
  if (wait_ms <= 0) return;  // behind others: the front's timer wakes it
  if (!g.timer) g.timer = clock_.NewTimer([this, gate] { OpenGate(gate); });
  g.timer->Start(wait_ms);
}

// The gate's wait is over: the attempts at its front go through it until
// one is held back again (which re-arms the timer).
void EngineImpl::OpenGate(const std::string& gate) {
  if (shutting_down_ || !options_.run_sagas) return;
  Gate& g = gates_[gate];
  while (!g.waiting.empty()) {
    const std::string id = g.waiting.front();
    auto it = active_.find(id);
    if (it == active_.end() || it->second->gate != gate ||
        it->second->in_flight() ||
        it->second->saga.wait.kind != Wait::Kind::kAttempt) {
      g.waiting.pop_front();  // finished or moved on meanwhile
      continue;
    }
    Active& a = *it->second;
    a.gate.clear();
    Dispatch(a);
    if (!g.waiting.empty() && g.waiting.front() == id) break;
  }
}

// A cancelled saga whose attempt waits at a gate does not wait for the gate
// to open: the attempt never ran, so it fails as not run and the cancel goes
// on (compensating only what did run).
void EngineImpl::LeaveGate(const std::string& saga_id) {
  auto it = active_.find(saga_id);
  if (it == active_.end()) return;
  Active& a = *it->second;
  if (a.gate.empty() || a.in_flight() || !a.saga.cancel_requested) return;
  auto g = gates_.find(a.gate);
  if (g != gates_.end()) {
    auto& q = g->second.waiting;
    q.erase(std::remove(q.begin(), q.end(), saga_id), q.end());
  }
  const std::string gate = std::exchange(a.gate, "");
  const Wait& w = a.saga.wait;
  AttemptOutcome o{w.step, w.compensation, w.attempt};
  o.error = {"cancelled", "cancelled while waiting at " + gate};
  OnOutcome(saga_id, std::move(o));
}

void EngineImpl::RecordBreaker(Active& a, const AttemptOutcome& o) {
  if (a.breaker_key.empty()) return;
  const bool failed = !o.ok && CountsAgainstBreaker(o.error);
  breakers_.Record(a.breaker_key, failed, clock_.MonotonicMs());
  a.breaker_key.clear();
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
  // Closed again: whoever waits may go now, not at the next probe time.
  if (to == BreakerState::kClosed) {
    auto it = gates_.find(GateName(kBreakerGate, key));
    if (it != gates_.end() && it->second.timer && !it->second.waiting.empty()) {
      it->second.timer->Start(0);
    }
  }
}

std::optional<uint32_t> EngineImpl::ConcurrencyLimit(
    const WorkflowDefinition& def) const {
  auto it = limits_.max_concurrency.find(def.name);
  if (it != limits_.max_concurrency.end()) return it->second;
  return def.max_concurrency;
}

void EngineImpl::SetLimits(EngineLimits limits) {
  breakers_.SetPolicies(limits.breaker_default, limits.breakers);
  outbound_.SetPolicies(RatePolicy{}, limits.outbound);
  limits_ = std::move(limits);
  std::vector<std::string> workflows;
  for (const auto& [workflow, q] : queued_) workflows.push_back(workflow);
  for (const std::string& w : workflows) FillSlots(w);
  // A raised rate may let waiting attempts go sooner than their timers say.
  std::vector<std::string> gates;
  for (const auto& [gate, g] : gates_) {
    if (!g.waiting.empty()) gates.push_back(gate);
  }
  for (const std::string& gate : gates) OpenGate(gate);
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

void EngineImpl::CloseGates(const std::function<void()>& closed) {
  for (auto& [gate, g] : gates_) {
    if (g.timer) g.timer.release()->Close(closed);
  }
}

}  // namespace cde
