// Sagas that leave memory while they wait on far timers (Dormancy), driven
// by the engine on a ManualClock: whatever state they wait in, their timer
// brings them back; one whose rows stopped reading meanwhile is set aside
// (parked as poison) when it falls due, once, instead of being tried again
// at every scan.
#include <gmock/gmock.h>

#include <nlohmann/json.hpp>

#include "engine/clock.h"
#include "engine/engine.h"
#include "engine/kinds.h"
#include "engine/saga.h"
#include "storage/keys.h"
#include "storage/transition.h"
#include "tests/engine/engine_harness.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using ::testing::HasSubstr;

constexpr int64_t kTimerWindowMs = 60'000;
constexpr int64_t kBeyondWindowMs =
    10 * kTimerWindowMs;  // a backoff or sleep beyond it

json FixedRetry(int attempts, int64_t backoff_ms) {
  return {{"max_attempts", attempts},
          {"initial_backoff_ms", backoff_ms},
          {"max_backoff_ms", backoff_ms},
          {"jitter", 0}};
}

Status OpenWithWindow(EngineHarness& h, std::shared_ptr<ManualClock> clock,
                      std::map<std::string, NativeAction> actions) {
  EngineOptions options;
  options.data_dir = "";  // a memory store
  options.clock = std::move(clock);
  options.timer_window_ms = kTimerWindowMs;
  options.actions = std::move(actions);
  return h.Open(std::move(options));
}

// A compensation retried after a backoff beyond the window: the saga leaves
// memory compensating, and its timer brings it back to finish the undo.
TEST(DormantSagaTest, ACompensatingSagaOnAFarBackoffComesBackAndFinishes) {
  auto clock = std::make_shared<ManualClock>();
  int undo_calls = 0;
  NativeAction ok = [](const AttemptRequest&, ActionDone done) {
    done(ActionResult::Success(nullptr));
  };
  NativeAction fail = [](const AttemptRequest&, ActionDone done) {
    done(ActionResult::Failure("down", "no"));
  };
  NativeAction flaky_undo = [&](const AttemptRequest&, ActionDone done) {
    ++undo_calls;
    done(undo_calls == 1 ? ActionResult::Failure("busy", "later")
                         : ActionResult::Success(nullptr));
  };
  EngineHarness h;
  ASSERT_OK(OpenWithWindow(h, clock,
                           {{"ok", ok}, {"fail", fail}, {"undo", flaky_undo}}));
  ASSERT_OK(h.Register(test::Workflow(
                           "undo-later",
                           {{{"name", "a"},
                             {"action", "ok"},
                             {"compensate",
                              {{"action", "undo"},
                               {"retry", FixedRetry(2, kBeyondWindowMs)}}}},
                            {{"name", "b"},
                             {"action", "fail"},
                             {"retry", FixedRetry(1, 0)}}}))
                .status());
  auto started = h.Start({.workflow = "undo-later"});
  ASSERT_OK(started.status());
  const std::string id = started->saga_id;
  ASSERT_TRUE(h.RunUntil([&] {
    return undo_calls == 1 && h.engine().FindActive(id) == nullptr;
  })) << "waits compensating on a far backoff, out of memory";
  auto waiting = h.engine().store().GetSaga(id);
  ASSERT_OK(waiting.status());
  EXPECT_EQ(waiting->state, SagaState::kCompensating);
  ASSERT_TRUE(h.Pass(*clock, kBeyondWindowMs + kTimerWindowMs));
  auto done = h.AwaitInactive(id);
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state, SagaState::kCompensated);
  EXPECT_EQ(undo_calls, 2);
  ASSERT_OK(h.Close());
}

// A sleeping saga out of memory whose snapshot stops reading is parked as
// poison when its timer comes near, once, and the slot it kept under the
// workflow's max_concurrency goes to the saga queued behind it.
TEST(DormantSagaTest, OneWhoseSnapshotStoppedReadingIsParkedAndFreesItsSlot) {
  auto clock = std::make_shared<ManualClock>();
  EngineHarness h;
  ASSERT_OK(OpenWithWindow(h, clock, {}));
  ASSERT_OK(h.Register(test::Workflow(
                           "nap",
                           {{{"name", "z"},
                             {"action", "sleep"},
                             {"params", {{"duration_ms", kBeyondWindowMs}}}}},
                           {{"max_concurrency", 1}}))
                .status());
  auto first = h.Start({.workflow = "nap"});
  auto second = h.Start({.workflow = "nap"});
  ASSERT_OK(first.status());
  ASSERT_OK(second.status());
  const std::string id = first->saga_id;
  ASSERT_TRUE(h.RunUntil([&] {
    auto rec = h.engine().store().GetSaga(id);
    return h.engine().FindActive(id) == nullptr && rec.ok() &&
           rec->body.contains("waits");
  })) << "asleep, out of memory, holding the one slot";
  {
    Transition t;
    t.TEST_PutRaw(Cf::kSagas, id, "torn");
    const Transition* one = &t;
    ASSERT_OK(h.engine().store().Write({&one, 1}, /*sync=*/true));
  }
  ASSERT_TRUE(h.Pass(*clock, kBeyondWindowMs));
  auto parked = h.AwaitStored(id, SagaState::kParked);
  ASSERT_OK(parked.status());
  ASSERT_EQ(parked->state, SagaState::kParked);
  EXPECT_EQ(parked->workflow, "nap");
  auto dlq = h.engine().store().GetDlq(id);
  ASSERT_OK(dlq.status());
  EXPECT_EQ(dlq->reason, "poison");
  EXPECT_THAT(dlq->last_error, HasSubstr("cf 'sagas' key '" + id + "'"));
  // The second saga got the slot, slept, and finished.
  ASSERT_TRUE(h.Pass(*clock, 2 * kBeyondWindowMs));
  auto done = h.AwaitStored(second->saga_id, SagaState::kCompleted);
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state, SagaState::kCompleted);
  // Later scans leave the parked one as it is.
  const uint64_t last_seq = parked->last_seq;
  ASSERT_TRUE(h.Pass(*clock, 4 * kTimerWindowMs));
  auto still = h.engine().store().GetSaga(id);
  ASSERT_OK(still.status());
  EXPECT_EQ(still->last_seq, last_seq);
  // And its timer row, which would wake nothing, is gone: no scan reads it
  // again.
  auto rows = h.engine().store().DueTimers(int64_t{1} << 62, 1000);
  ASSERT_OK(rows.status());
  for (const TimerRecord& row : *rows) EXPECT_NE(row.saga_id, id) << row.name;
  ASSERT_OK(h.Close());
}

// A scan that finds more stale rows than one commit takes (4,096) deletes
// them all, over several commits.
TEST(DormantSagaTest, ThousandsOfStaleRowsOfAParkedSagaAreAllDeleted) {
  auto clock = std::make_shared<ManualClock>();
  EngineHarness h;
  ASSERT_OK(OpenWithWindow(h, clock, {}));
  Saga parked;
  parked.id = "parked-with-rows";
  parked.workflow = "gone";
  parked.version = 1;
  parked.state = SagaState::kParked;
  Transition t;
  t.PutSaga(ToRecord(parked), std::nullopt);
  const int64_t due = clock->WallMs() + 1000;
  for (int i = 0; i < 5000; ++i) {
    t.PutTimer({due, parked.id,
                TimerRowName(TimerKind::kSleep, "s" + std::to_string(i))});
  }
  const Transition* one = &t;
  ASSERT_OK(h.engine().store().Write({&one, 1}, /*sync=*/true));
  auto rows_left = [&] {
    auto rows = h.engine().store().DueTimers(int64_t{1} << 62, 10000);
    EXPECT_OK(rows.status());
    return rows.ok() ? rows->size() : size_t{0};
  };
  ASSERT_EQ(rows_left(), 5000u);
  // One scan (every half window): all of them, not the first commit's.
  ASSERT_TRUE(h.Pass(*clock, kTimerWindowMs / 2));
  ASSERT_TRUE(h.RunUntil([&] { return rows_left() == 0; }))
      << rows_left() << " rows left";
  auto still = h.engine().store().GetSaga(parked.id);
  ASSERT_OK(still.status());
  EXPECT_EQ(still->state, SagaState::kParked);  // the saga itself untouched
  ASSERT_OK(h.Close());
}

}  // namespace
}  // namespace cde
