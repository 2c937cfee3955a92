// The items of a map step as every surface lists them (ReadItemPage):
// paged and filtered by status across more rows than one read takes.
#include "engine/item_view.h"

#include <gtest/gtest.h>

#include "tests/engine/engine_harness.h"

namespace cde {
namespace {

using nlohmann::json;

TEST(ItemViewTest, AFilteredPageSkipsToTheNextMatchAcrossManyRows) {
  test::EngineHarness h;
  ASSERT_OK(h.Open(""));
  json items = json::array();
  for (int i = 0; i < 600; ++i) items.push_back(i == 10 || i == 590 ? 99 : 0);
  ASSERT_OK(h.Register({{"name", "fan"},
                        {"version", 1},
                        {"steps",
                         {{{"name", "each"},
                           {"map",
                            {{"items", items},
                             {"max_concurrency", 64},
                             {"tolerated_failures", 2},
                             {"steps",
                              {{{"name", "try"},
                                {"action", "fail"},
                                {"params", {{"fail_attempts", "${item}"}}},
                                {"retry", {{"max_attempts", 1}}}}}}}}}}}})
                .status());
  auto started = h.Start({.workflow = "fan"});
  ASSERT_OK(started.status());
  auto done = h.AwaitInactive(started->saga_id);
  ASSERT_OK(done.status());
  ASSERT_EQ(done->state, SagaState::kCompleted);
  Store& store = h.engine().store();
  const std::string& id = started->saga_id;

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

}  // namespace
}  // namespace cde
