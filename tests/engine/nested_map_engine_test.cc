// A map step inside a map step on a real engine, loop and store: each inner
// item's attempt gets its line, its index and its order's earlier output;
// its rows are keyed by the run they belong to; the attempts in flight
// resume after a restart with the same keys, rendered from the recovered
// rows; the item listing pages one run's items.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/item_view.h"
#include "tests/engine/engine_harness.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using test::HeldAction;

// orders: map over input.orders of [check (echo), lines: map over the
// order's lines of [pick (held)], ship (echo)].
json ShopWorkflow() {
  json pick = {{"name", "pick"},
               {"action", "held"},
               {"params",
                {{"line", "${item}"},
                 {"i", "${index}"},
                 {"order", "${steps.check.output.id}"}}},
               {"retry", {{"max_attempts", 1}}}};
  json lines = {{"items", "${item.lines}"},
                {"max_concurrency", 2},
                {"steps", std::vector<json>{pick}}};
  json orders = {
      {"items", "${input.orders}"},
      {"max_concurrency", 2},
      {"steps",
       std::vector<json>{{{"name", "check"},
                          {"action", "echo"},
                          {"params", {{"id", "${item.id}"}}}},
                         {{"name", "lines"}, {"map", lines}},
                         {{"name", "ship"},
                          {"action", "echo"},
                          {"params", {{"picked", "${steps.lines.output}"}}}}}}};
  return {{"name", "shop"},
          {"version", 1},
          {"steps", std::vector<json>{{{"name", "orders"}, {"map", orders}}}}};
}

const json kNestedOrders = {{"orders",
                             {{{"id", "A"}, {"lines", {"a0", "a1", "a2"}}},
                              {{"id", "B"}, {"lines", {"b0"}}},
                              {{"id", "C"}, {"lines", json::array()}}}}};

std::vector<std::string> SortedKeys(const HeldAction& held) {
  std::vector<std::string> keys;
  for (const AttemptRequest& r : held.requests()) {
    keys.push_back(r.idempotency_key);
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

TEST(NestedMapEngineTest, InnerItemsRunWithTheirOrderAndResumeAfterARestart) {
  test::TempDir dir;
  std::string id;
  {
    HeldAction first;
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"held", first.AsAction()}}));
    ASSERT_OK(h.Register(ShopWorkflow()).status());
    auto started = h.Start({.workflow = "shop", .input = kNestedOrders});
    ASSERT_OK(started.status());
    id = started->saga_id;
    // Orders A and B are checked at once; two of A's lines and B's one.
    ASSERT_TRUE(h.RunUntil([&] { return first.pending() == 3; }));
    const auto requests = first.requests();
    const auto a1 = std::find_if(requests.begin(), requests.end(),
                                 [](const AttemptRequest& r) {
                                   return r.step == "orders[0].lines[1].pick";
                                 });
    ASSERT_NE(a1, requests.end());
    EXPECT_EQ(a1->params, (json{{"line", "a1"}, {"i", 1}, {"order", "A"}}));
    EXPECT_EQ(a1->idempotency_key, id + "/orders[0].lines[1].pick/1");
    ASSERT_TRUE(first.Complete(ActionResult::Success("picked")));
    ASSERT_TRUE(h.RunUntil([&] { return first.calls() == 4; }));
    ASSERT_OK(h.Close());
  }
  HeldAction second;
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path(), {{"held", second.AsAction()}}));
  ASSERT_TRUE(h.RunUntil([&] { return second.pending() == 3; }));
  // The one that finished before the restart does not run again.
  EXPECT_EQ(SortedKeys(second),
            (std::vector<std::string>{id + "/orders[0].lines[1].pick/1",
                                      id + "/orders[0].lines[2].pick/1",
                                      id + "/orders[1].lines[0].pick/1"}));
  for (const AttemptRequest& r : second.requests()) {
    if (r.step == "orders[0].lines[2].pick") {
      EXPECT_EQ(r.params, (json{{"line", "a2"}, {"i", 2}, {"order", "A"}}));
    }
  }
  while (second.pending() > 0) {
    ASSERT_TRUE(second.Complete(ActionResult::Success("picked")));
  }
  auto rec = h.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted) << rec->body.dump();
  EXPECT_EQ(rec->body["steps"][0]["output"],
            (json{{{"picked", {"picked", "picked", "picked"}}},
                  {{"picked", {"picked"}}},
                  {{"picked", json::array()}}}));

  // One run's items, by its path; the map step alone names no run.
  auto page =
      ReadItemPage(h.engine().store(), id, {.map_step = "orders[0].lines"});
  ASSERT_OK(page.status());
  EXPECT_EQ(page->map_step, "orders[0].lines");
  EXPECT_EQ(page->total, 3u);
  EXPECT_EQ(page->started, 3u);
  ASSERT_EQ(page->items.size(), 3u);
  EXPECT_EQ(page->items[1]["path"], "orders[0].lines[1]");
  EXPECT_EQ(page->items[1]["steps"][0]["path"], "orders[0].lines[1].pick");
  EXPECT_EQ(page->items[1]["status"], "succeeded");
  auto outer = ReadItemPage(h.engine().store(), id, {.map_step = ""});
  ASSERT_OK(outer.status());
  EXPECT_EQ(outer->map_step, "orders");
  ASSERT_EQ(outer->items.size(), 3u);
  // An outer item lists its own steps; the inner map's are in its runs.
  const json& steps = outer->items[0]["steps"];
  ASSERT_EQ(steps.size(), 3u) << steps.dump();
  EXPECT_EQ(steps[1]["path"], "orders[0].lines");
  EXPECT_EQ(steps[1]["map"]["succeeded"], 3);
  EXPECT_EQ(steps[2]["path"], "orders[0].ship");
  auto unnamed =
      ReadItemPage(h.engine().store(), id, {.map_step = "orders.lines"});
  EXPECT_EQ(unnamed.status().message(),
            "map_step: 'orders.lines' runs once per item of map step "
            "'orders': name one run of it, as orders[0].lines");
  ASSERT_OK(h.Close());
}

}  // namespace
}  // namespace cde
