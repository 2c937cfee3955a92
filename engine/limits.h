// Admission limits for outbound work: circuit breakers and token buckets;
// and the check of a JSON value against a size limit.
//
// Both are plain state machines over a clock the caller passes in
// (milliseconds, monotonic: the engine's Clock::MonotonicMs). They decide; they
// do not wait. The engine asks before it dispatches an attempt, and when the
// answer is "not yet" it parks the attempt in a per-key FIFO until the time
// it was given, so nothing fails for being limited and no retry attempt is
// spent on it. The API layer uses RateLimiters the same way for inbound
// calls (per bearer token or per session).
//
// Thread safety: none; each instance belongs to one thread (the loop).
#ifndef CDE_ENGINE_LIMITS_H_
#define CDE_ENGINE_LIMITS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "storage/status.h"

namespace cde {

// OK if `value`, as compact JSON text, is at most `limit` bytes; else
// InvalidArgument naming `what` and the setting `key`. Invalid UTF-8 is
// counted as its replacement, as the store would keep it.
Status CheckJsonSize(const char* what, const nlohmann::json& value,
                     uint64_t limit, const char* key);
// The length of `value` as compact JSON text: what CheckJsonSize measures.
size_t JsonTextSize(const nlohmann::json& value);
// The same check of a size already measured.
Status CheckJsonSize(const char* what, size_t size, uint64_t limit,
                     const char* key);

// When a breaker opens and how it recovers. docs/configuration.md
// ("circuit_breakers") documents each field and its default.
struct BreakerPolicy {
  // Consecutive failures that open a closed breaker; 0 = never on this rule.
  uint32_t failure_threshold = 5;
  // Open a closed breaker when failures / calls over the last `window_ms`
  // reach this ratio, once at least `min_calls` calls were recorded in that
  // window; 0 = never on this rule.
  double failure_ratio = 0.5;
  uint32_t min_calls = 20;
  int64_t window_ms = 60000;
  // Open -> half-open after this long.
  int64_t cool_down_ms = 30000;
  // Half-open lets this many probe attempts through. Each success closes
  // the breaker once `half_open_probes` successes are in; any failure opens
  // it again for another cool-down.
  uint32_t half_open_probes = 1;

  friend bool operator==(const BreakerPolicy&, const BreakerPolicy&) = default;
};

enum class BreakerState { kClosed, kOpen, kHalfOpen };
// "closed", "open", "half_open".
std::string_view BreakerStateName(BreakerState state);

// Every breaker of the engine, one per key, created closed on first use.
class CircuitBreakers {
 public:
  using OnTransition = std::function<void(const std::string& key,
                                          BreakerState from, BreakerState to)>;

  // `on_transition` (may be null) is called for every state change, from
  // inside Admit or Record.
  CircuitBreakers(BreakerPolicy default_policy,
                  std::map<std::string, BreakerPolicy> per_key,
                  OnTransition on_transition);

  // Replaces the policies (a configuration reload). Breakers keep their
  // state; the new thresholds apply from their next call.
  void SetPolicies(BreakerPolicy default_policy,
                   std::map<std::string, BreakerPolicy> per_key);

  // May an attempt under `key` start at `now_ms`? 0 = yes (in half-open it
  // is then one of the probes); otherwise the time (> now_ms) to ask again:
  // the end of the cool-down while open, or while half-open with every
  // probe out, the time the oldest probe is given up on (a probe whose
  // result never comes, e.g. its saga was cancelled, must not wedge the
  // breaker; it is given up on after cool_down_ms).
  int64_t Admit(const std::string& key, int64_t now_ms);

  // The outcome of an attempt that Admit let through.
  void Record(const std::string& key, bool failed, int64_t now_ms);

  struct View {
    std::string key;
    BreakerState state = BreakerState::kClosed;
    uint32_t consecutive_failures = 0;
    uint64_t calls_in_window = 0;
    uint64_t failures_in_window = 0;
    int64_t half_open_at_ms = 0;  // when open: when it half-opens
    uint64_t opened_total = 0;    // times it has opened
  };
  // Every breaker that exists, by key.
  std::vector<View> List(int64_t now_ms) const;
  BreakerState state(const std::string& key) const;  // kClosed if unknown

 private:
  // The ratio rule's window is kWindowSlots fixed slots of window_ms /
  // kWindowSlots each, so a breaker's memory does not grow with the call
  // rate; the price is that a call counts for between 9/10 of window_ms and
  // all of it.
  static constexpr int64_t kWindowSlots = 10;
  struct Slot {
    int64_t epoch = -1;  // now_ms / slot width of the calls it holds
    uint32_t calls = 0;
    uint32_t failures = 0;
  };
  // Defined here, not in the .cc: the implicit destructor of breakers_ is
  // instantiated wherever a CircuitBreakers is destroyed.
  struct Breaker {
    BreakerState state = BreakerState::kClosed;
    uint32_t consecutive_failures = 0;
    uint64_t opened_total = 0;
    int64_t opened_ms = 0;
    int64_t slot_ms = 0;  // the slot width `window` was filled with
    std::array<Slot, kWindowSlots> window{};
    uint32_t probe_successes = 0;
    // Admit times of the probes still out, oldest first.
    std::vector<int64_t> probes;
  };
  static void AddToWindow(Breaker& b, const BreakerPolicy& p, bool failed,
                          int64_t now_ms);
  static void CountWindow(const Breaker& b, int64_t now_ms, uint64_t* calls,
                          uint64_t* failures);
  Breaker& Get(const std::string& key);
  const BreakerPolicy& PolicyFor(const std::string& key) const;
  void Transition(const std::string& key, Breaker& b, BreakerState to,
                  int64_t now_ms);

  BreakerPolicy default_policy_;
  std::map<std::string, BreakerPolicy> per_key_;
  OnTransition on_transition_;
  std::map<std::string, Breaker> breakers_;
};

// A token bucket's rate. rate_per_sec == 0 means unlimited.
struct RatePolicy {
  double rate_per_sec = 0;  // tokens added per second
  uint32_t burst = 1;       // bucket size (>= 1)

  bool unlimited() const { return rate_per_sec <= 0; }
  friend bool operator==(const RatePolicy&, const RatePolicy&) = default;
};

// Token buckets by key. A key without its own policy uses the default one
// (unlimited unless set). A bucket starts full.
class RateLimiters {
 public:
  explicit RateLimiters(RatePolicy default_policy = {},
                        std::map<std::string, RatePolicy> per_key = {});

  // A reload: buckets keep their tokens, capped at the new burst.
  void SetPolicies(RatePolicy default_policy,
                   std::map<std::string, RatePolicy> per_key);

  // Takes a token for `key` if one is there: returns 0. Otherwise takes
  // nothing and returns how many ms until one will be (>= 1).
  int64_t TryTake(const std::string& key, int64_t now_ms);

  // Drops the state of buckets that are full again and have no policy of
  // their own (per-session keys come and go). Call now and then.
  void Prune(int64_t now_ms);
  size_t size() const { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens = 0;
    int64_t refilled_ms = 0;
  };
  const RatePolicy& PolicyFor(const std::string& key) const;
  void Refill(Bucket& b, const RatePolicy& p, int64_t now_ms) const;

  RatePolicy default_policy_;
  std::map<std::string, RatePolicy> per_key_;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace cde

#endif  // CDE_ENGINE_LIMITS_H_
