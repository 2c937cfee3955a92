// ConcurrencySlots: a workflow's sagas take slots up to its limit, the rest
// wait in arrival order, and a freed slot goes to the oldest that waits.
#include "engine/concurrency_slots.h"

#include <gtest/gtest.h>

namespace cde {
namespace {

TEST(ConcurrencySlotsTest, SagasOverTheLimitWaitAndTakeFreedSlotsInOrder) {
  ConcurrencySlots slots;
  EXPECT_TRUE(slots.TakeOrWait("w", 2, "a"));
  EXPECT_TRUE(slots.TakeOrWait("w", 2, "b"));
  EXPECT_FALSE(slots.TakeOrWait("w", 2, "c"));
  EXPECT_FALSE(slots.TakeOrWait("w", 2, "d"));
  EXPECT_TRUE(slots.TakeOrWait("other", 2, "x")) << "limits are per workflow";
  EXPECT_EQ(slots.waiting_count(), 2u);
  EXPECT_EQ(slots.Waiting(), std::vector<std::string>{"w"});

  ASSERT_NE(slots.Front("w"), nullptr);
  EXPECT_EQ(*slots.Front("w"), "c");
  EXPECT_FALSE(slots.PromoteFront("w", 2)) << "no slot is free";
  slots.Free("w");
  EXPECT_TRUE(slots.PromoteFront("w", 2));
  EXPECT_EQ(*slots.Front("w"), "d");
  EXPECT_FALSE(slots.PromoteFront("w", 2));
  EXPECT_TRUE(slots.PromoteFront("w", 3)) << "a raised limit lets it in";
  EXPECT_EQ(slots.Front("w"), nullptr);
  EXPECT_EQ(slots.waiting_count(), 0u);
}

TEST(ConcurrencySlotsTest, NoLimitNeverWaitsAndHeldSlotsCount) {
  ConcurrencySlots slots;
  for (int i = 0; i < 100; ++i) {
    EXPECT_TRUE(slots.TakeOrWait("w", std::nullopt, std::to_string(i)));
  }
  ConcurrencySlots recovered;
  recovered.Hold("w");  // a dormant saga still holds its slot
  EXPECT_FALSE(recovered.TakeOrWait("w", 1, "new"));
}

TEST(ConcurrencySlotsTest, AWaitingSagaThatEndsOrIsGoneLeavesTheLine) {
  ConcurrencySlots slots;
  ASSERT_TRUE(slots.TakeOrWait("w", 1, "a"));
  ASSERT_FALSE(slots.TakeOrWait("w", 1, "b"));
  ASSERT_FALSE(slots.TakeOrWait("w", 1, "c"));
  slots.Wait("w", "d");         // recovered, still waiting
  slots.StopWaiting("w", "b");  // cancelled while it waited
  EXPECT_EQ(*slots.Front("w"), "c");
  slots.DropFront("w");  // gone meanwhile
  EXPECT_EQ(*slots.Front("w"), "d");
  slots.StopWaiting("w", "d");
  EXPECT_EQ(slots.Front("w"), nullptr);
  EXPECT_TRUE(slots.Waiting().empty());
}

}  // namespace
}  // namespace cde
