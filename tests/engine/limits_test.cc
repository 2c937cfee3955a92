// Circuit breakers and token buckets, driven by explicit clock values: the
// decisions the engine parks attempts on.
#include "engine/limits.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

namespace cde {
namespace {

using Change = std::tuple<std::string, BreakerState, BreakerState>;
constexpr BreakerState kClosed = BreakerState::kClosed;
constexpr BreakerState kOpen = BreakerState::kOpen;
constexpr BreakerState kHalfOpen = BreakerState::kHalfOpen;

// Only the consecutive-failure rule, unless a test turns the ratio on.
BreakerPolicy CountPolicy(uint32_t threshold, int64_t cool_down_ms = 1000,
                          uint32_t probes = 1) {
  BreakerPolicy p;
  p.failure_threshold = threshold;
  p.failure_ratio = 0;
  p.cool_down_ms = cool_down_ms;
  p.half_open_probes = probes;
  return p;
}

BreakerPolicy RatioPolicy(double ratio, uint32_t min_calls, int64_t window_ms) {
  BreakerPolicy p;
  p.failure_threshold = 0;
  p.failure_ratio = ratio;
  p.min_calls = min_calls;
  p.window_ms = window_ms;
  p.cool_down_ms = 1000;
  return p;
}

// Breakers that remember every transition they report.
struct Recorded {
  explicit Recorded(BreakerPolicy policy,
                    std::map<std::string, BreakerPolicy> per_key = {})
      : breakers(
            policy, std::move(per_key),
            [this](const std::string& key, BreakerState from, BreakerState to) {
              changes.emplace_back(key, from, to);
            }) {}

  // Admits and records `n` attempts at `now_ms`.
  void Fail(const std::string& key, int n, int64_t now_ms) {
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(breakers.Admit(key, now_ms), 0);
      breakers.Record(key, /*failed=*/true, now_ms);
    }
  }
  void Succeed(const std::string& key, int n, int64_t now_ms) {
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(breakers.Admit(key, now_ms), 0);
      breakers.Record(key, /*failed=*/false, now_ms);
    }
  }

  std::vector<Change> changes;
  CircuitBreakers breakers;
};

// The limits on inputs and outputs count the bytes of their compact JSON
// text: the count must be what dump() would write, invalid UTF-8 replaced.
TEST(JsonTextSizeTest, IsTheLengthOfTheCompactText) {
  const std::vector<nlohmann::json> values = {
      nullptr,
      true,
      false,
      0,
      -1234567890123,
      18446744073709551615ull,
      3.25,
      1e300,
      "",
      "plain",
      "quote \" backslash \\ newline \n tab \t bell \x07",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
      std::string("bad \xff\xfe utf-8"),
      nlohmann::json::array(),
      nlohmann::json::object(),
      nlohmann::json::parse(
          R"({"a":[1,2,{"b":null,"c":"d"}],"e":{"f":false}})"),
  };
  for (const nlohmann::json& v : values) {
    EXPECT_EQ(
        JsonTextSize(v),
        v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).size())
        << v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
}

TEST(CircuitBreakersTest, StateNames) {
  EXPECT_EQ(BreakerStateName(kClosed), "closed");
  EXPECT_EQ(BreakerStateName(kOpen), "open");
  EXPECT_EQ(BreakerStateName(kHalfOpen), "half_open");
}

TEST(CircuitBreakersTest, UnknownKeyIsClosedAndAdmits) {
  CircuitBreakers b(CountPolicy(3), {}, nullptr);
  EXPECT_EQ(b.state("svc"), kClosed);
  EXPECT_EQ(b.Admit("svc", 0), 0);
  b.Record("svc", /*failed=*/false, 0);
  EXPECT_EQ(b.state("svc"), kClosed);
}

TEST(CircuitBreakersTest, OpensAfterThresholdConsecutiveFailures) {
  Recorded r(CountPolicy(3));
  r.Fail("svc", 2, 100);
  EXPECT_EQ(r.breakers.state("svc"), kClosed);
  r.Fail("svc", 1, 100);
  EXPECT_EQ(r.breakers.state("svc"), kOpen);
  EXPECT_EQ(r.changes, (std::vector<Change>{{"svc", kClosed, kOpen}}));
}

TEST(CircuitBreakersTest, SuccessInBetweenResetsTheCount) {
  Recorded r(CountPolicy(3));
  r.Fail("svc", 2, 0);
  r.Succeed("svc", 1, 0);
  r.Fail("svc", 2, 0);
  EXPECT_EQ(r.breakers.state("svc"), kClosed);
  r.Fail("svc", 1, 0);
  EXPECT_EQ(r.breakers.state("svc"), kOpen);
}

TEST(CircuitBreakersTest, ZeroThresholdNeverOpensOnCount) {
  Recorded r(CountPolicy(0));
  r.Fail("svc", 1000, 0);
  EXPECT_EQ(r.breakers.state("svc"), kClosed);
  EXPECT_TRUE(r.changes.empty());
}

TEST(CircuitBreakersTest, RatioOpensOnlyOnceMinCallsAreInTheWindow) {
  Recorded r(RatioPolicy(0.5, 10, 10000));
  r.Succeed("svc", 4, 0);
  r.Fail("svc", 5, 0);  // 5 of 9: above the ratio, below min_calls
  EXPECT_EQ(r.breakers.state("svc"), kClosed);
  r.Fail("svc", 1, 0);  // 6 of 10
  EXPECT_EQ(r.breakers.state("svc"), kOpen);
}

TEST(CircuitBreakersTest, RatioBelowThresholdStaysClosed) {
  Recorded r(RatioPolicy(0.5, 10, 10000));
  r.Succeed("svc", 11, 0);
  r.Fail("svc", 10, 0);  // 10 of 21
  EXPECT_EQ(r.breakers.state("svc"), kClosed);
  r.Fail("svc", 1, 0);  // 11 of 22
  EXPECT_EQ(r.breakers.state("svc"), kOpen);
}

TEST(CircuitBreakersTest, OldCallsFallOutOfTheWindow) {
  Recorded r(RatioPolicy(0.5, 4, 10000));
  r.Fail("svc", 3, 0);
  // Ten seconds on, the three failures no longer count: three new ones are
  // again short of min_calls.
  r.Fail("svc", 3, 10000);
  EXPECT_EQ(r.breakers.state("svc"), kClosed);
  std::vector<CircuitBreakers::View> views = r.breakers.List(10000);
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views[0].calls_in_window, 3u);
  EXPECT_EQ(views[0].failures_in_window, 3u);
  r.Fail("svc", 1, 10500);
  EXPECT_EQ(r.breakers.state("svc"), kOpen);
}

TEST(CircuitBreakersTest, SuccessesFallingOutRaiseTheRatio) {
  Recorded r(RatioPolicy(0.5, 4, 10000));
  r.Succeed("svc", 10, 0);
  r.Fail("svc", 4, 5000);  // 4 of 14
  EXPECT_EQ(r.breakers.state("svc"), kClosed);
  r.Fail("svc", 1, 12000);  // the successes are gone: 5 of 5
  EXPECT_EQ(r.breakers.state("svc"), kOpen);
}

TEST(CircuitBreakersTest, AdmitWhileOpenReturnsHalfOpenTimeAndAdmitsNothing) {
  Recorded r(CountPolicy(1, /*cool_down_ms=*/1000));
  r.Fail("svc", 1, 500);
  EXPECT_EQ(r.breakers.Admit("svc", 500), 1500);
  EXPECT_EQ(r.breakers.Admit("svc", 1499), 1500);
  EXPECT_EQ(r.breakers.state("svc"), kOpen);
  EXPECT_EQ(r.changes.size(), 1u);
}

TEST(CircuitBreakersTest, LateResultWhileOpenChangesNothing) {
  Recorded r(CountPolicy(1, /*cool_down_ms=*/1000));
  r.Fail("svc", 1, 0);
  r.breakers.Record("svc", /*failed=*/false, 100);
  r.breakers.Record("svc", /*failed=*/true, 200);
  EXPECT_EQ(r.breakers.state("svc"), kOpen);
  EXPECT_EQ(r.breakers.Admit("svc", 200), 1000);
  EXPECT_EQ(r.breakers.List(200)[0].opened_total, 1u);
  EXPECT_EQ(r.changes.size(), 1u);
}

TEST(CircuitBreakersTest, HalfOpenAdmitsExactlyKProbesThenTheGiveUpTime) {
  Recorded r(CountPolicy(1, /*cool_down_ms=*/1000, /*probes=*/2));
  r.Fail("svc", 1, 0);
  EXPECT_EQ(r.breakers.Admit("svc", 1000), 0);
  EXPECT_EQ(r.breakers.state("svc"), kHalfOpen);
  EXPECT_EQ(r.breakers.Admit("svc", 1200), 0);
  EXPECT_EQ(r.breakers.Admit("svc", 1300), 2000);
  EXPECT_EQ(r.breakers.Admit("svc", 1999), 2000);
}

TEST(CircuitBreakersTest, KProbeSuccessesClose) {
  Recorded r(CountPolicy(1, /*cool_down_ms=*/1000, /*probes=*/2));
  r.Fail("svc", 1, 0);
  ASSERT_EQ(r.breakers.Admit("svc", 1000), 0);
  ASSERT_EQ(r.breakers.Admit("svc", 1000), 0);
  r.breakers.Record("svc", /*failed=*/false, 1100);
  EXPECT_EQ(r.breakers.state("svc"), kHalfOpen);
  // One success in and one probe out: no third probe.
  EXPECT_EQ(r.breakers.Admit("svc", 1100), 2000);
  r.breakers.Record("svc", /*failed=*/false, 1200);
  EXPECT_EQ(r.breakers.state("svc"), kClosed);
  EXPECT_EQ(r.breakers.Admit("svc", 1200), 0);
  std::vector<CircuitBreakers::View> views = r.breakers.List(1200);
  EXPECT_EQ(views[0].consecutive_failures, 0u);
  EXPECT_EQ(views[0].calls_in_window, 0u);
}

TEST(CircuitBreakersTest, ProbeFailureReopensWithAFreshCoolDown) {
  Recorded r(CountPolicy(1, /*cool_down_ms=*/1000, /*probes=*/2));
  r.Fail("svc", 1, 0);
  ASSERT_EQ(r.breakers.Admit("svc", 1000), 0);
  ASSERT_EQ(r.breakers.Admit("svc", 1000), 0);
  r.breakers.Record("svc", /*failed=*/false, 1100);
  r.breakers.Record("svc", /*failed=*/true, 1300);
  EXPECT_EQ(r.breakers.state("svc"), kOpen);
  EXPECT_EQ(r.breakers.Admit("svc", 1300), 2300);
  EXPECT_EQ(r.breakers.List(1300)[0].half_open_at_ms, 2300);
  EXPECT_EQ(r.breakers.List(1300)[0].opened_total, 2u);
}

TEST(CircuitBreakersTest, LostProbeIsGivenUpOnAfterCoolDown) {
  Recorded r(CountPolicy(1, /*cool_down_ms=*/1000));
  r.Fail("svc", 1, 0);
  ASSERT_EQ(r.breakers.Admit("svc", 1000), 0);  // never recorded
  EXPECT_EQ(r.breakers.Admit("svc", 1500), 2000);
  EXPECT_EQ(r.breakers.Admit("svc", 2000), 0);  // the replacement probe
  EXPECT_EQ(r.breakers.Admit("svc", 2000), 3000);
  r.breakers.Record("svc", /*failed=*/false, 2100);
  EXPECT_EQ(r.breakers.state("svc"), kClosed);
}

TEST(CircuitBreakersTest, ResultWithNoProbeOutIsIgnoredWhileHalfOpen) {
  Recorded r(CountPolicy(1, /*cool_down_ms=*/1000, /*probes=*/2));
  r.Fail("svc", 1, 0);
  ASSERT_EQ(r.breakers.Admit("svc", 1000), 0);
  r.breakers.Record("svc", /*failed=*/false, 1100);
  // A stale failure (from an attempt admitted while closed) with no probe
  // out does not reopen it.
  r.breakers.Record("svc", /*failed=*/true, 1200);
  EXPECT_EQ(r.breakers.state("svc"), kHalfOpen);
  ASSERT_EQ(r.breakers.Admit("svc", 1300), 0);
  r.breakers.Record("svc", /*failed=*/false, 1400);
  EXPECT_EQ(r.breakers.state("svc"), kClosed);
}

TEST(CircuitBreakersTest, TransitionsReportedInOrderExactlyOnce) {
  Recorded r(CountPolicy(1, /*cool_down_ms=*/1000));
  r.Fail("svc", 1, 0);
  r.breakers.Admit("svc", 500);
  ASSERT_EQ(r.breakers.Admit("svc", 1000), 0);
  r.breakers.Record("svc", /*failed=*/true, 1100);
  r.breakers.Admit("svc", 1500);
  ASSERT_EQ(r.breakers.Admit("svc", 2100), 0);
  r.breakers.Admit("svc", 2200);
  r.breakers.Record("svc", /*failed=*/false, 2300);
  r.breakers.Record("svc", /*failed=*/false, 2400);
  r.breakers.Admit("svc", 2500);
  EXPECT_EQ(r.changes, (std::vector<Change>{{"svc", kClosed, kOpen},
                                            {"svc", kOpen, kHalfOpen},
                                            {"svc", kHalfOpen, kOpen},
                                            {"svc", kOpen, kHalfOpen},
                                            {"svc", kHalfOpen, kClosed}}));
}

TEST(CircuitBreakersTest, PerKeyPolicyOverridesDefault) {
  Recorded r(CountPolicy(5), {{"fragile", CountPolicy(1, 200)}});
  r.Fail("fragile", 1, 0);
  r.Fail("sturdy", 4, 0);
  EXPECT_EQ(r.breakers.state("fragile"), kOpen);
  EXPECT_EQ(r.breakers.state("sturdy"), kClosed);
  EXPECT_EQ(r.breakers.Admit("fragile", 0), 200);
}

TEST(CircuitBreakersTest, SetPoliciesKeepsState) {
  Recorded r(CountPolicy(3, /*cool_down_ms=*/1000));
  r.Fail("a", 3, 0);
  r.Fail("b", 2, 0);
  r.breakers.SetPolicies(CountPolicy(10, /*cool_down_ms=*/5000), {});
  EXPECT_EQ(r.breakers.state("a"), kOpen);
  // The new cool-down applies to the open breaker from its next call.
  EXPECT_EQ(r.breakers.Admit("a", 1000), 5000);
  r.Fail("b", 7, 0);
  EXPECT_EQ(r.breakers.state("b"), kClosed);
  r.Fail("b", 1, 0);
  EXPECT_EQ(r.breakers.state("b"), kOpen);
  EXPECT_EQ(r.changes.size(), 2u);
}

TEST(CircuitBreakersTest, ListShowsEveryBreakerByKey) {
  BreakerPolicy p = CountPolicy(2, /*cool_down_ms=*/1000);
  Recorded r(p);
  r.Fail("zeta", 1, 0);
  r.Succeed("zeta", 1, 0);
  r.Fail("zeta", 1, 0);
  r.Fail("alpha", 2, 100);
  std::vector<CircuitBreakers::View> views = r.breakers.List(100);
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0].key, "alpha");
  EXPECT_EQ(views[0].state, kOpen);
  EXPECT_EQ(views[0].consecutive_failures, 2u);
  EXPECT_EQ(views[0].calls_in_window, 2u);
  EXPECT_EQ(views[0].failures_in_window, 2u);
  EXPECT_EQ(views[0].half_open_at_ms, 1100);
  EXPECT_EQ(views[0].opened_total, 1u);
  EXPECT_EQ(views[1].key, "zeta");
  EXPECT_EQ(views[1].state, kClosed);
  EXPECT_EQ(views[1].consecutive_failures, 1u);
  EXPECT_EQ(views[1].calls_in_window, 3u);
  EXPECT_EQ(views[1].failures_in_window, 2u);
  EXPECT_EQ(views[1].half_open_at_ms, 0);
  EXPECT_EQ(views[1].opened_total, 0u);
}

// ---------------------------------------------------------------------------
// Token buckets.

RatePolicy Rate(double per_sec, uint32_t burst) { return {per_sec, burst}; }

TEST(RateLimitersTest, BurstThenRate) {
  RateLimiters r(Rate(10, 3));
  EXPECT_EQ(r.TryTake("k", 0), 0);
  EXPECT_EQ(r.TryTake("k", 0), 0);
  EXPECT_EQ(r.TryTake("k", 0), 0);
  EXPECT_EQ(r.TryTake("k", 0), 100);
  EXPECT_EQ(r.TryTake("k", 100), 0);
  EXPECT_EQ(r.TryTake("k", 100), 100);
}

TEST(RateLimitersTest, WaitIsTimeUntilOneToken) {
  RateLimiters r(Rate(10, 1));
  ASSERT_EQ(r.TryTake("k", 1000), 0);
  EXPECT_EQ(r.TryTake("k", 1000), 100);
  EXPECT_EQ(r.TryTake("k", 1040), 60);  // a refused take costs nothing
  EXPECT_EQ(r.TryTake("k", 1099), 1);
  EXPECT_EQ(r.TryTake("k", 1100), 0);
}

TEST(RateLimitersTest, WaitRoundsUpAndIsEnough) {
  RateLimiters r(Rate(3, 1));
  ASSERT_EQ(r.TryTake("k", 0), 0);
  const int64_t wait = r.TryTake("k", 0);
  EXPECT_EQ(wait, 334);
  EXPECT_EQ(r.TryTake("k", wait), 0);
}

TEST(RateLimitersTest, RefillIsCappedAtBurst) {
  RateLimiters r(Rate(10, 2));
  ASSERT_EQ(r.TryTake("k", 0), 0);
  ASSERT_EQ(r.TryTake("k", 0), 0);
  // An hour idle still only holds two tokens.
  EXPECT_EQ(r.TryTake("k", 3600000), 0);
  EXPECT_EQ(r.TryTake("k", 3600000), 0);
  EXPECT_EQ(r.TryTake("k", 3600000), 100);
}

TEST(RateLimitersTest, UnlimitedAlwaysAdmitsAndKeepsNoState) {
  RateLimiters r;
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(r.TryTake("k", 0), 0);
  EXPECT_EQ(r.size(), 0u);
}

TEST(RateLimitersTest, PerKeyPolicyOverridesDefault) {
  RateLimiters r(Rate(0, 1), {{"slow", Rate(1, 1)}});
  EXPECT_EQ(r.TryTake("slow", 0), 0);
  EXPECT_EQ(r.TryTake("slow", 0), 1000);
  EXPECT_EQ(r.TryTake("other", 0), 0);
  EXPECT_EQ(r.TryTake("other", 0), 0);
  EXPECT_EQ(r.size(), 1u);
}

TEST(RateLimitersTest, SetPoliciesCapsTokensAtNewBurst) {
  RateLimiters r(Rate(10, 5));
  ASSERT_EQ(r.TryTake("k", 0), 0);  // 4 left
  r.SetPolicies(Rate(10, 2), {});
  EXPECT_EQ(r.TryTake("k", 0), 0);
  EXPECT_EQ(r.TryTake("k", 0), 0);
  EXPECT_EQ(r.TryTake("k", 0), 100);
}

TEST(RateLimitersTest, SetPoliciesKeepsTokensBelowNewBurst) {
  RateLimiters r(Rate(10, 2));
  ASSERT_EQ(r.TryTake("k", 0), 0);
  ASSERT_EQ(r.TryTake("k", 0), 0);
  r.SetPolicies(Rate(10, 5), {});
  EXPECT_EQ(r.TryTake("k", 0), 100);  // not refilled to the new burst
}

TEST(RateLimitersTest, SetPoliciesToUnlimitedDropsBuckets) {
  RateLimiters r(Rate(10, 1));
  ASSERT_EQ(r.TryTake("k", 0), 0);
  r.SetPolicies(Rate(0, 1), {});
  EXPECT_EQ(r.size(), 0u);
  EXPECT_EQ(r.TryTake("k", 0), 0);
}

TEST(RateLimitersTest, PruneDropsFullDefaultBucketsOnly) {
  RateLimiters r(Rate(10, 1), {{"own", Rate(10, 1)}});
  ASSERT_EQ(r.TryTake("idle", 0), 0);
  ASSERT_EQ(r.TryTake("busy", 50), 0);
  ASSERT_EQ(r.TryTake("own", 0), 0);
  ASSERT_EQ(r.size(), 3u);
  r.Prune(100);  // "idle" and "own" are full again, "busy" is not
  EXPECT_EQ(r.size(), 2u);
  r.Prune(150);
  EXPECT_EQ(r.size(), 1u);  // "own" has a policy of its own
  // A pruned bucket comes back full.
  EXPECT_EQ(r.TryTake("idle", 150), 0);
  EXPECT_EQ(r.TryTake("idle", 150), 100);
}

}  // namespace
}  // namespace cde
