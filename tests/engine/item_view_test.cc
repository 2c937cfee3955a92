// The items of a map step as every surface lists them (ReadItemPage):
// paged and filtered by status across more rows than one read takes.
#include "engine/item_view.h"

#include <gtest/gtest.h>

#include "tests/engine/engine_harness.h"

namespace cde {
namespace {

using nlohmann::json;

// Runs a saga of "fan": a map step over `items`, each a `fail` step that
// fails its first `item` attempts of one, up to `tolerated` of them
// tolerated. The saga's id once it completed, or "" (a failure reported).
std::string RunMap(test::EngineHarness& h, const json& items, int tolerated) {
  auto registered =
      h.Register({{"name", "fan"},
                  {"version", 1},
                  {"steps",
                   {{{"name", "each"},
                     {"map",
                      {{"items", items},
                       {"max_concurrency", 256},
                       {"tolerated_failures", tolerated},
                       {"steps",
                        {{{"name", "try"},
                          {"action", "fail"},
                          {"params", {{"fail_attempts", "${item}"}}},
                          {"retry", {{"max_attempts", 1}}}}}}}}}}}});
  EXPECT_OK(registered.status());
  auto started = h.Start({.workflow = "fan"});
  EXPECT_OK(started.status());
  if (!started.ok()) return "";
  auto done = h.AwaitInactive(started->saga_id);
  EXPECT_OK(done.status());
  if (!done.ok() || done->state != SagaState::kCompleted) {
    ADD_FAILURE() << "the map saga did not complete";
    return "";
  }
  return started->saga_id;
}

TEST(ItemViewTest, AFilteredPageSkipsToTheNextMatchAcrossManyRows) {
  test::EngineHarness h;
  ASSERT_OK(h.Open(""));
  json items = json::array();
  for (int i = 0; i < 600; ++i) items.push_back(i == 10 || i == 590 ? 99 : 0);
  const std::string id = RunMap(h, items, /*tolerated=*/2);
  ASSERT_FALSE(id.empty());
  Store& store = h.engine().store();

  auto first = ReadItemPage(
      store, id, {.status = StepStatus::kFailed, .from_index = 0, .limit = 1});
  ASSERT_OK(first.status());
  EXPECT_EQ(first->total, 600u);
  EXPECT_EQ(first->started, 600u);
  ASSERT_EQ(first->items.size(), 1u);
  EXPECT_EQ(first->items[0]["index"], 10);
  EXPECT_EQ(first->items[0]["steps"][0]["path"], "each[10].try");
  EXPECT_EQ(first->next_index, std::optional<uint32_t>(590));
  auto second = ReadItemPage(
      store, id,
      {.status = StepStatus::kFailed, .from_index = 590, .limit = 1});
  ASSERT_OK(second.status());
  ASSERT_EQ(second->items.size(), 1u);
  EXPECT_EQ(second->items[0]["index"], 590);
  EXPECT_FALSE(second->next_index.has_value());

  // Unfiltered pages follow each other without gaps or repeats.
  uint32_t seen = 0;
  std::optional<uint32_t> from = 0;
  while (from) {
    auto page = ReadItemPage(store, id, {.from_index = *from, .limit = 250});
    ASSERT_OK(page.status());
    for (const json& item : page->items) {
      EXPECT_EQ(item["index"], seen);
      ++seen;
    }
    from = page->next_index;
  }
  EXPECT_EQ(seen, 600u);

  EXPECT_TRUE(ReadItemPage(store, id, {.map_step = "try"})
                  .status()
                  .IsInvalidArgument());
  EXPECT_TRUE(ReadItemPage(store, "01ARZ3NDEKTSV4RRFFQ69G5FAV", {})
                  .status()
                  .IsNotFound());
}

// A filter that matches little does not make one call read the whole map:
// it stops after kMaxRowsScanned rows with no item yet and says where to go
// on, and going on finds the match.
TEST(ItemViewTest, AFilteredPageReadsABoundedNumberOfRows) {
  test::EngineHarness h;
  ASSERT_OK(h.Open(""));
  const uint32_t n = kMaxRowsScanned + 500;
  const uint32_t failing = kMaxRowsScanned + 400;
  json items = json::array();
  for (uint32_t i = 0; i < n; ++i) items.push_back(i == failing ? 99 : 0);
  const std::string id = RunMap(h, items, /*tolerated=*/2);
  ASSERT_FALSE(id.empty());

  const ItemQuery failed{.status = StepStatus::kFailed, .limit = 1};
  auto first = ReadItemPage(h.engine().store(), id, failed);
  ASSERT_OK(first.status());
  EXPECT_TRUE(first->items.empty());
  ASSERT_TRUE(first->next_index.has_value());
  EXPECT_GE(*first->next_index, kMaxRowsScanned);
  EXPECT_LE(*first->next_index, failing);
  ItemQuery on = failed;
  on.from_index = *first->next_index;
  auto second = ReadItemPage(h.engine().store(), id, on);
  ASSERT_OK(second.status());
  ASSERT_EQ(second->items.size(), 1u);
  EXPECT_EQ(second->items[0]["index"], failing);
  EXPECT_FALSE(second->next_index.has_value());
}

}  // namespace
}  // namespace cde
