// WorkGate: Close calls back exactly once, when the last holder has left;
// copies of a holder hold too; a gate within another holds the outer one.
#include "engine/work_gate.h"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

namespace cde {
namespace {

TEST(WorkGateTest, CloseOfAnEmptyGateCallsBackAtOnce) {
  WorkGate gate;
  int drained = 0;
  gate.Close([&] { ++drained; });
  EXPECT_EQ(drained, 1);
  EXPECT_TRUE(gate.drained());
}

TEST(WorkGateTest, CloseCallsBackWhenTheLastHolderLeavesAndOnlyThen) {
  WorkGate gate;
  int drained = 0;
  WorkGate::Holder a = gate.Enter();
  WorkGate::Holder b = gate.Enter();
  gate.Close([&] { ++drained; });
  EXPECT_TRUE(gate.closed());
  EXPECT_EQ(drained, 0);
  a.Leave();
  a.Leave();  // a second leave changes nothing
  EXPECT_EQ(drained, 0);
  EXPECT_EQ(gate.count(), 1u);
  { WorkGate::Holder gone = std::move(b); }
  EXPECT_EQ(drained, 1);
  EXPECT_EQ(gate.count(), 0u);
}

TEST(WorkGateTest, WorkThatContinuesWorkInsideGetsInAfterClose) {
  WorkGate gate;
  int drained = 0;
  WorkGate::Holder attempt = gate.Enter();
  gate.Close([&] { ++drained; });
  // The attempt's result commits: the commit enters before the attempt
  // leaves, so the gate does not drain in between.
  WorkGate::Holder commit = gate.Enter();
  attempt.Leave();
  EXPECT_EQ(drained, 0);
  commit.Leave();
  EXPECT_EQ(drained, 1);
}

TEST(WorkGateTest, EveryCopyOfAHolderHoldsUntilItLeaves) {
  WorkGate gate;
  int drained = 0;
  std::vector<std::function<void()>> closes;
  {
    std::function<void()> closed = [hold = gate.Enter()]() mutable {
      hold.Leave();
    };
    for (int i = 0; i < 3; ++i) closes.push_back(closed);
    EXPECT_EQ(gate.count(), 4u);
  }
  gate.Close([&] { ++drained; });
  closes[0]();
  closes[2]();
  EXPECT_EQ(drained, 0);
  closes[1]();
  EXPECT_EQ(drained, 1);
  closes.clear();  // the copies were left already: no second callback
  EXPECT_EQ(drained, 1);
}

TEST(WorkGateTest, AHolderOfAnInnerGateHoldsTheOuterOne) {
  WorkGate outer;
  WorkGate inner(&outer);
  int drained = 0;
  WorkGate::Holder attempt = inner.Enter();
  WorkGate::Holder read = outer.Enter();
  EXPECT_EQ(inner.count(), 1u);
  EXPECT_EQ(outer.count(), 2u);
  outer.Close([&] { ++drained; });
  read.Leave();
  EXPECT_EQ(drained, 0);
  attempt.Leave();
  EXPECT_EQ(drained, 1);
  EXPECT_EQ(inner.count(), 0u);
}

}  // namespace
}  // namespace cde
