// Watchers: each watcher of a saga is called in the order it watched; a
// watcher may unwatch itself or another while called, and one added during
// a notification is first called at the next.
#include "engine/watchers.h"

#include <gtest/gtest.h>

#include <vector>

namespace cde {
namespace {

Saga SagaWithId(const std::string& id) {
  Saga s;
  s.id = id;
  return s;
}

TEST(WatchersTest, WatchersOfASagaAreCalledInOrderAndOnlyForIt) {
  Watchers w;
  std::vector<std::string> calls;
  w.WatchSaga("a", [&](const Saga& s) { calls.push_back("1:" + s.id); });
  w.WatchSaga("b", [&](const Saga& s) { calls.push_back("2:" + s.id); });
  w.WatchSaga("a", [&](const Saga& s) { calls.push_back("3:" + s.id); });
  w.SagaChanged(SagaWithId("a"));
  EXPECT_EQ(calls, (std::vector<std::string>{"1:a", "3:a"}));
  EXPECT_TRUE(w.Watched("b"));
  EXPECT_FALSE(w.Watched("c"));
}

TEST(WatchersTest, AWatcherMayUnwatchItselfOrAnotherWhileCalled) {
  Watchers w;
  std::vector<int> calls;
  uint64_t second = 0;
  uint64_t first = 0;
  first = w.WatchSaga("a", [&](const Saga&) {
    calls.push_back(1);
    w.Unwatch(first);
    w.Unwatch(second);
  });
  second = w.WatchSaga("a", [&](const Saga&) { calls.push_back(2); });
  w.SagaChanged(SagaWithId("a"));
  EXPECT_EQ(calls, std::vector<int>{1}) << "the other was unwatched first";
  EXPECT_FALSE(w.Watched("a"));
  w.SagaChanged(SagaWithId("a"));
  EXPECT_EQ(calls, std::vector<int>{1});
}

TEST(WatchersTest, ManyWatchersOfOneSagaAreCalledInOrderAndMayUnwatchOthers) {
  // More watchers than the few whose ids a notification keeps inline.
  Watchers w;
  std::vector<int> calls;
  std::vector<uint64_t> ids;
  for (int i = 0; i < 7; ++i) {
    ids.push_back(w.WatchSaga("a", [&, i](const Saga&) {
      calls.push_back(i);
      if (i == 2) w.Unwatch(ids[5]);
    }));
  }
  w.SagaChanged(SagaWithId("a"));
  EXPECT_EQ(calls, (std::vector<int>{0, 1, 2, 3, 4, 6}));
  calls.clear();
  w.SagaChanged(SagaWithId("a"));
  EXPECT_EQ(calls, (std::vector<int>{0, 1, 2, 3, 4, 6}));
}

TEST(WatchersTest, OneAddedDuringANotificationIsCalledFromTheNext) {
  Watchers w;
  int added_calls = 0;
  bool added = false;
  w.WatchSaga("a", [&](const Saga&) {
    if (added) return;
    added = true;
    w.WatchSaga("a", [&](const Saga&) { ++added_calls; });
  });
  w.SagaChanged(SagaWithId("a"));
  EXPECT_EQ(added_calls, 0);
  w.SagaChanged(SagaWithId("a"));
  EXPECT_EQ(added_calls, 1);
}

TEST(WatchersTest, DefinitionWatchersShareTheIdSpaceOfUnwatch) {
  Watchers w;
  int heard = 0;
  const uint64_t saga = w.WatchSaga("a", [](const Saga&) {});
  const uint64_t defs =
      w.WatchDefinitions([&](const DefinitionRecord&) { ++heard; });
  EXPECT_NE(saga, defs);
  w.DefinitionRegistered({});
  EXPECT_EQ(heard, 1);
  w.Unwatch(defs);
  w.DefinitionRegistered({});
  EXPECT_EQ(heard, 1);
  EXPECT_TRUE(w.Watched("a"));
  w.Unwatch(saga);
  EXPECT_FALSE(w.Watched("a"));
  w.Unwatch(12345);  // unknown: a no-op
}

}  // namespace
}  // namespace cde
