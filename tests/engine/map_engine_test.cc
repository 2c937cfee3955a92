// A map step on a real engine and loop: items run side by side with their
// item and index, each item's state is a row of its own in the store, the
// step's output is the items' outputs in order, a failed item undoes the
// items that ran, and items in flight resume after a restart with the same
// idempotency keys.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "tests/engine/engine_harness.h"
#include "tests/storage/held_writes_store.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using test::HeldAction;

// fan: map over input.orders of [charge] (action `action`), then after.
json FanWorkflow(const std::string& action, json extra = json::object()) {
  json charge = {{"name", "charge"},
                 {"action", action},
                 {"params", {{"order", "${item}"}, {"i", "${index}"}}},
                 {"retry", {{"max_attempts", 1}}},
                 {"compensate", {{"action", "undo"}}}};
  json map = {{"items", "${input.orders}"},
              {"max_concurrency", 2},
              {"steps", std::vector<json>{charge}}};
  map.update(extra);
  return {{"name", "fan"},
          {"version", 1},
          {"steps",
           std::vector<json>{{{"name", "fan"}, {"map", map}},
                             {{"name", "after"},
                              {"action", "echo"},
                              {"params", {{"all", "${steps.fan.output}"}}}}}}};
}

json OrderNames(int n) {
  std::vector<json> orders;
  for (int i = 0; i < n; ++i) orders.push_back("o" + std::to_string(i));
  return {{"orders", orders}};
}

NativeAction Recorder(std::vector<std::string>* calls) {
  return [calls](const AttemptRequest& r, ActionDone done) {
    calls->push_back(r.step);
    done(ActionResult::Success(json::object()));
  };
}

TEST(MapEngineTest, ItemsRunWithTheirItemAndIndexAndTheOutputIsInOrder) {
  HeldAction held;
  std::vector<std::string> undone;
  EngineHarness h;
  ASSERT_OK(
      h.Open("", {{"held", held.AsAction()}, {"undo", Recorder(&undone)}}));
  ASSERT_OK(h.Register(FanWorkflow("held")).status());
  auto started = h.Start({.workflow = "fan", .input = OrderNames(3)});
  ASSERT_OK(started.status());
  const std::string id = started->saga_id;
  // Two at a time.
  ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 2; }));
  auto requests = held.requests();
  EXPECT_EQ(requests[0].step, "fan[0].charge");
  EXPECT_EQ(requests[1].step, "fan[1].charge");
  EXPECT_EQ(requests[1].params, (json{{"order", "o1"}, {"i", 1}}));
  EXPECT_EQ(requests[1].idempotency_key, id + "/fan[1].charge/1");
  ASSERT_TRUE(held.Complete(ActionResult::Success("c0")));
  ASSERT_TRUE(h.RunUntil([&] { return held.calls() == 3; }));
  EXPECT_EQ(held.requests()[2].params, (json{{"order", "o2"}, {"i", 2}}));
  ASSERT_TRUE(held.Complete(ActionResult::Success("c1")));
  ASSERT_TRUE(held.Complete(ActionResult::Success("c2")));
  auto rec = h.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
  EXPECT_EQ(rec->body["steps"][0]["output"], (json{"c0", "c1", "c2"}));
  EXPECT_EQ(rec->body["steps"][2]["output"]["all"], (json{"c0", "c1", "c2"}));
  EXPECT_TRUE(undone.empty());
  // Each item is a row of its own; the snapshot holds counters.
  auto items = h.engine().store().ReadItems(id);
  ASSERT_OK(items.status());
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ((*items)[2].map_path, "fan");
  EXPECT_EQ((*items)[2].body["status"], "succeeded");
  EXPECT_EQ(rec->body["steps"][0]["map"]["items"], 3);
  EXPECT_EQ(rec->body["steps"][0]["map"]["succeeded"], 3);
  const std::vector<std::string> log = h.LogTypes(id);
  EXPECT_NE(std::find(log.begin(), log.end(), "map_started"), log.end());
  // The items are one series per step in the metrics, not one per item.
  const std::string metrics = h.engine().metrics().Render();
  EXPECT_NE(metrics.find("step=\"fan.charge\""), std::string::npos);
  EXPECT_EQ(metrics.find("fan[1]"), std::string::npos);
  ASSERT_OK(h.Close());
}

TEST(MapEngineTest, AFailedItemStopsTheOthersAndUndoesWhatRan) {
  HeldAction held;
  std::vector<std::string> undone;
  EngineHarness h;
  ASSERT_OK(
      h.Open("", {{"held", held.AsAction()}, {"undo", Recorder(&undone)}}));
  ASSERT_OK(h.Register(FanWorkflow("held")).status());
  auto started = h.Start({.workflow = "fan", .input = OrderNames(4)});
  ASSERT_OK(started.status());
  const std::string id = started->saga_id;
  ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 2; }));
  ASSERT_TRUE(held.Complete(ActionResult::Success("c0")));  // fan[2] starts
  ASSERT_TRUE(h.RunUntil([&] { return held.calls() == 3; }));
  ASSERT_TRUE(held.Complete(ActionResult::Failure("declined", "no funds")));
  // fan[0] succeeded: undone at once. fan[2] is in flight: its undo waits
  // for its result, whatever it is.
  ASSERT_TRUE(h.RunUntil([&] { return undone.size() == 1; }));
  ASSERT_TRUE(h.Settle());
  EXPECT_EQ(undone, std::vector<std::string>{"fan[0].charge"});
  EXPECT_EQ(held.pending(), 1u);
  ASSERT_TRUE(held.Complete(ActionResult::Success("c2")));
  auto rec = h.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompensated);
  // fan[1] failed and fan[3] never started: nothing to undo.
  EXPECT_EQ(undone,
            (std::vector<std::string>{"fan[0].charge", "fan[2].charge"}));
  EXPECT_EQ(rec->body["steps"][0]["status"], "failed");
  EXPECT_EQ(rec->body["steps"][0]["error"]["message"],
            "item 1 (fan[1].charge) failed: no funds");
  auto items = h.engine().store().ReadItems(id);
  ASSERT_OK(items.status());
  ASSERT_EQ(items->size(), 3u);  // fan[3] never started: no row
  EXPECT_EQ((*items)[2].body["status"], "cancelled");
  EXPECT_EQ((*items)[2].body["steps"][0]["status"], "succeeded");
  EXPECT_EQ((*items)[2].body["compensation"], "succeeded");
  ASSERT_OK(h.Close());
}

// Results that arrive while a transition commits are planned together, as
// one transition, but never ahead of an event queued after the first of
// them: a result that arrives after a cancel is planned after the cancel,
// and so starts no new item.
TEST(MapEngineTest, AResultArrivingAfterACancelIsPlannedAfterIt) {
  HeldAction held;
  std::vector<std::string> undone;
  auto store = std::make_unique<test::HeldWritesStore>(NewMemoryStore());
  test::HeldWritesStore& writes = *store;
  EngineOptions options;
  options.store = std::move(store);
  options.data_dir = "unused: the store is given";
  options.actions = {{"held", held.AsAction()}, {"undo", Recorder(&undone)}};
  EngineHarness h;
  ASSERT_OK(h.Open(std::move(options)));
  ASSERT_OK(h.Register(FanWorkflow("held", {{"max_concurrency", 3}})).status());
  auto started = h.Start({.workflow = "fan", .input = OrderNames(10)});
  ASSERT_OK(started.status());
  const std::string id = started->saga_id;
  ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 3; }));

  // Item 0's result commits (and would start item 3), held in the store.
  writes.Hold();
  ASSERT_TRUE(held.Complete(ActionResult::Success(json::object())));
  ASSERT_TRUE(h.RunUntil([&] { return writes.waiting() == 1; }));
  // Item 1's result arrives meanwhile: a batch, queued behind the commit.
  // (A NOWAIT turn of the loop runs what was posted to it, and no more.)
  ASSERT_TRUE(held.Complete(ActionResult::Success(json::object())));
  uv_run(h.loop(), UV_RUN_NOWAIT);
  // Then a cancel, then item 2's result: it must not join item 1's batch.
  std::optional<Result<SagaState>> cancelled;
  h.engine().Cancel(id, true, "",
                    [&](Result<SagaState> r) { cancelled.emplace(r); });
  ASSERT_TRUE(held.Complete(ActionResult::Success(json::object())));
  uv_run(h.loop(), UV_RUN_NOWAIT);
  writes.Release();

  // Item 3 (started by item 0) and item 4 (by item 1, planned before the
  // cancel) run; item 2's result, planned after the cancel, starts none.
  ASSERT_TRUE(h.RunUntil([&] { return cancelled.has_value(); }));
  ASSERT_OK(cancelled->status());
  while (h.engine().FindActive(id) != nullptr) {
    ASSERT_TRUE(h.RunUntil([&] {
      return held.pending() > 0 || h.engine().FindActive(id) == nullptr;
    }));
    if (held.pending() > 0) {
      ASSERT_TRUE(held.Complete(ActionResult::Success(json::object())));
    }
  }
  EXPECT_EQ(held.calls(), 5u);
  auto rec = h.engine().store().GetSaga(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCancelled);
  EXPECT_EQ(rec->body["steps"][0]["map"]["started"], 5) << rec->body.dump();
  EXPECT_EQ(undone.size(), 5u);  // every item that ran is undone
}

TEST(MapEngineTest, ItemsInFlightResumeAfterARestartWithTheSameKeys) {
  test::TempDir dir;
  std::string id;
  std::vector<std::string> undone;
  {
    HeldAction first;
    EngineHarness h;
    ASSERT_OK(h.Open(
        dir.path(), {{"held", first.AsAction()}, {"undo", Recorder(&undone)}}));
    ASSERT_OK(h.Register(FanWorkflow("held")).status());
    auto started = h.Start({.workflow = "fan", .input = OrderNames(3)});
    ASSERT_OK(started.status());
    id = started->saga_id;
    ASSERT_TRUE(h.RunUntil([&] { return first.pending() == 2; }));
    ASSERT_TRUE(first.Complete(ActionResult::Success("c0")));
    ASSERT_TRUE(h.RunUntil([&] { return first.calls() == 3; }));
    ASSERT_OK(h.Close());
  }
  HeldAction second;
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path(),
                   {{"held", second.AsAction()}, {"undo", Recorder(&undone)}}));
  ASSERT_TRUE(h.RunUntil([&] { return second.pending() == 2; }));
  std::vector<std::string> keys;
  for (const AttemptRequest& r : second.requests()) {
    keys.push_back(r.idempotency_key);
  }
  std::sort(keys.begin(), keys.end());
  // Item 0 finished before the restart and does not run again.
  EXPECT_EQ(keys, (std::vector<std::string>{id + "/fan[1].charge/1",
                                            id + "/fan[2].charge/1"}));
  EXPECT_EQ(second.requests()[0].params["order"],
            "o" + second.requests()[0].step.substr(4, 1));
  ASSERT_TRUE(second.Complete(ActionResult::Success("x")));
  ASSERT_TRUE(second.Complete(ActionResult::Success("y")));
  auto rec = h.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
  EXPECT_EQ(rec->body["steps"][0]["output"][0], "c0");
  EXPECT_TRUE(undone.empty());
  ASSERT_OK(h.Close());
}

TEST(MapEngineTest, PurgingAParkedMapSagaRemovesItsItems) {
  std::vector<std::string> undone;
  EngineHarness h;
  ASSERT_OK(h.Open("", {{"undo", Recorder(&undone)}}));
  json def = FanWorkflow("fail");
  def["on_failure"] = "park";
  def["steps"][0]["map"]["steps"][0]["params"] = {{"kind", "declined"}};
  ASSERT_OK(h.Register(def).status());
  auto started = h.Start({.workflow = "fan", .input = OrderNames(3)});
  ASSERT_OK(started.status());
  const std::string id = started->saga_id;
  auto rec = h.AwaitInactive(id);
  ASSERT_OK(rec.status());
  ASSERT_EQ(rec->state, SagaState::kParked);
  auto items = h.engine().store().ReadItems(id);
  ASSERT_OK(items.status());
  EXPECT_FALSE(items->empty());
  bool purged = false;
  h.engine().PurgeDlq(id, "op", [&](Result<DlqRecord> r) {
    EXPECT_OK(r.status());
    purged = true;
  });
  ASSERT_TRUE(h.RunUntil([&] { return purged; }));
  items = h.engine().store().ReadItems(id);
  ASSERT_OK(items.status());
  EXPECT_TRUE(items->empty());
  ASSERT_OK(h.Close());
}

TEST(MapEngineTest, TheShippedBatchNotifyExampleToleratesOneFailureInTen) {
  json def;
  std::ifstream(std::string(CDE_EXAMPLES_DIR) + "/batch-notify.json") >> def;
  EngineHarness h;
  ASSERT_OK(h.Open(""));
  ASSERT_OK(h.Register(def).status());
  std::vector<json> recipients;
  for (int i = 0; i < 10; ++i) {
    recipients.push_back(
        {{"name", "r" + std::to_string(i)},
         {"address", i == 3 ? "" : "r" + std::to_string(i) + "@example.org"}});
  }
  auto started = h.Start(
      {.workflow = "batch-notify", .input = {{"recipients", recipients}}});
  ASSERT_OK(started.status());
  auto rec = h.AwaitInactive(started->saga_id);
  ASSERT_OK(rec.status());
  ASSERT_EQ(rec->state, SagaState::kCompleted) << rec->body.dump();
  const json& sent = rec->body["steps"].back()["output"]["sent"];
  ASSERT_EQ(sent.size(), 10u);
  EXPECT_EQ(sent[3]["error"]["kind"], "exit_code:1");
  EXPECT_EQ(sent[4]["to"], "r4@example.org");
  EXPECT_EQ(sent[4]["text"], "Hello r4, you are number 4");
  // Its example input runs as well.
  auto example =
      h.Start({.workflow = "batch-notify", .input = def["examples"][0]});
  ASSERT_OK(example.status());
  auto done = h.AwaitInactive(example->saga_id);
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state, SagaState::kCompleted);
  ASSERT_OK(h.Close());
}

}  // namespace
}  // namespace cde
