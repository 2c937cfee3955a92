#include "engine/limits.h"

#include <algorithm>
#include <cmath>

namespace cde {

namespace {

// Counts what the serializer would write, instead of writing it: every
// step's output and every saga's input is measured, most of them small.
class CountingOutput final
    : public nlohmann::detail::output_adapter_protocol<char> {
 public:
  explicit CountingOutput(size_t* count) : count_(count) {}
  void write_character(char) override { ++*count_; }
  void write_characters(const char*, std::size_t length) override {
    *count_ += length;
  }

 private:
  size_t* count_;
};

}  // namespace

size_t JsonTextSize(const nlohmann::json& value) {
  if (value.is_null()) return 4;
  if (value.is_boolean()) return value.get<bool>() ? 4 : 5;
  size_t count = 0;
  nlohmann::detail::serializer<nlohmann::json> serializer(
      std::make_shared<CountingOutput>(&count), ' ',
      nlohmann::json::error_handler_t::replace);
  serializer.dump(value, /*pretty_print=*/false, /*ensure_ascii=*/false,
                  /*indent_step=*/0);
  return count;
}

Status CheckJsonSize(const char* what, const nlohmann::json& value,
                     uint64_t limit, const char* key) {
  return CheckJsonSize(what, JsonTextSize(value), limit, key);
}

Status CheckJsonSize(const char* what, size_t size, uint64_t limit,
                     const char* key) {
  if (size <= limit) return Status::OK();
  return Status::InvalidArgument(std::string(what) + " is " +
                                 std::to_string(size) +
                                 " bytes of JSON, more than " + key +
                                 " allows (" + std::to_string(limit) + ")");
}

namespace {

// Slack for floating-point refill: a bucket told to wait N ms must have its
// token at now + N even if tokens come out as 0.999999999.
constexpr double kTokenEpsilon = 1e-9;

// A half-open breaker with no probe slot could never close again.
uint32_t ProbeCount(const BreakerPolicy& p) {
  return std::max<uint32_t>(1, p.half_open_probes);
}

}  // namespace

std::string_view BreakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

CircuitBreakers::CircuitBreakers(BreakerPolicy default_policy,
                                 std::map<std::string, BreakerPolicy> per_key,
                                 OnTransition on_transition)
    : default_policy_(default_policy),
      per_key_(std::move(per_key)),
      on_transition_(std::move(on_transition)) {}

void CircuitBreakers::SetPolicies(
    BreakerPolicy default_policy,
    std::map<std::string, BreakerPolicy> per_key) {
  default_policy_ = default_policy;
  per_key_ = std::move(per_key);
}

int64_t CircuitBreakers::Admit(const std::string& key, int64_t now_ms) {
  Breaker& b = Get(key);
  if (b.state == BreakerState::kClosed) return 0;
  const BreakerPolicy& p = PolicyFor(key);
  if (b.state == BreakerState::kOpen) {
    const int64_t half_open_at = b.opened_ms + p.cool_down_ms;
    if (now_ms < half_open_at) return half_open_at;
    Transition(key, b, BreakerState::kHalfOpen, now_ms);
  }
  // A probe whose result never comes (its saga was cancelled) would
  // otherwise hold its slot forever.
  auto lost = b.probes.begin();
  while (lost != b.probes.end() && *lost + p.cool_down_ms <= now_ms) ++lost;
  b.probes.erase(b.probes.begin(), lost);
  // Successes already in count against the probes still needed, so a
  // recovering service sees exactly half_open_probes probes.
  if (b.probe_successes + b.probes.size() < ProbeCount(p)) {
    b.probes.push_back(now_ms);
    return 0;
  }
  return b.probes.front() + p.cool_down_ms;
}

void CircuitBreakers::Record(const std::string& key, bool failed,
                             int64_t now_ms) {
  Breaker& b = Get(key);
  const BreakerPolicy& p = PolicyFor(key);
  switch (b.state) {
    case BreakerState::kOpen:
      // A late result of an attempt admitted before the breaker opened: the
      // cool-down stands whatever it says.
      return;
    case BreakerState::kHalfOpen:
      // With no probe out this is a stale result (or a probe already given
      // up on); the next probe decides instead.
      if (b.probes.empty()) return;
      b.probes.erase(b.probes.begin());
      if (failed) {
        Transition(key, b, BreakerState::kOpen, now_ms);
      } else if (++b.probe_successes >= ProbeCount(p)) {
        Transition(key, b, BreakerState::kClosed, now_ms);
      }
      return;
    case BreakerState::kClosed:
      break;
  }
  AddToWindow(b, p, failed, now_ms);
  if (!failed) {
    b.consecutive_failures = 0;
    return;
  }
  ++b.consecutive_failures;
  bool open =
      p.failure_threshold > 0 && b.consecutive_failures >= p.failure_threshold;
  if (!open && p.failure_ratio > 0 && p.window_ms > 0) {
    uint64_t calls = 0;
    uint64_t failures = 0;
    CountWindow(b, now_ms, &calls, &failures);
    open = calls >= std::max<uint64_t>(1, p.min_calls) &&
           static_cast<double>(failures) / static_cast<double>(calls) >=
               p.failure_ratio;
  }
  if (open) Transition(key, b, BreakerState::kOpen, now_ms);
}

std::vector<CircuitBreakers::View> CircuitBreakers::List(int64_t now_ms) const {
  std::vector<View> views;
  views.reserve(breakers_.size());
  for (const auto& [key, b] : breakers_) {
    View& v = views.emplace_back();
    v.key = key;
    v.state = b.state;
    v.consecutive_failures = b.consecutive_failures;
    CountWindow(b, now_ms, &v.calls_in_window, &v.failures_in_window);
    if (b.state == BreakerState::kOpen) {
      v.half_open_at_ms = b.opened_ms + PolicyFor(key).cool_down_ms;
    }
    v.opened_total = b.opened_total;
  }
  return views;
}

BreakerState CircuitBreakers::state(const std::string& key) const {
  auto it = breakers_.find(key);
  return it == breakers_.end() ? BreakerState::kClosed : it->second.state;
}

void CircuitBreakers::AddToWindow(Breaker& b, const BreakerPolicy& p,
                                  bool failed, int64_t now_ms) {
  const int64_t slot_ms = std::max<int64_t>(1, p.window_ms / kWindowSlots);
  // Slots filled under another window_ms (a reload) cannot be mapped onto
  // the new width; start the window afresh.
  if (slot_ms != b.slot_ms) {
    b.window.fill(Slot{});
    b.slot_ms = slot_ms;
  }
  const int64_t epoch = now_ms / slot_ms;
  Slot& s = b.window[((epoch % kWindowSlots) + kWindowSlots) % kWindowSlots];
  if (s.epoch != epoch) s = Slot{epoch, 0, 0};
  ++s.calls;
  if (failed) ++s.failures;
}

void CircuitBreakers::CountWindow(const Breaker& b, int64_t now_ms,
                                  uint64_t* calls, uint64_t* failures) {
  *calls = 0;
  *failures = 0;
  if (b.slot_ms <= 0) return;
  const int64_t epoch = now_ms / b.slot_ms;
  for (const Slot& s : b.window) {
    if (s.epoch > epoch - kWindowSlots && s.epoch <= epoch) {
      *calls += s.calls;
      *failures += s.failures;
    }
  }
}

CircuitBreakers::Breaker& CircuitBreakers::Get(const std::string& key) {
  return breakers_.try_emplace(key).first->second;
}

const BreakerPolicy& CircuitBreakers::PolicyFor(const std::string& key) const {
  auto it = per_key_.find(key);
  return it == per_key_.end() ? default_policy_ : it->second;
}

void CircuitBreakers::Transition(const std::string& key, Breaker& b,
                                 BreakerState to, int64_t now_ms) {
  const BreakerState from = b.state;
  if (from == to) return;
  b.state = to;
  b.probes.clear();  // keeps its capacity: no allocation on the next probe
  b.probe_successes = 0;
  if (to == BreakerState::kOpen) {
    b.opened_ms = now_ms;
    ++b.opened_total;
  } else if (to == BreakerState::kClosed) {
    // The failures that opened it must not count against the recovered
    // service.
    b.consecutive_failures = 0;
    b.window.fill(Slot{});
  }
  // Last, so that a callback reading the breakers sees the new state.
  if (on_transition_) on_transition_(key, from, to);
}

RateLimiters::RateLimiters(RatePolicy default_policy,
                           std::map<std::string, RatePolicy> per_key)
    : default_policy_(default_policy), per_key_(std::move(per_key)) {}

void RateLimiters::SetPolicies(RatePolicy default_policy,
                               std::map<std::string, RatePolicy> per_key) {
  default_policy_ = default_policy;
  per_key_ = std::move(per_key);
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    const RatePolicy& p = PolicyFor(it->first);
    if (p.unlimited()) {
      it = buckets_.erase(it);
      continue;
    }
    Bucket& b = it->second;
    b.tokens = std::min(b.tokens, static_cast<double>(std::max(1u, p.burst)));
    ++it;
  }
}

int64_t RateLimiters::TryTake(const std::string& key, int64_t now_ms) {
  const RatePolicy& p = PolicyFor(key);
  if (p.unlimited()) return 0;
  auto [it, inserted] = buckets_.try_emplace(key);
  Bucket& b = it->second;
  if (inserted) {
    b.tokens = std::max(1u, p.burst);
    b.refilled_ms = now_ms;
  } else {
    Refill(b, p, now_ms);
  }
  if (b.tokens >= 1 - kTokenEpsilon) {
    b.tokens = std::max(0.0, b.tokens - 1);
    return 0;
  }
  const double wait_ms = (1 - b.tokens) * 1000 / p.rate_per_sec;
  return std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(wait_ms - kTokenEpsilon)));
}

void RateLimiters::Prune(int64_t now_ms) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    // A bucket with its own policy is configuration, not a passing session.
    if (per_key_.count(it->first) > 0) {
      ++it;
      continue;
    }
    // A full bucket is what a new one would start as: dropping it loses
    // nothing.
    Refill(it->second, default_policy_, now_ms);
    if (default_policy_.unlimited() ||
        it->second.tokens >=
            std::max(1u, default_policy_.burst) - kTokenEpsilon) {
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
}

const RatePolicy& RateLimiters::PolicyFor(const std::string& key) const {
  auto it = per_key_.find(key);
  return it == per_key_.end() ? default_policy_ : it->second;
}

void RateLimiters::Refill(Bucket& b, const RatePolicy& p,
                          int64_t now_ms) const {
  if (now_ms <= b.refilled_ms) return;
  const double burst = std::max(1u, p.burst);
  b.tokens =
      std::min(burst, b.tokens + static_cast<double>(now_ms - b.refilled_ms) *
                                     p.rate_per_sec / 1000);
  b.refilled_ms = now_ms;
}

}  // namespace cde
