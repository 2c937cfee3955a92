// The saga state machine over a map step, event by event, without I/O:
// items start up to max_concurrency at a time, each with its index in its
// path; an item done starts the next and writes its own row only; the map
// ends with the items' outputs in order; tolerated failures leave error
// records; an untolerated one stops the items under way and undoes every
// item that ran, newest first; limits fail the step with kind `limit`.
#include <gmock/gmock.h>

#include "engine/transitions.h"
#include "tests/engine/map_plan_fixture.h"
#include "tests/engine/plan_words.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;
using test::Actions;
using test::Types;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// prep, then fan = map over input.orders of [charge], then notify.
json OrdersDoc(json map_extra = json::object(),
               const char* on_failure = "compensate") {
  json map = {
      {"items", "${input.orders}"},
      {"max_concurrency", 2},
      {"steps",
       std::vector<json>{{{"name", "charge"},
                          {"action", "book"},
                          {"params", {{"order", "${item}"}, {"i", "${index}"}}},
                          {"compensate", {{"action", "book"}}},
                          {"retry", {{"max_attempts", 1}}}}}}};
  map.update(map_extra);
  return {{"name", "orders"},
          {"version", 1},
          {"on_failure", on_failure},
          {"steps",
           std::vector<json>{{{"name", "prep"},
                              {"action", "book"},
                              {"compensate", {{"action", "book"}}}},
                             {{"name", "fan"}, {"map", map}},
                             {{"name", "notify"},
                              {"action", "book"},
                              {"params", {{"all", "${steps.fan.output}"}}}}}}};
}

using test::ItemIndices;
using test::Orders;

class MapTransitionsTest : public test::MapPlanFixture {
 protected:
  void Use(const json& doc) {
    MapPlanFixture::Use(doc);
    map_ = def_.StepAtPath("fan");
  }
  const ItemState& Item(uint32_t i) {
    return items_.at({map_, {}}).at(static_cast<size_t>(i));
  }

  int map_ = -1;
};

TEST_F(MapTransitionsTest, ItemsStartUpToMaxConcurrencyWithTheirIndexInPath) {
  Use(OrdersDoc());
  Saga s = Commit(Start(Orders(5)));
  Plan p = Result(s, "prep", true);
  EXPECT_THAT(Types(p), ElementsAre("step_succeeded", "map_started",
                                    "attempt_started", "attempt_started"));
  EXPECT_THAT(Actions(p),
              ElementsAre("run fan[0].charge#1", "run fan[1].charge#1"));
  EXPECT_EQ(p.events[1].data, (json{{"step", "fan"}, {"items", 5}}));
  EXPECT_EQ(p.events[2].data["idempotency_key"], "01SAGA/fan[0].charge/1");
  // Only the items that started have rows.
  EXPECT_THAT(ItemIndices(p), ElementsAre(0u, 1u));
  s = Commit(p);
  const MapProgress& mp = Step(s, "fan").map;
  EXPECT_EQ(mp.items, 5u);
  EXPECT_EQ(mp.running, 2u);
  EXPECT_EQ(mp.next, 2u);
  EXPECT_EQ(Step(s, "fan").status, StepStatus::kRunning);
  EXPECT_EQ(Item(0).status, StepStatus::kRunning);
  EXPECT_EQ(Item(0).steps.at(0).attempts, 1u);
}

TEST_F(MapTransitionsTest, AnItemDoneStartsTheNextAndWritesOnlyTheirRows) {
  Use(OrdersDoc());
  Saga s = Begin(5);
  Plan p = Result(s, "fan[1].charge", true);
  EXPECT_THAT(Types(p), ElementsAre("step_succeeded", "attempt_started"));
  EXPECT_THAT(Actions(p), ElementsAre("run fan[2].charge#1"));
  EXPECT_THAT(ItemIndices(p), ElementsAre(1u, 2u));
  s = Commit(p);
  EXPECT_EQ(Item(1).status, StepStatus::kSucceeded);
  EXPECT_EQ(Item(1).steps[0].output, (json{{"done", "fan[1].charge"}}));
  EXPECT_EQ(Step(s, "fan").map.succeeded, 1u);
  // A late or unknown result is stale.
  AttemptOutcome late{{"fan[1].charge", false, 1}, true, nullptr, {}};
  EXPECT_FALSE(PlanAttemptResult(Ctx(), s, late).has_value());
  AttemptOutcome unknown{{"fan[9].charge", false, 1}, true, nullptr, {}};
  EXPECT_FALSE(PlanAttemptResult(Ctx(), s, unknown).has_value());
}

TEST_F(MapTransitionsTest, MapOutputIsTheItemsOutputsInItemOrder) {
  Use(OrdersDoc());
  Saga s = Begin(3);
  s = Commit(Result(s, "fan[1].charge", true));
  s = Commit(Result(s, "fan[2].charge", true));
  Plan p = Result(s, "fan[0].charge", true);
  EXPECT_THAT(Types(p), ElementsAre("step_succeeded", "step_succeeded",
                                    "attempt_started"));
  EXPECT_THAT(Actions(p), ElementsAre("run notify#1"));
  s = Commit(p);
  EXPECT_EQ(Step(s, "fan").status, StepStatus::kSucceeded);
  EXPECT_EQ(Step(s, "fan").output, json::parse(R"([{"done": "fan[0].charge"},
                            {"done": "fan[1].charge"},
                            {"done": "fan[2].charge"}])"));
  EXPECT_EQ(p.events[1].data["step"], "fan");
  p = Result(s, "notify", true);
  EXPECT_THAT(Types(p), ElementsAre("step_succeeded", "saga_completed"));
}

TEST_F(MapTransitionsTest, NoItemsIsAnEmptyOutputAtOnce) {
  Use(OrdersDoc());
  Saga s = Commit(Start(Orders(0)));
  Plan p = Result(s, "prep", true);
  EXPECT_THAT(Types(p), ElementsAre("step_succeeded", "map_started",
                                    "step_succeeded", "attempt_started"));
  EXPECT_THAT(Actions(p), ElementsAre("run notify#1"));
  EXPECT_EQ(Step(p.saga, "fan").output, json::array());
}

TEST_F(MapTransitionsTest, ToleratedFailureLeavesAnErrorRecordAndGoesOn) {
  Use(OrdersDoc({{"tolerated_failures", 1}}));
  Saga s = Begin(3);
  Plan p = Result(s, "fan[0].charge", false);
  EXPECT_THAT(Types(p),
              ElementsAre("step_failed", "item_failed", "attempt_started"));
  EXPECT_EQ(p.events[1].data["tolerated"], true);
  EXPECT_EQ(p.events[1].data["item"], 0);
  EXPECT_THAT(Actions(p), ElementsAre("run fan[2].charge#1"));
  s = Commit(p);
  EXPECT_EQ(s.state, SagaState::kRunning);
  EXPECT_EQ(Item(0).status, StepStatus::kFailed);
  s = Commit(Result(s, "fan[1].charge", true));
  s = Commit(Result(s, "fan[2].charge", true));
  EXPECT_EQ(Step(s, "fan").output[0],
            (json{{"error", {{"kind", "http_404"}, {"message", "boom"}}}}));
  EXPECT_EQ(Step(s, "fan").output[2], (json{{"done", "fan[2].charge"}}));
  EXPECT_EQ(Step(s, "fan").map.failed, 1u);
}

TEST_F(MapTransitionsTest, PercentageToleratesThatShareOfTheItems) {
  Use(OrdersDoc({{"tolerated_failures", "20%"}, {"max_concurrency", 10}}));
  Saga s = Begin(10);
  s = Commit(Result(s, "fan[0].charge", false));
  s = Commit(Result(s, "fan[1].charge", false));
  EXPECT_EQ(s.state, SagaState::kRunning);  // 2 of 10: 20%
  Plan p = Result(s, "fan[2].charge", false);
  EXPECT_EQ(p.events[1].data["tolerated"], false);
  EXPECT_EQ(p.saga.state, SagaState::kCompensating);
}

TEST_F(MapTransitionsTest, UntoleratedFailureStopsItemsAndUndoesNewestFirst) {
  Use(OrdersDoc());
  Saga s = Begin(4);
  s = Commit(Result(s, "fan[0].charge", true));  // fan[2] starts
  Plan p = Result(s, "fan[1].charge", false);
  // The map fails with the item; fan[2] is stopped in flight; then the
  // items are undone newest first, two at a time: fan[2] once its result is
  // in (an undo sent now could overtake it), and fan[0]; fan[1] failed and
  // needs none; fan[3] never ran.
  EXPECT_THAT(Types(p), ElementsAre("step_failed", "item_failed", "step_failed",
                                    "step_stopped", "saga_compensating",
                                    "attempt_started"));
  EXPECT_EQ(p.events[2].data["step"], "fan");
  EXPECT_EQ(p.events[2].data["error"]["message"],
            "item 1 (fan[1].charge) failed: boom");
  EXPECT_THAT(Actions(p),
              ElementsAre("stop fan[2].charge#1", "undo fan[0].charge#1"));
  s = Commit(p);
  EXPECT_EQ(Step(s, "fan").status, StepStatus::kFailed);
  EXPECT_EQ(Item(2).status, StepStatus::kCancelled);
  EXPECT_EQ(Item(2).steps[0].status, StepStatus::kRunning);
  EXPECT_EQ(Item(1).status, StepStatus::kFailed);
  // The stopped attempt's result: it did charge, so it is undone.
  p = Result(s, "fan[2].charge", true);
  EXPECT_THAT(Types(p), ElementsAre("step_succeeded", "attempt_started"));
  EXPECT_THAT(Actions(p), ElementsAre("undo fan[2].charge#1"));
  s = Commit(p);
  EXPECT_EQ(Item(2).steps[0].status, StepStatus::kSucceeded);
  s = Commit(Result(s, "fan[2].charge", true, true));
  EXPECT_EQ(s.state, SagaState::kCompensating);
  p = Result(s, "fan[0].charge", true, true);
  EXPECT_THAT(Actions(p), ElementsAre("undo prep#1"));
  s = Commit(p);
  EXPECT_EQ(Item(0).compensation, CompensationStatus::kSucceeded);
  EXPECT_EQ(Item(0).steps[0].compensation, CompensationStatus::kSucceeded);
  p = Result(s, "prep", true, true);
  EXPECT_THAT(Types(p),
              ElementsAre("compensation_succeeded", "saga_compensated"));
}

// An item stopped in flight awaits its attempt's result before its undo;
// when the result is a failure there is nothing to undo, and the item says
// so: no compensation, rather than one that succeeded.
TEST_F(MapTransitionsTest, AStoppedItemWhoseAttemptFailedHasNothingUndone) {
  Use(OrdersDoc());
  Saga s = Begin(4);
  s = Commit(Result(s, "fan[0].charge", true));  // fan[2] starts
  s = Commit(Result(s, "fan[1].charge", false));
  EXPECT_EQ(Item(2).compensation, CompensationStatus::kRunning);
  Plan p = Result(s, "fan[2].charge", false);  // it did not charge
  EXPECT_THAT(Actions(p), ElementsAre());
  s = Commit(p);
  EXPECT_EQ(Item(2).steps[0].status, StepStatus::kFailed);
  EXPECT_EQ(Item(2).steps[0].compensation, CompensationStatus::kNone);
  EXPECT_EQ(Item(2).compensation, CompensationStatus::kNone);
  s = Commit(Result(s, "fan[0].charge", true, true));
  EXPECT_EQ(Item(0).compensation, CompensationStatus::kSucceeded);
  p = Result(s, "prep", true, true);
  EXPECT_THAT(Types(p),
              ElementsAre("compensation_succeeded", "saga_compensated"));
}

TEST_F(MapTransitionsTest, ItemsOverTheLimitFailTheStepWithKindLimit) {
  Use(OrdersDoc());
  max_items_ = 3;
  Saga s = Commit(Start(Orders(4)));
  Plan p = Result(s, "prep", true);
  EXPECT_THAT(Types(p), ElementsAre("step_succeeded", "step_failed",
                                    "saga_compensating", "attempt_started"));
  EXPECT_EQ(p.events[1].data["error"]["kind"], "limit");
  EXPECT_EQ(p.events[1].data["error"]["message"],
            "map.items: 4 items, more than limits.map_items allows (3)");
  EXPECT_THAT(Actions(p), ElementsAre("undo prep#1"));
  EXPECT_TRUE(p.items.empty());
}

TEST_F(MapTransitionsTest, AnOutputOverTheLimitFailsTheStepWithKindLimit) {
  Use(OrdersDoc());
  Saga s = Begin(2);
  s = Commit(Result(s, "fan[0].charge", true));
  PlanContext ctx = Ctx();
  ctx.max_output_bytes = 40;  // each item's output fits, both do not
  AttemptOutcome o{{"fan[1].charge", false, 1}, true, {{"done", "fan[1]"}}, {}};
  auto p = PlanAttemptResult(ctx, s, o);
  ASSERT_TRUE(p.has_value());
  EXPECT_THAT(Types(*p),
              ElementsAre("step_succeeded", "step_failed", "saga_compensating",
                          "attempt_started", "attempt_started"));
  EXPECT_EQ(p->events[1].data["error"]["kind"], "limit");
  EXPECT_THAT(p->events[1].data["error"]["message"].get<std::string>(),
              ::testing::HasSubstr("limits.output_bytes"));
  // Both items ran: both are undone.
  EXPECT_THAT(Actions(*p),
              ElementsAre("undo fan[1].charge#1", "undo fan[0].charge#1"));
}

TEST_F(MapTransitionsTest, ItemsThatAreNotAnArrayFailTheStep) {
  Use(OrdersDoc());
  Saga s = Commit(Start({{"orders", {{"a", 1}}}}));
  Plan p = Result(s, "prep", true);
  EXPECT_EQ(p.events[1].data["error"]["kind"], "template");
  EXPECT_EQ(p.events[1].data["error"]["message"],
            "map.items: must give an array, got an object");
  s = Commit(Start({{"nothing", 1}}));
  p = Result(s, "prep", true);
  EXPECT_EQ(p.events[1].data["error"]["message"],
            "map.items: ${input.orders}: input has no field 'orders'");
}

TEST_F(MapTransitionsTest, CancelLetsItemsInFlightFinishThenUndoesThem) {
  Use(OrdersDoc());
  Saga s = Begin(4);
  auto cancel = PlanCancel(Ctx(), s, true, "op");
  ASSERT_TRUE(cancel.ok());
  EXPECT_THAT(Actions(*cancel), IsEmpty());
  s = Commit(*cancel);
  // Nothing new starts while the cancel waits.
  Plan p = Result(s, "fan[0].charge", true);
  EXPECT_THAT(Actions(p), IsEmpty());
  s = Commit(p);
  p = Result(s, "fan[1].charge", true);
  EXPECT_THAT(Actions(p),
              ElementsAre("undo fan[1].charge#1", "undo fan[0].charge#1"));
  s = Commit(p);
  EXPECT_EQ(s.state, SagaState::kCancelling);
  EXPECT_EQ(Step(s, "fan").status, StepStatus::kCancelled);
  EXPECT_EQ(Item(0).status, StepStatus::kCancelled);
  EXPECT_EQ(Item(0).steps[0].status, StepStatus::kSucceeded);
  s = Commit(Result(s, "fan[1].charge", true, true));
  s = Commit(Result(s, "fan[0].charge", true, true));
  p = Result(s, "prep", true, true);
  EXPECT_THAT(Types(p),
              ElementsAre("compensation_succeeded", "saga_cancelled"));
}

// Found in review: an item that fails while a cancel waits fails the map
// once, and the items still going end with the saga, not `running`.
TEST_F(MapTransitionsTest, ItemsFailingWhileACancelWaitsEndWithTheSaga) {
  Use(OrdersDoc({{"max_concurrency", 3}}));
  Saga s = Begin(4);
  auto cancel = PlanCancel(Ctx(), s, true, "op");
  ASSERT_TRUE(cancel.ok());
  s = Commit(*cancel);
  Plan p = Result(s, "fan[0].charge", false);
  EXPECT_THAT(Types(p),
              ElementsAre("step_failed", "item_failed", "step_failed"));
  s = Commit(p);
  p = Result(s, "fan[1].charge", false);  // the map has failed already
  EXPECT_THAT(Types(p), ElementsAre("step_failed", "item_failed"));
  s = Commit(p);
  p = Result(s, "fan[2].charge", true);
  // Nothing in flight: the cancel undoes fan[2] and prep.
  EXPECT_THAT(Actions(p), ElementsAre("undo fan[2].charge#1"));
  s = Commit(p);
  EXPECT_EQ(s.state, SagaState::kCancelling);
  EXPECT_EQ(Step(s, "fan").status, StepStatus::kFailed);
  EXPECT_EQ(Step(s, "fan").map.running, 0u);
  EXPECT_EQ(Item(2).status, StepStatus::kCancelled);
  s = Commit(Result(s, "fan[2].charge", true, true));
  p = Result(s, "prep", true, true);
  EXPECT_THAT(Types(p),
              ElementsAre("compensation_succeeded", "saga_cancelled"));
  s = Commit(p);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_NE(Item(i).status, StepStatus::kRunning) << i;
  }
}

TEST_F(MapTransitionsTest, ReplayRerunsOnlyTheItemsThatDidNotFinish) {
  Use(OrdersDoc(json::object(), "park"));
  Saga s = Begin(4);
  s = Commit(Result(s, "fan[0].charge", true));  // fan[2] starts
  Plan p = Result(s, "fan[1].charge", false);
  EXPECT_THAT(Actions(p), ElementsAre("stop fan[2].charge#1", "finish"));
  ASSERT_TRUE(p.dlq_put.has_value());
  EXPECT_EQ(p.dlq_put->step, "fan");
  s = Commit(p);
  EXPECT_EQ(s.state, SagaState::kParked);
  auto replay = PlanReplay(Ctx(), s, "", false, "op");
  ASSERT_TRUE(replay.ok()) << replay.status().ToString();
  // fan[1] (failed) and fan[2] (stopped) run again, two at a time, their
  // attempt numbers going on (new keys); fan[0] succeeded and does not.
  EXPECT_THAT(Actions(*replay),
              ElementsAre("run fan[1].charge#2", "run fan[2].charge#2"));
  s = Commit(*replay);
  EXPECT_EQ(Item(0).status, StepStatus::kSucceeded);
  EXPECT_EQ(Step(s, "fan").map.failed, 0u);
  s = Commit(Result(s, "fan[1].charge", true, false, 2));  // fan[3] starts
  s = Commit(Result(s, "fan[2].charge", true, false, 2));
  p = Result(s, "fan[3].charge", true);
  EXPECT_THAT(Actions(p), ElementsAre("run notify#1"));
  EXPECT_EQ(Step(p.saga, "fan").output.size(), 4u);
}

TEST_F(MapTransitionsTest, ResultsThatArriveTogetherAreOneTransition) {
  Use(OrdersDoc());
  Saga s = Begin(5);
  std::vector<AttemptOutcome> both = {
      {{"fan[1].charge", false, 1}, true, "one", {}},
      {{"fan[0].charge", false, 1}, true, "zero", {}},
      {{"fan[0].charge", false, 1}, true, "again", {}}};  // stale by then
  std::vector<bool> applied;
  auto p = PlanAttemptResults(Ctx(), s, both, &applied);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(applied, (std::vector<bool>{true, true, false}));
  EXPECT_THAT(Types(*p), ElementsAre("step_succeeded", "attempt_started",
                                     "step_succeeded", "attempt_started"));
  EXPECT_THAT(Actions(*p),
              ElementsAre("run fan[2].charge#1", "run fan[3].charge#1"));
  EXPECT_THAT(ItemIndices(*p), ElementsAre(0u, 1u, 2u, 3u));
  s = Commit(*p);
  EXPECT_EQ(Item(0).steps[0].output, "zero");
  EXPECT_EQ(Step(s, "fan").map.succeeded, 2u);
  // None applies: no plan.
  EXPECT_FALSE(PlanAttemptResults(Ctx(), s, {both[2]}, &applied).has_value());
}

TEST_F(MapTransitionsTest, AnItemStartedAndStoppedInOnePlanNeverRunsOrUndoes) {
  Use(OrdersDoc());
  Saga s = Begin(4);
  // fan[0] succeeds (fan[2] starts), then fan[1] fails the map: fan[2]'s
  // attempt was never dispatched, so it is neither stopped nor undone.
  std::vector<AttemptOutcome> results = {
      {{"fan[0].charge", false, 1}, true, "zero", {}},
      {{"fan[1].charge", false, 1}, false, nullptr, {"http_404", "boom"}}};
  std::vector<bool> applied;
  auto p = PlanAttemptResults(Ctx(), s, results, &applied);
  ASSERT_TRUE(p.has_value());
  EXPECT_THAT(Actions(*p), ElementsAre("undo fan[0].charge#1"));
  s = Commit(*p);
  EXPECT_EQ(Item(2).status, StepStatus::kCancelled);
  EXPECT_TRUE(Item(2).steps[0].error.empty());
  EXPECT_EQ(Item(2).compensation, CompensationStatus::kNone);
}

// An item's steps may hold a parallel step: its branches run side by side
// within the item, and a failure in one stops the other branch of that
// item only (tolerated here).
TEST_F(MapTransitionsTest, AParallelStepInsideAnItemRunsPerItem) {
  json step = {{"action", "book"},
               {"compensate", {{"action", "book"}}},
               {"retry", {{"max_attempts", 1}}}};
  json a = step, b = step;
  a["name"] = "a";
  b["name"] = "b";
  json both = {
      {"name", "both"},
      {"parallel",
       {{"branches",
         {{"x", std::vector<json>{a}}, {"y", std::vector<json>{b}}}}}}};
  Use({{"name", "orders"},
       {"version", 1},
       {"steps", std::vector<json>{{{"name", "fan"},
                                    {"map",
                                     {{"items", "${input.orders}"},
                                      {"max_concurrency", 1},
                                      {"tolerated_failures", 1},
                                      {"steps", std::vector<json>{both}}}}}}}});
  Plan p = Start(Orders(2));
  EXPECT_THAT(Actions(p),
              ElementsAre("run fan[0].both.x.a#1", "run fan[0].both.y.b#1"));
  Saga s = Commit(p);
  s = Commit(Result(s, "fan[0].both.x.a", true));
  p = Result(s, "fan[0].both.y.b", true);
  // Item 0 is done: its parallel step's output is both branches'; item 1
  // starts.
  EXPECT_THAT(Actions(p),
              ElementsAre("run fan[1].both.x.a#1", "run fan[1].both.y.b#1"));
  s = Commit(p);
  EXPECT_EQ(Item(0).status, StepStatus::kSucceeded);
  EXPECT_EQ(Item(0).steps[0].output,
            (json{{"x", {{"done", "fan[0].both.x.a"}}},
                  {"y", {{"done", "fan[0].both.y.b"}}}}));
  // Item 1's branch x fails: its branch y is stopped, the map goes on,
  // and the saga completes without waiting for y's attempt, which it
  // abandons (a tolerated item is not undone).
  p = Result(s, "fan[1].both.x.a", false);
  EXPECT_THAT(Types(p),
              ElementsAre("step_failed", "step_stopped", "item_failed",
                          "step_succeeded", "step_failed", "saga_completed"));
  EXPECT_EQ(p.events[4].data["step"], "fan[1].both.y.b");
  EXPECT_EQ(p.events[4].data["stopped"], true);
  s = Commit(p);
  EXPECT_EQ(Item(1).status, StepStatus::kFailed);
  EXPECT_EQ(Item(1).steps[0].status, StepStatus::kFailed);
  EXPECT_EQ(Item(1).steps[2].error.kind, kAbandonedErrorKind);
  EXPECT_EQ(Step(s, "fan").output[0]["x"], (json{{"done", "fan[0].both.x.a"}}));
  EXPECT_EQ(Step(s, "fan").output[1]["error"]["message"], "boom");
}

// A map step may sit in a parallel step's branch: its paths carry the
// branch's, and its failure stops the other branch.
TEST_F(MapTransitionsTest, AMapInsideABranchStopsTheOtherBranchWhenItFails) {
  json charge = {{"name", "charge"},
                 {"action", "book"},
                 {"compensate", {{"action", "book"}}},
                 {"retry", {{"max_attempts", 1}}}};
  json fan = {
      {"name", "fan"},
      {"map",
       {{"items", "${input.orders}"}, {"steps", std::vector<json>{charge}}}}};
  json other = {{"name", "other"},
                {"action", "book"},
                {"compensate", {{"action", "book"}}}};
  Use({{"name", "orders"},
       {"version", 1},
       {"steps",
        std::vector<json>{{{"name", "p"},
                           {"parallel",
                            {{"branches",
                              {{"m", std::vector<json>{fan}},
                               {"o", std::vector<json>{other}}}}}}}}}});
  map_ = def_.StepAtPath("p.m.fan");
  Plan p = Start(Orders(2));
  EXPECT_THAT(Actions(p),
              ElementsAre("run p.m.fan[0].charge#1", "run p.m.fan[1].charge#1",
                          "run p.o.other#1"));
  Saga s = Commit(p);
  s = Commit(Result(s, "p.m.fan[0].charge", true));
  p = Result(s, "p.m.fan[1].charge", false);
  // Undone side by side: branch m (its map's item 0) now, branch o once
  // its stopped attempt's result is in.
  EXPECT_THAT(Actions(p),
              ElementsAre("stop p.o.other#1", "undo p.m.fan[0].charge#1"));
  s = Commit(p);
  EXPECT_EQ(Step(s, "p").status, StepStatus::kFailed);
  EXPECT_EQ(Step(s, "p.m.fan").status, StepStatus::kFailed);
  p = Result(s, "p.o.other", false, false, 1, "timeout");
  EXPECT_THAT(Actions(p), ElementsAre("undo p.o.other#1"));
}

TEST_F(MapTransitionsTest, SnapshotSizeDoesNotGrowWithTheNumberOfItems) {
  Use(OrdersDoc());
  // The input holds the items, so it is left out of the comparison.
  auto snapshot_without_input = [&](int n) {
    items_.clear();
    Saga s = Begin(n);
    Plan p = Result(s, "fan[0].charge", true);
    size_t item_bytes = 0;
    for (const auto& [ref, write] : p.items) {
      item_bytes += EncodeItem(ItemToJson(write.state)).size();
    }
    p.saga.input = nullptr;
    return std::make_pair(EncodeSnapshot(p.saga).size(), item_bytes);
  };
  const auto small = snapshot_without_input(10);
  const auto large = snapshot_without_input(10000);
  // A few bytes for the counters' widths, never per item.
  EXPECT_LE(large.first, small.first + 16);
  EXPECT_EQ(large.second, small.second);
}

}  // namespace
}  // namespace cde
