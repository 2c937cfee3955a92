// The dead-letter queue's automatic redrive (dlq.auto_replay): a parked
// saga is replayed by a durable timer, at most max_replays times, and an
// operator's replay or purge cancels the pending one.
#include <gmock/gmock.h>

#include "engine/engine.h"
#include "tests/engine/engine_harness.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using ::testing::Contains;

// A step that fails its first `failures` calls, then succeeds.
NativeAction Flaky(int* calls, int failures) {
  return [calls, failures](const AttemptRequest&, ActionDone done) {
    if ((*calls)++ < failures) {
      done(ActionResult::Failure("down", "not yet"));
    } else {
      done(ActionResult::Success(nullptr));
    }
  };
}

json Parking(int max_replays, int after_ms) {
  return {{"name", "parking"},
          {"version", 1},
          {"on_failure", "park"},
          {"dlq",
           {{"auto_replay",
             {{"max_replays", max_replays}, {"after_ms", after_ms}}}}},
          {"steps",
           {{{"name", "call"},
             {"action", "flaky"},
             {"retry", {{"max_attempts", 1}}}}}}};
}

int CountEvents(EngineHarness& h, const std::string& id,
                const std::string& type) {
  int n = 0;
  for (const std::string& t : h.LogTypes(id)) n += t == type;
  return n;
}

TEST(DlqAutoReplayTest, RedrivesAParkedSagaUntilItCompletes) {
  int calls = 0;
  EngineHarness h;
  ASSERT_OK(h.Open("", {{"flaky", Flaky(&calls, 2)}}));
  ASSERT_OK(h.Register(Parking(3, 20)).status());
  auto r = h.Start({.workflow = "parking"});
  ASSERT_OK(r.status());
  auto done = h.AwaitStored(r->saga_id, SagaState::kCompleted);
  ASSERT_OK(done.status());
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(CountEvents(h, r->saga_id, "saga_parked"), 2);
  EXPECT_EQ(CountEvents(h, r->saga_id, "replayed"), 2);
  EXPECT_EQ(done->body["replay_count"], 2);
  ASSERT_OK(h.Close());
}

TEST(DlqAutoReplayTest, StopsAfterMaxReplaysAndStaysParked) {
  int calls = 0;
  EngineHarness h;
  ASSERT_OK(h.Open("", {{"flaky", Flaky(&calls, 1000)}}));
  ASSERT_OK(h.Register(Parking(2, 10)).status());
  auto r = h.Start({.workflow = "parking"});
  ASSERT_OK(r.status());
  ASSERT_TRUE(h.RunUntil([&] { return calls == 3; }));
  h.RunUntil([] { return false; }, 200);  // no fourth attempt comes
  EXPECT_EQ(calls, 3);
  auto rec = h.AwaitStored(r->saga_id, SagaState::kParked);
  ASSERT_OK(rec.status());
  EXPECT_FALSE(rec->body.contains("wait"));  // no redrive pending
  auto dlq = h.engine().store().GetDlq(r->saga_id);
  ASSERT_OK(dlq.status());
  EXPECT_EQ(dlq->replay_count, 2u);
  auto timers = h.engine().store().DueTimers(INT64_MAX, 100);
  ASSERT_OK(timers.status());
  EXPECT_TRUE(timers->empty());
  ASSERT_OK(h.Close());
}

TEST(DlqAutoReplayTest, PendingRedriveSurvivesARestart) {
  test::TempDir dir;
  std::string id;
  {
    int calls = 0;
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"flaky", Flaky(&calls, 1)}}));
    // Due in 3 s: the engine closes long before, even on a slow machine.
    ASSERT_OK(h.Register(Parking(1, 3000)).status());
    auto r = h.Start({.workflow = "parking"});
    ASSERT_OK(r.status());
    id = r->saga_id;
    ASSERT_OK(h.AwaitStored(id, SagaState::kParked).status());
    ASSERT_OK(h.Close());  // before the redrive falls due
  }
  int calls = 1;  // the new process' action succeeds
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path(), {{"flaky", Flaky(&calls, 1)}}));
  auto done = h.AwaitStored(id, SagaState::kCompleted);
  ASSERT_OK(done.status());
  EXPECT_THAT(h.LogTypes(id), Contains("replayed"));
  ASSERT_OK(h.Close());
}

TEST(DlqAutoReplayTest, ManualReplayOrPurgeCancelsThePendingRedrive) {
  int calls = 0;
  EngineHarness h;
  ASSERT_OK(h.Open("", {{"flaky", Flaky(&calls, 1)}}));
  ASSERT_OK(h.Register(Parking(5, 60000)).status());
  auto a = h.Start({.workflow = "parking"});
  ASSERT_OK(a.status());
  ASSERT_OK(h.AwaitInactive(a->saga_id).status());  // parked
  ASSERT_OK(h.Replay(a->saga_id).status());
  ASSERT_OK(h.AwaitStored(a->saga_id, SagaState::kCompleted).status());

  calls = 0;  // fails once more: parks again
  auto b = h.Start({.workflow = "parking"});
  ASSERT_OK(b.status());
  ASSERT_OK(h.AwaitInactive(b->saga_id).status());
  std::optional<Result<DlqRecord>> purged;
  h.engine().PurgeDlq(b->saga_id, "ops",
                      [&](Result<DlqRecord> r) { purged = r; });
  ASSERT_TRUE(h.RunUntil([&] { return purged.has_value(); }));
  ASSERT_OK(purged->status());
  auto timers = h.engine().store().DueTimers(INT64_MAX, 100);
  ASSERT_OK(timers.status());
  EXPECT_TRUE(timers->empty());
  ASSERT_OK(h.Close());
}

}  // namespace
}  // namespace cde
