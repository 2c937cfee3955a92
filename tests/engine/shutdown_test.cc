// Graceful shutdown: running attempts get a grace period, those still
// running after it are checkpointed and resumed first by the next Open, new
// work is refused meanwhile, and the store closes with nothing left in the
// WAL to replay.
#include <gmock/gmock.h>

#include <filesystem>

#include "engine/engine.h"
#include "tests/engine/engine_harness.h"
#include "tests/storage/held_writes_store.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using test::HeldAction;
using test::HeldWritesStore;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsSupersetOf;
using ::testing::Not;

using test::Workflow;

json HeldSteps(int n) {
  json steps = json::array();
  for (int i = 0; i < n; ++i) {
    steps.push_back({{"name", "s" + std::to_string(i)}, {"action", "held"}});
  }
  return steps;
}

// Every WAL file RocksDB left in `dir` is empty: the next open replays
// nothing.
void ExpectNoWalToReplay(const std::string& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".log") continue;
    EXPECT_EQ(std::filesystem::file_size(e.path()), 0u) << e.path();
  }
}

TEST(GracefulShutdownTest, AttemptsThatFinishWithinTheGraceAreCommitted) {
  test::TempDir dir;
  HeldAction held;
  std::vector<std::string> ids;
  Status refused;
  {
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"held", held.AsAction()}}));
    ASSERT_OK(h.Register(Workflow("one", HeldSteps(1))).status());
    for (int i = 0; i < 3; ++i) {
      auto r = h.Start({.workflow = "one"});
      ASSERT_OK(r.status());
      ids.push_back(r->saga_id);
    }
    ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 3; }));
    ASSERT_OK(h.Close({.grace_ms = 10000}, [&] {
      h.engine().Start({.workflow = "one"},
                       [&](Result<StartResult> r) { refused = r.status(); });
      while (held.Complete(ActionResult::Success({{"done", true}}))) {
      }
    }));
  }
  EXPECT_EQ(refused.code(), Status::Code::kShutdownInProgress)
      << refused.ToString();
  ExpectNoWalToReplay(dir.path());
  // Nothing runs again: every result was committed before the close.
  HeldAction after;
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path(), {{"held", after.AsAction()}}));
  for (const std::string& id : ids) {
    auto rec = h.AwaitInactive(id);
    ASSERT_OK(rec.status());
    EXPECT_EQ(rec->state, SagaState::kCompleted);
    EXPECT_THAT(h.LogTypes(id), Not(Contains("checkpoint")));
  }
  EXPECT_EQ(after.calls(), 0u);
}

TEST(GracefulShutdownTest, AttemptsStillRunningAreCheckpointedAndResumeFirst) {
  test::TempDir dir;
  HeldAction held;
  std::string moved_on, cut_off;
  {
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"held", held.AsAction()}}));
    ASSERT_OK(h.Register(Workflow("two", HeldSteps(2))).status());
    // Started first, so recovery would resume it first on id order alone.
    auto a = h.Start({.workflow = "two"});
    ASSERT_OK(a.status());
    ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 1; }));
    auto b = h.Start({.workflow = "two"});
    ASSERT_OK(b.status());
    ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 2; }));
    moved_on = a->saga_id;
    cut_off = b->saga_id;
    // a's first step finishes during the grace period; its second is logged
    // but not dispatched. b's attempt outlives the grace period.
    // A grace long enough for a's result to arrive on a loaded machine.
    ASSERT_OK(h.Close({.grace_ms = 2000}, [&] {
      ASSERT_TRUE(held.Complete(ActionResult::Success(nullptr)));
    }));
    EXPECT_EQ(held.calls(), 2u);
  }
  ExpectNoWalToReplay(dir.path());
  std::vector<std::string> order;
  NativeAction record = [&](const AttemptRequest& r, ActionDone done) {
    order.push_back(r.idempotency_key);
    done(ActionResult::Success(nullptr));
  };
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path(), {{"held", record}}));
  for (const std::string& id : {moved_on, cut_off}) {
    auto rec = h.AwaitInactive(id);
    ASSERT_OK(rec.status());
    EXPECT_EQ(rec->state, SagaState::kCompleted);
    EXPECT_FALSE(rec->body.contains("checkpointed"));
  }
  ASSERT_GE(order.size(), 2u);
  EXPECT_EQ(order[0], cut_off + "/s0/1");  // the checkpointed attempt, again
  EXPECT_EQ(order[1], moved_on + "/s1/1");
  EXPECT_THAT(h.LogTypes(cut_off), Contains("checkpoint"));
  EXPECT_THAT(h.LogTypes(moved_on), Not(Contains("checkpoint")));
}

TEST(GracefulShutdownTest, NoGraceCheckpointsAtOnce) {
  test::TempDir dir;
  HeldAction held;
  std::string id;
  {
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"held", held.AsAction()}}));
    ASSERT_OK(h.Register(Workflow("one", HeldSteps(1))).status());
    auto r = h.Start({.workflow = "one"});
    ASSERT_OK(r.status());
    id = r->saga_id;
    ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 1; }));
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_OK(h.Close({.grace_ms = 0}, nullptr));
    // The held attempt never ends: without the checkpoint, Close would not.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  }
  EngineHarness h;
  HeldAction after;
  ASSERT_OK(h.Open(dir.path(), {{"held", after.AsAction()}}));
  ASSERT_TRUE(h.RunUntil([&] { return after.pending() == 1; }));
  EXPECT_EQ(after.requests()[0].idempotency_key, id + "/s0/1");
  EXPECT_THAT(h.LogTypes(id), Contains("checkpoint"));
  ASSERT_TRUE(after.Complete(ActionResult::Success(nullptr)));
  auto rec = h.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
}

// A cancel that arrives while a saga's commit is in flight waits for it. If
// that commit fails, the cancel still gets its answer: the store's refusal.
TEST(QueuedEventsTest, ACancelQueuedBehindAFailedCommitIsAnswered) {
  HeldAction held;
  auto store = std::make_unique<HeldWritesStore>(NewMemoryStore());
  HeldWritesStore& writes = *store;
  EngineHarness h;
  EngineOptions options;
  options.store = std::move(store);
  options.actions = {{"held", held.AsAction()}};
  options.data_dir = "unused: the store is given";
  ASSERT_OK(h.Open(std::move(options)));
  ASSERT_OK(h.Register(Workflow("two", HeldSteps(2))).status());
  auto started = h.Start({.workflow = "two"});
  ASSERT_OK(started.status());
  ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 1; }));

  writes.Hold();
  ASSERT_TRUE(held.Complete(ActionResult::Success(nullptr)));
  ASSERT_TRUE(h.RunUntil([&] { return writes.waiting() == 1; }));
  std::optional<Result<SagaState>> cancelled;
  h.engine().Cancel(started->saga_id, true, "",
                    [&](Result<SagaState> r) { cancelled.emplace(r); });
  EXPECT_FALSE(cancelled.has_value()) << "the cancel waits for the commit";
  writes.Release(Status::IOError("injected: the disk failed"));

  ASSERT_TRUE(h.RunUntil([&] { return cancelled.has_value(); }))
      << "the queued cancel was never answered";
  EXPECT_FALSE(cancelled->ok());
  EXPECT_NE(cancelled->status().ToString().find("injected"), std::string::npos)
      << cancelled->status().ToString();
  EXPECT_EQ(held.calls(), 1u) << "nothing runs after a failed commit";
}

// A cancel that arrives while a shutdown's checkpoint commits is answered
// once the checkpoint has landed, and what it recorded survives: the saga
// is cancelled once the attempt it interrupted has run again.
TEST(QueuedEventsTest, ACancelDuringACheckpointIsAnsweredAndKept) {
  test::TempDir dir;
  HeldAction held;
  std::string id;
  std::optional<Result<SagaState>> cancelled;
  {
    auto rocks = OpenRocksStore({.path = dir.path()});
    ASSERT_OK(rocks.status());
    auto store = std::make_unique<HeldWritesStore>(std::move(rocks).value());
    HeldWritesStore& writes = *store;
    EngineHarness h;
    EngineOptions options;
    options.store = std::move(store);
    options.actions = {{"held", held.AsAction()}};
    options.data_dir = dir.path();
    ASSERT_OK(h.Open(std::move(options)));
    ASSERT_OK(h.Register(Workflow("two", HeldSteps(2))).status());
    auto started = h.Start({.workflow = "two"});
    ASSERT_OK(started.status());
    id = started->saga_id;
    ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 1; }));

    writes.Hold();
    ASSERT_OK(h.Close({.grace_ms = 0}, [&] {
      // The checkpoint of the running attempt is being written.
      ASSERT_TRUE(h.RunUntil([&] { return writes.waiting() == 1; }));
      h.engine().Cancel(id, true, "operator",
                        [&](Result<SagaState> r) { cancelled.emplace(r); });
      EXPECT_FALSE(cancelled.has_value());
      writes.Release();
    }));
  }
  ASSERT_TRUE(cancelled.has_value())
      << "the shutdown finished without answering the cancel";
  ASSERT_OK(cancelled->status());
  // An attempt in flight is not cut off by a cancel: it is asked for, and
  // acted on when the attempt's result comes.
  EXPECT_EQ(**cancelled, SagaState::kRunning);

  HeldAction after;
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path(), {{"held", after.AsAction()}}));
  ASSERT_TRUE(h.RunUntil([&] { return after.pending() == 1; }));
  EXPECT_EQ(after.requests()[0].idempotency_key, id + "/s0/1");
  ASSERT_TRUE(after.Complete(ActionResult::Success(nullptr)));
  auto rec = h.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCancelled);
  EXPECT_THAT(h.LogTypes(id), IsSupersetOf({"checkpoint", "cancel_requested"}));
  EXPECT_EQ(after.calls(), 1u) << "s1 never runs: the saga was cancelled";
}

}  // namespace
}  // namespace cde
