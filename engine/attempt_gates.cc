#include "engine/attempt_gates.h"

#include <algorithm>

#include "engine/engine.h"

namespace cde {
namespace {

constexpr const char* kRateGate = "rate_limit";
constexpr const char* kBreakerGate = "circuit_breaker";

std::string GateName(const char* kind, const std::string& key) {
  return std::string(kind) + ":" + key;
}

}  // namespace

AttemptGates::AttemptGates(Clock& clock, const EngineLimits& limits,
                           Hooks hooks)
    : clock_(clock),
      hooks_(std::move(hooks)),
      breakers_(limits.breaker_default, limits.breakers,
                [this](const std::string& key, BreakerState from,
                       BreakerState to) { OnBreakerMoved(key, from, to); }),
      buckets_(RatePolicy{}, limits.outbound) {}

bool AttemptGates::Pass(const std::string& saga_id, const std::string& rate_key,
                        const std::string& breaker_key,
                        std::string* waiting_at) {
  const int64_t now = clock_.MonotonicMs();
  waiting_at->clear();
  if (!rate_key.empty()) {
    const std::string gate = GateName(kRateGate, rate_key);
    if (!Try(gate, saga_id, [&] { return buckets_.TryTake(rate_key, now); })) {
      *waiting_at = gate;
      return false;
    }
  }
  if (breaker_key.empty()) return true;
  const std::string gate = GateName(kBreakerGate, breaker_key);
  if (!Try(gate, saga_id, [&]() -> int64_t {
        const int64_t at = breakers_.Admit(breaker_key, now);
        return at == 0 ? 0 : std::max<int64_t>(1, at - now);
      })) {
    *waiting_at = gate;
    return false;
  }
  return true;
}

bool AttemptGates::Try(const std::string& gate, const std::string& saga_id,
                       const std::function<int64_t()>& wait_ms) {
  auto it = gates_.find(gate);
  const bool others = it != gates_.end() && !it->second.waiting.empty();
  const bool at_front = others && it->second.waiting.front() == saga_id;
  if (others && !at_front) {
    Wait(gate, saga_id, 0, false);
    return false;
  }
  const int64_t wait = wait_ms();
  if (wait == 0) {
    if (at_front) it->second.waiting.pop_front();
    return true;
  }
  Wait(gate, saga_id, wait, at_front);
  return false;
}

void AttemptGates::Wait(const std::string& gate, const std::string& saga_id,
                        int64_t wait_ms, bool at_front) {
  Gate& g = gates_[gate];
  if (!at_front) {
    g.waiting.push_back(saga_id);
    const size_t colon = gate.find(':');
    hooks_.waited(gate.substr(0, colon), gate.substr(colon + 1));
  }
  if (wait_ms <= 0) return;  // behind others: the front's timer wakes it
  if (!g.timer) g.timer = clock_.NewTimer([this, gate] { Open(gate); });
  g.timer->Start(wait_ms);
}

// The gate's wait is over: the attempts at its front go through it until
// one is held back again (which re-arms the timer).
void AttemptGates::Open(const std::string& gate) {
  if (stopped_) return;
  Gate& g = gates_[gate];
  while (!g.waiting.empty()) {
    const std::string id = g.waiting.front();
    if (!hooks_.go(id, gate)) {
      // Finished or moved on meanwhile. (go may have run a dispatch that
      // changed the FIFO: drop the id only if it is still at the front.)
      if (!g.waiting.empty() && g.waiting.front() == id) g.waiting.pop_front();
      continue;
    }
    if (!g.waiting.empty() && g.waiting.front() == id) break;  // held again
  }
}

void AttemptGates::Leave(const std::string& gate, const std::string& saga_id) {
  auto g = gates_.find(gate);
  if (g == gates_.end()) return;
  auto& q = g->second.waiting;
  q.erase(std::remove(q.begin(), q.end(), saga_id), q.end());
}

void AttemptGates::Record(const std::string& key, bool failed) {
  breakers_.Record(key, failed, clock_.MonotonicMs());
}

void AttemptGates::OnBreakerMoved(const std::string& key, BreakerState from,
                                  BreakerState to) {
  hooks_.breaker_moved(key, from, to);
  // Closed again: whoever waits may go now, not at the next probe time.
  if (to == BreakerState::kClosed) {
    auto it = gates_.find(GateName(kBreakerGate, key));
    if (it != gates_.end() && it->second.timer && !it->second.waiting.empty()) {
      it->second.timer->Start(0);
    }
  }
}

void AttemptGates::SetPolicies(const EngineLimits& limits) {
  breakers_.SetPolicies(limits.breaker_default, limits.breakers);
  buckets_.SetPolicies(RatePolicy{}, limits.outbound);
  // A raised rate may let waiting attempts go sooner than their timers say.
  std::vector<std::string> gates;
  for (const auto& [gate, g] : gates_) {
    if (!g.waiting.empty()) gates.push_back(gate);
  }
  for (const std::string& gate : gates) Open(gate);
}

std::vector<CircuitBreakers::View> AttemptGates::Breakers() const {
  return breakers_.List(clock_.MonotonicMs());
}

void AttemptGates::Close(const std::function<void()>& closed) {
  for (auto& [gate, g] : gates_) {
    if (g.timer) g.timer.release()->Close(closed);
  }
}

}  // namespace cde
