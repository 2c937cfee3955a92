// AttemptGates: what stands between a planned attempt and its dispatch, a
// step's rate limit (a token bucket per key) and its circuit breaker (one
// per key), with the FIFO of attempts waiting at each gate and the one
// timer per gate that says when its front may go.
//
// A gate never fails an attempt. An attempt it holds back waits in the
// gate's FIFO, in memory only: its `attempt_started` is already logged, so
// a restart dispatches it again like any attempt whose result was not
// logged, and it spends no retry because it never ran. First come, first
// served: an attempt arriving while others wait queues behind them even if
// the gate would let it through.
//
// Thread safety: loop thread only.
#ifndef CDE_ENGINE_ATTEMPT_GATES_H_
#define CDE_ENGINE_ATTEMPT_GATES_H_

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "engine/limits.h"

namespace cde {

struct EngineLimits;

class AttemptGates {
 public:
  struct Hooks {
    // The front of `gate` may go: the engine dispatches the attempt
    // `waiter` (which passes the gates again). False: it no longer waits
    // there (its saga finished or moved on), and leaves the FIFO.
    std::function<bool(const std::string& waiter, const std::string& gate)> go;
    // An attempt started waiting at a gate of `kind` ("rate_limit",
    // "circuit_breaker") for `key`.
    std::function<void(const std::string& kind, const std::string& key)> waited;
    std::function<void(const std::string& key, BreakerState from,
                       BreakerState to)>
        breaker_moved;
  };

  // REQUIRES: `clock` outlives the gates.
  AttemptGates(Clock& clock, const EngineLimits& limits, Hooks hooks);

  // May the attempt `waiter` (a name the engine gives each attempt it
  // dispatches: "<saga>/<step path>") go now, under rate limit `rate_key`
  // and breaker `breaker_key` ("" = none)? If not, it waits, and
  // *waiting_at names the gate; hooks.go is called when it may go.
  bool Pass(const std::string& waiter, const std::string& rate_key,
            const std::string& breaker_key, std::string* waiting_at);
  // `waiter` gives up its place at `gate` (its saga was cancelled).
  void Leave(const std::string& gate, const std::string& waiter);
  // The result of an attempt that passed breaker `key`.
  void Record(const std::string& key, bool failed);

  void SetPolicies(const EngineLimits& limits);
  std::vector<CircuitBreakers::View> Breakers() const;
  // No gate opens any more (shutdown); the FIFOs stay as they are.
  void Stop() { stopped_ = true; }
  // Closes every gate's timer; each close calls a copy of `closed`.
  void Close(const std::function<void()>& closed);

 private:
  struct Gate {
    std::deque<std::string> waiting;  // waiters, first come first served
    TimerPtr timer;                   // wakes the front
  };
  // `wait_ms`: 0 = it may go now, else how long the front must wait.
  bool Try(const std::string& gate, const std::string& saga_id,
           const std::function<int64_t()>& wait_ms);
  void Wait(const std::string& gate, const std::string& saga_id,
            int64_t wait_ms, bool at_front);
  void Open(const std::string& gate);
  void OnBreakerMoved(const std::string& key, BreakerState from,
                      BreakerState to);

  Clock& clock_;
  Hooks hooks_;
  CircuitBreakers breakers_;
  RateLimiters buckets_;
  std::map<std::string, Gate> gates_;
  bool stopped_ = false;
};

}  // namespace cde

#endif  // CDE_ENGINE_ATTEMPT_GATES_H_
