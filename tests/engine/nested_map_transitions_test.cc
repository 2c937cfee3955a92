// A map step inside another map step's steps, planned event by event
// without I/O: it runs once per outer item, over items rendered from that
// item; its items are rows of their own, keyed by the path of the run they
// belong to ("orders[0].lines"), and its progress lives in the outer item's
// row; an inner failure past its tolerance fails the outer item; the undo
// goes inner items first; a replay runs again only the inner items that did
// not finish.
#include <gmock/gmock.h>

#include "engine/transitions.h"
#include "tests/engine/map_plan_fixture.h"
#include "tests/engine/plan_words.h"

namespace cde {
namespace {

using nlohmann::json;
using test::Actions;
using test::Types;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

json Book(const std::string& name, json params, bool undo = true) {
  json step = {{"name", name},
               {"action", "book"},
               {"params", std::move(params)},
               {"retry", {{"max_attempts", 1}}}};
  if (undo) step["compensate"] = {{"action", "book"}};
  return step;
}

// orders = map over input.orders of [check, lines = map over the order's
// lines of [pick], ship].
json ShopDoc(const char* on_failure = "compensate",
             json lines_extra = json::object()) {
  json lines = {
      {"items", "${item.lines}"},
      {"max_concurrency", 2},
      {"steps", std::vector<json>{
                    Book("pick", {{"line", "${item}"},
                                  {"i", "${index}"},
                                  {"checked", "${steps.check.output}"}})}}};
  lines.update(lines_extra);
  json orders = {
      {"items", "${input.orders}"},
      {"max_concurrency", 2},
      {"steps",
       std::vector<json>{
           Book("check", {{"order", "${item.id}"}}),
           {{"name", "lines"}, {"map", lines}},
           Book("ship", {{"picked", "${steps.lines.output}"}}, false)}}};
  return {{"name", "shop"},
          {"version", 1},
          {"on_failure", on_failure},
          {"steps", std::vector<json>{{{"name", "orders"}, {"map", orders}}}}};
}

// Order 0 has three lines, order 1 one, order 2 none.
const json kInput = {{"orders",
                      {{{"id", 0}, {"lines", {"a", "b", "c"}}},
                       {{"id", 1}, {"lines", {"d"}}},
                       {{"id", 2}, {"lines", json::array()}}}}};

class NestedMapTransitionsTest : public test::MapPlanFixture {
 protected:
  // Item `index` of the run of `map_path` ("orders", "orders[0].lines").
  const ItemState* Item(const std::string& map_path, uint32_t index) {
    const StepInstance at = InstanceAt(def_, map_path);
    return FindItemIn(items_, {at.step, index, MapInstanceOf(at).outer});
  }
  // The map paths a plan writes item rows under, with their indices.
  static std::vector<std::string> Rows(const Plan& p) {
    std::vector<std::string> out;
    for (const auto& [ref, write] : p.items) {
      out.push_back(write.map_path + "[" + std::to_string(ref.index) + "]");
    }
    return out;
  }
  // Starts the saga and lets orders[0] and orders[1] be checked.
  Saga BeginChecked() {
    Saga s = Commit(Start(kInput));
    s = Commit(Result(s, "orders[0].check", true));
    return Commit(Result(s, "orders[1].check", true));
  }
};

TEST_F(NestedMapTransitionsTest, InnerItemsRunPerOuterItemAndKeyTheirRows) {
  Use(ShopDoc());
  Saga s = Commit(Start(kInput));
  Plan p = Result(s, "orders[0].check", true);
  EXPECT_THAT(Types(p), ElementsAre("step_succeeded", "map_started",
                                    "attempt_started", "attempt_started"));
  EXPECT_EQ(p.events[1].data,
            (json{{"step", "orders[0].lines"}, {"items", 3}}));
  EXPECT_THAT(Actions(p), ElementsAre("run orders[0].lines[0].pick#1",
                                      "run orders[0].lines[1].pick#1"));
  EXPECT_EQ(p.events[2].data["idempotency_key"],
            "01SAGA/orders[0].lines[0].pick/1");
  EXPECT_THAT(Rows(p), UnorderedElementsAre("orders[0]", "orders[0].lines[0]",
                                            "orders[0].lines[1]"));
  s = Commit(p);
  // The inner map's progress is in the outer item's row, not the snapshot.
  const MapProgress& inner = Item("orders", 0)->steps.at(1).map;
  EXPECT_EQ(inner.items, 3u);
  EXPECT_EQ(inner.running, 2u);
  EXPECT_FALSE(ToRecord(s).body["steps"][2].contains("map"));

  // What a pick's params read: its line, its index, its order's check.
  TemplateScratch scratch;
  const ItemSource source{
      [this](const ItemRef& ref) { return FindItemIn(items_, ref); }, {}};
  auto tc =
      TemplateContextAt(def_, s, InstanceAt(def_, "orders[0].lines[1].pick"),
                        source, &scratch, "key", 1);
  ASSERT_TRUE(tc.ok()) << tc.status().ToString();
  auto params = RenderTemplates(def_.steps[3].run.params, *tc);
  ASSERT_TRUE(params.ok()) << params.status().ToString();
  EXPECT_EQ(*params, (json{{"line", "b"},
                           {"i", 1},
                           {"checked", {{"done", "orders[0].check"}}}}));

  // An inner item done starts the next one: its rows and the outer item's.
  p = Result(s, "orders[0].lines[0].pick", true);
  EXPECT_THAT(Actions(p), ElementsAre("run orders[0].lines[2].pick#1"));
  EXPECT_THAT(Rows(p), UnorderedElementsAre("orders[0]", "orders[0].lines[0]",
                                            "orders[0].lines[2]"));
  s = Commit(p);
  s = Commit(Result(s, "orders[0].lines[1].pick", true));
  p = Result(s, "orders[0].lines[2].pick", true);
  EXPECT_THAT(Types(p), ElementsAre("step_succeeded", "step_succeeded",
                                    "attempt_started"));
  EXPECT_EQ(p.events[1].data["step"], "orders[0].lines");
  EXPECT_EQ(p.events[1].data["output"],
            (json{{{"done", "orders[0].lines[0].pick"}},
                  {{"done", "orders[0].lines[1].pick"}},
                  {{"done", "orders[0].lines[2].pick"}}}));
  EXPECT_THAT(Actions(p), ElementsAre("run orders[0].ship#1"));
  s = Commit(p);

  s = Commit(Result(s, "orders[1].check", true));
  s = Commit(Result(s, "orders[1].lines[0].pick", true));
  // orders[0] done: orders[2] starts; its lines are none, so its inner map
  // succeeds at once with [] when its check is done.
  p = Result(s, "orders[0].ship", true);
  EXPECT_THAT(Actions(p), ElementsAre("run orders[2].check#1"));
  s = Commit(p);
  p = Result(s, "orders[2].check", true);
  EXPECT_THAT(Types(p), ElementsAre("step_succeeded", "map_started",
                                    "step_succeeded", "attempt_started"));
  EXPECT_EQ(p.events[2].data["output"], json::array());
  s = Commit(p);
  s = Commit(Result(s, "orders[1].ship", true));
  p = Result(s, "orders[2].ship", true);
  EXPECT_THAT(Types(p), ElementsAre("step_succeeded", "step_succeeded",
                                    "saga_completed"));
  EXPECT_EQ(p.saga.steps[0].output, (json{{{"done", "orders[0].ship"}},
                                          {{"done", "orders[1].ship"}},
                                          {{"done", "orders[2].ship"}}}));
}

TEST_F(NestedMapTransitionsTest,
       AnInnerFailureFailsTheOuterItemAndUndoesInnerFirst) {
  Use(ShopDoc());
  Saga s = BeginChecked();  // orders[0].lines[0..1], orders[1].lines[0]
  s = Commit(Result(s, "orders[0].lines[0].pick", true));  // [2] starts
  Plan p = Result(s, "orders[0].lines[1].pick", false);
  // The inner map fails, and with it its outer item; that fails the outer
  // map, and the saga compensates.
  EXPECT_THAT(Types(p), ElementsAre("step_failed", "item_failed", "step_failed",
                                    "step_stopped", "item_failed",
                                    "step_failed", "step_stopped",
                                    "saga_compensating", "attempt_started"));
  EXPECT_EQ(p.events[1].data["step"], "orders[0].lines");
  EXPECT_EQ(p.events[2].data["step"], "orders[0].lines");
  EXPECT_EQ(p.events[2].data["error"]["message"],
            "item 1 (orders[0].lines[1].pick) failed: boom");
  EXPECT_EQ(p.events[4].data["step"], "orders");
  EXPECT_EQ(p.events[5].data["error"]["message"],
            "item 0 (orders[0].lines) failed: item 1 "
            "(orders[0].lines[1].pick) failed: boom");
  // The attempts in flight are awaited before their items are undone; up
  // to max_concurrency items are undone at a time, newest first, inner
  // items before their outer item's own steps.
  EXPECT_THAT(Actions(p), ElementsAre("stop orders[0].lines[2].pick#1",
                                      "stop orders[1].lines[0].pick#1",
                                      "undo orders[0].lines[0].pick#1"));
  s = Commit(p);
  EXPECT_EQ(Item("orders", 0)->status, StepStatus::kFailed);
  EXPECT_EQ(Item("orders", 1)->status, StepStatus::kCancelled);
  EXPECT_EQ(Item("orders[0].lines", 2)->status, StepStatus::kCancelled);

  p = Result(s, "orders[1].lines[0].pick", true);
  EXPECT_THAT(Actions(p), ElementsAre("undo orders[1].lines[0].pick#1"));
  s = Commit(p);
  p = Result(s, "orders[0].lines[2].pick", false);  // nothing to undo
  EXPECT_THAT(Actions(p), ::testing::IsEmpty());
  s = Commit(p);
  p = Result(s, "orders[1].lines[0].pick", true, true);
  EXPECT_THAT(Actions(p), ElementsAre("undo orders[1].check#1"));
  s = Commit(p);
  s = Commit(Result(s, "orders[1].check", true, true));
  EXPECT_EQ(Item("orders", 1)->compensation, CompensationStatus::kSucceeded);
  p = Result(s, "orders[0].lines[0].pick", true, true);
  EXPECT_THAT(Actions(p), ElementsAre("undo orders[0].check#1"));
  s = Commit(p);
  EXPECT_EQ(Item("orders", 0)->steps.at(1).compensation,
            CompensationStatus::kSucceeded);
  // Inner items that failed, or came back failed, had nothing to undo.
  EXPECT_EQ(Item("orders[0].lines", 1)->compensation,
            CompensationStatus::kNone);
  EXPECT_EQ(Item("orders[0].lines", 2)->compensation,
            CompensationStatus::kNone);
  p = Result(s, "orders[0].check", true, true);
  EXPECT_THAT(Types(p),
              ElementsAre("compensation_succeeded", "saga_compensated"));
}

TEST_F(NestedMapTransitionsTest, AToleratedInnerFailureLeavesAnErrorRecord) {
  Use(ShopDoc("compensate", {{"tolerated_failures", 1}}));
  Saga s = BeginChecked();
  s = Commit(Result(s, "orders[0].lines[0].pick", true));
  Plan p = Result(s, "orders[0].lines[1].pick", false);
  EXPECT_THAT(Types(p), ElementsAre("step_failed", "item_failed"));
  EXPECT_EQ(p.events[1].data["tolerated"], true);
  s = Commit(p);
  p = Result(s, "orders[0].lines[2].pick", true);
  EXPECT_THAT(Actions(p), ElementsAre("run orders[0].ship#1"));
  EXPECT_EQ(p.events[1].data["output"][1],
            (json{{"error", {{"kind", "http_404"}, {"message", "boom"}}}}));
}

TEST_F(NestedMapTransitionsTest, CancelEndsInnerMapsThenUndoesWhatRan) {
  Use(ShopDoc());
  Saga s = BeginChecked();
  auto cancel = PlanCancel(Ctx(), s, true, "op");
  ASSERT_TRUE(cancel.ok()) << cancel.status().ToString();
  s = Commit(*cancel);
  // The attempts in flight finish; no inner item starts meanwhile.
  Plan p = Result(s, "orders[0].lines[0].pick", true);
  EXPECT_THAT(Actions(p), ::testing::IsEmpty());
  s = Commit(p);
  s = Commit(Result(s, "orders[0].lines[1].pick", true));
  p = Result(s, "orders[1].lines[0].pick", true);
  EXPECT_EQ(p.saga.state, SagaState::kCancelling);
  EXPECT_THAT(Actions(p), ElementsAre("undo orders[1].lines[0].pick#1",
                                      "undo orders[0].lines[1].pick#1",
                                      "undo orders[0].lines[0].pick#1"));
  s = Commit(p);
  EXPECT_EQ(Item("orders", 0)->status, StepStatus::kCancelled);
  EXPECT_EQ(Item("orders", 0)->steps.at(1).status, StepStatus::kCancelled);
  EXPECT_EQ(Item("orders", 0)->steps.at(1).map.running, 0u);
  EXPECT_EQ(Item("orders[0].lines", 0)->status, StepStatus::kCancelled);
  EXPECT_EQ(Item("orders[0].lines", 2), nullptr);  // never started
  for (const char* undone :
       {"orders[1].lines[0].pick", "orders[0].lines[1].pick",
        "orders[0].lines[0].pick"}) {
    s = Commit(Result(s, undone, true, true));
  }
  s = Commit(Result(s, "orders[1].check", true, true));
  p = Result(s, "orders[0].check", true, true);
  EXPECT_THAT(Types(p),
              ElementsAre("compensation_succeeded", "saga_cancelled"));
}

// limits.map_items bounds the items of all runs of a map step together:
// each run may have the limit divided by the items of the runs around it.
TEST_F(NestedMapTransitionsTest, TheRunsOfAnInnerMapShareTheItemLimit) {
  Use(ShopDoc());
  max_items_ = 5;  // 3 orders: at most 1 line each
  Saga s = Commit(Start(kInput));
  Plan p = Result(s, "orders[1].check", true);  // 1 line: within
  EXPECT_THAT(Actions(p), ElementsAre("run orders[1].lines[0].pick#1"));
  s = Commit(p);
  p = Result(s, "orders[0].check", true);  // 3 lines: over
  ASSERT_GE(p.events.size(), 2u);
  EXPECT_EQ(p.events[1].data["step"], "orders[0].lines");
  EXPECT_EQ(p.events[1].data["error"]["kind"], "limit");
  EXPECT_EQ(p.events[1].data["error"]["message"],
            "map.items: 3 items in each of 3 runs of map step 'orders.lines' "
            "(one per item of the map steps around it) come to more than "
            "limits.map_items allows (5)");
  EXPECT_EQ(p.saga.state, SagaState::kCompensating);
}

TEST_F(NestedMapTransitionsTest, ReplayRunsAgainOnlyTheInnerItemsThatFailed) {
  Use(ShopDoc("park"));
  Saga s = BeginChecked();
  s = Commit(Result(s, "orders[0].lines[0].pick", true));  // [2] starts
  s = Commit(Result(s, "orders[0].lines[2].pick", true));
  s = Commit(Result(s, "orders[1].lines[0].pick", true));
  s = Commit(Result(s, "orders[1].ship", true));  // orders[2] starts
  Plan p = Result(s, "orders[0].lines[1].pick", false);
  EXPECT_THAT(Actions(p), ElementsAre("stop orders[2].check#1", "finish"));
  ASSERT_TRUE(p.dlq_put.has_value());
  EXPECT_EQ(p.dlq_put->step, "orders");
  s = Commit(p);
  auto replay = PlanReplay(Ctx(), s, "", false, "op");
  ASSERT_TRUE(replay.ok()) << replay.status().ToString();
  // The failed inner item and the stopped outer one run again, attempt
  // numbers going on; inner items 0 and 2 and order 1 succeeded and stay.
  EXPECT_THAT(Actions(*replay), ElementsAre("run orders[0].lines[1].pick#2",
                                            "run orders[2].check#2"));
  s = Commit(*replay);
  EXPECT_EQ(Item("orders[0].lines", 0)->status, StepStatus::kSucceeded);
  EXPECT_EQ(Item("orders", 1)->status, StepStatus::kSucceeded);
  p = Result(s, "orders[0].lines[1].pick", true, false, 2);
  EXPECT_THAT(Actions(p), ElementsAre("run orders[0].ship#1"));
  EXPECT_EQ(p.events[1].data["output"].size(), 3u);
  s = Commit(p);
  s = Commit(Result(s, "orders[0].ship", true));
  s = Commit(Result(s, "orders[2].check", true, false, 2));
  p = Result(s, "orders[2].ship", true);
  EXPECT_EQ(p.saga.state, SagaState::kCompleted);
}

}  // namespace
}  // namespace cde
