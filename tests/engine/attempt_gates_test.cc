// AttemptGates on a ManualClock: attempts wait their turn at a rate limit
// and an open breaker, first come first served, and go when the clock says;
// a saga that left or moved on is dropped; a stopped gate opens no more.
#include "engine/attempt_gates.h"

#include <gtest/gtest.h>

#include <set>

#include "engine/engine.h"

namespace cde {
namespace {

class AttemptGatesTest : public ::testing::Test {
 protected:
  AttemptGatesTest() {
    limits_.outbound["api"] = {.rate_per_sec = 10, .burst = 1};
    limits_.breaker_default = {.failure_threshold = 1,
                               .failure_ratio = 0,
                               .cool_down_ms = 1000,
                               .half_open_probes = 1};
  }
  void TearDown() override {
    if (gates_) gates_->Close([] {});
  }
  void Make() {
    gates_ = std::make_unique<AttemptGates>(
        clock_, limits_,
        AttemptGates::Hooks{
            .go =
                [this](const std::string& id, const std::string& gate) {
                  if (gone_.count(id) != 0) return false;
                  std::string at;
                  // As the engine does: the attempt passes the gates again.
                  if (gates_->Pass(id, rate_, breaker_, &at))
                    went_.push_back(id);
                  (void)gate;
                  return true;
                },
            .waited = [this](const std::string& kind,
                             const std::string&) { waits_.push_back(kind); },
            .breaker_moved = [](const std::string&, BreakerState,
                                BreakerState) {}});
  }
  bool Pass(const std::string& id, std::string* at) {
    return gates_->Pass(id, rate_, breaker_, at);
  }

  ManualClock clock_{0};
  EngineLimits limits_;
  std::unique_ptr<AttemptGates> gates_;
  std::string rate_, breaker_;
  std::vector<std::string> went_, waits_;
  std::set<std::string> gone_;
};

TEST_F(AttemptGatesTest, ARateLimitLetsOnePerTokenGoInArrivalOrder) {
  rate_ = "api";
  Make();
  std::string at;
  EXPECT_TRUE(Pass("a", &at));
  EXPECT_EQ(at, "");
  EXPECT_FALSE(Pass("b", &at));
  EXPECT_EQ(at, "rate_limit:api");
  EXPECT_FALSE(Pass("c", &at));
  EXPECT_EQ(waits_, (std::vector<std::string>{"rate_limit", "rate_limit"}));
  clock_.Advance(99);
  EXPECT_TRUE(went_.empty());
  clock_.Advance(1);
  EXPECT_EQ(went_, std::vector<std::string>{"b"});
  clock_.Advance(100);
  EXPECT_EQ(went_, (std::vector<std::string>{"b", "c"}));
}

TEST_F(AttemptGatesTest, WhoLeftOrMovedOnIsDroppedAndTheNextGoes) {
  rate_ = "api";
  Make();
  std::string at;
  ASSERT_TRUE(Pass("a", &at));
  ASSERT_FALSE(Pass("b", &at));
  ASSERT_FALSE(Pass("c", &at));
  ASSERT_FALSE(Pass("d", &at));
  gates_->Leave(at, "b");  // cancelled
  gone_.insert("c");       // finished meanwhile
  clock_.Advance(100);
  EXPECT_EQ(went_, std::vector<std::string>{"d"});
}

TEST_F(AttemptGatesTest, AnOpenBreakerHoldsAttemptsUntilItsCoolDownEnds) {
  breaker_ = "svc";
  Make();
  std::string at;
  ASSERT_TRUE(Pass("a", &at));
  gates_->Record("svc", /*failed=*/true);  // opens it
  EXPECT_FALSE(Pass("b", &at));
  EXPECT_EQ(at, "circuit_breaker:svc");
  clock_.Advance(999);
  EXPECT_TRUE(went_.empty());
  clock_.Advance(1);
  EXPECT_EQ(went_, std::vector<std::string>{"b"}) << "the half-open probe";
  ASSERT_EQ(gates_->Breakers().size(), 1u);
  EXPECT_EQ(gates_->Breakers()[0].state, BreakerState::kHalfOpen);
}

TEST_F(AttemptGatesTest, AStoppedGateOpensNoMore) {
  rate_ = "api";
  Make();
  std::string at;
  ASSERT_TRUE(Pass("a", &at));
  ASSERT_FALSE(Pass("b", &at));
  gates_->Stop();
  clock_.Advance(10000);
  EXPECT_TRUE(went_.empty());
}

}  // namespace
}  // namespace cde
