// The saga state machine over a parallel step, event by event, without I/O:
// branches start side by side, each goes on by itself, the step ends with
// an object of branch outputs, and a failure stops the other branches and
// compensates every step that started, branches side by side.
#include <gmock/gmock.h>

#include "engine/transitions.h"
#include "tests/engine/plan_words.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;
using test::Actions;
using test::Types;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

constexpr int64_t kNowMs = 1'764'000'000'000;

json CompensatedStep(const std::string& name, json extra = json::object()) {
  json s = {{"name", name},
            {"action", "book"},
            {"compensate", {{"action", "book"}}},
            {"retry", {{"max_attempts", 2}, {"non_retryable", {"http_404"}}}}};
  s.update(extra);
  return s;
}

json Parallel(const std::string& name, json branches) {
  return {{"name", name}, {"parallel", {{"branches", std::move(branches)}}}};
}

// prep, then book = {flight: [reserve-flight, seat], hotel: [reserve-hotel]},
// then notify.
WorkflowDefinition TripDef(const char* on_failure = "compensate") {
  json doc = {
      {"name", "trip"},
      {"version", 1},
      {"on_failure", on_failure},
      {"steps",
       {CompensatedStep("prep"),
        Parallel("book", {{"flight",
                           {CompensatedStep("reserve-flight"),
                            CompensatedStep("seat")}},
                          {"hotel", {CompensatedStep("reserve-hotel")}}}),
        CompensatedStep("notify")}}};
  auto def = ParseDefinition(doc, {"book"});
  EXPECT_TRUE(def.ok()) << def.status().ToString();
  return def.ok() ? std::move(def).value() : WorkflowDefinition{};
}

constexpr char kPrep[] = "prep";
constexpr char kFlight[] = "book.flight.reserve-flight";
constexpr char kSeat[] = "book.flight.seat";
constexpr char kHotel[] = "book.hotel.reserve-hotel";
constexpr char kNotify[] = "notify";

std::vector<std::string> WaitPaths(const Saga& s) {
  std::vector<std::string> out;
  for (const Wait& w : s.waits) out.push_back(w.path);
  return out;
}

class ParallelTransitionsTest : public ::testing::Test {
 protected:
  PlanContext Ctx() { return {def_, kNowMs, 0.5}; }
  const StepState& At(const Saga& s, const std::string& path) {
    return s.steps.at(static_cast<size_t>(def_.StepAtPath(path)));
  }
  Plan Result(const Saga& s, const std::string& path, bool ok,
              bool compensation = false, uint32_t attempt = 1,
              const std::string& kind = "http_404") {
    AttemptOutcome o{{path, compensation, attempt}, ok, nullptr, {}};
    if (ok) {
      o.output = {{"from", path}};
    } else {
      o.error = {kind, "boom"};
    }
    auto p = PlanAttemptResult(Ctx(), s, o);
    EXPECT_TRUE(p.has_value()) << path << " #" << attempt;
    return p ? std::move(*p) : Plan{};
  }
  // A saga whose branches both run: reserve-flight and reserve-hotel in
  // flight.
  Saga InBranches() {
    Plan start = PlanStart(Ctx(), "S1", json::object(), "", "", "", "", false);
    return Result(start.saga, kPrep, true).saga;
  }

  WorkflowDefinition def_ = TripDef();
};

TEST_F(ParallelTransitionsTest, StepsAreFlattenedWithPaths) {
  std::vector<std::string> paths;
  for (const StepSpec& s : def_.steps) paths.push_back(s.path);
  EXPECT_THAT(paths,
              ElementsAre(kPrep, "book", kFlight, kSeat, kHotel, kNotify));
  EXPECT_THAT(def_.sequence, ElementsAre(0, 1, 5));
  EXPECT_EQ(def_.steps[3].where, "steps[1].parallel.branches.flight[1]");
  EXPECT_EQ(def_.steps[3].parent, 1);
  EXPECT_EQ(def_.Depth(3), 1);
}

TEST_F(ParallelTransitionsTest, BranchesStartSideBySide) {
  Plan start = PlanStart(Ctx(), "S1", json::object(), "", "", "", "", false);
  Plan p = Result(start.saga, kPrep, true);
  EXPECT_THAT(Actions(p), ElementsAre(std::string("run ") + kFlight + "#1",
                                      std::string("run ") + kHotel + "#1"));
  EXPECT_THAT(WaitPaths(p.saga), UnorderedElementsAre(kFlight, kHotel));
  EXPECT_EQ(At(p.saga, "book").status, StepStatus::kRunning);
  // Each attempt has its own idempotency key, by path.
  EXPECT_EQ(p.events[1].data["idempotency_key"],
            "S1/book.flight.reserve-flight/1");
  EXPECT_EQ(p.events[1].data["step"], kFlight);
}

TEST_F(ParallelTransitionsTest, ABranchGoesOnWhileTheOtherStillRuns) {
  Plan p = Result(InBranches(), kFlight, true);
  // The hotel attempt is not started again: it is in flight.
  EXPECT_THAT(Actions(p), ElementsAre(std::string("run ") + kSeat + "#1"));
  EXPECT_THAT(WaitPaths(p.saga), UnorderedElementsAre(kSeat, kHotel));
}

TEST_F(ParallelTransitionsTest, TheStepSucceedsWithAnObjectOfBranchOutputs) {
  Saga s = Result(InBranches(), kHotel, true).saga;
  s = Result(s, kFlight, true).saga;
  Plan p = Result(s, kSeat, true);
  EXPECT_EQ(At(p.saga, "book").status, StepStatus::kSucceeded);
  EXPECT_EQ(At(p.saga, "book").output, (json{{"flight", {{"from", kSeat}}},
                                             {"hotel", {{"from", kHotel}}}}));
  EXPECT_THAT(Types(p), ElementsAre("step_succeeded", "step_succeeded",
                                    "attempt_started"));
  EXPECT_EQ(p.events[1].data["step"], "book");
  EXPECT_THAT(Actions(p), ElementsAre(std::string("run ") + kNotify + "#1"));
  Plan done = Result(p.saga, kNotify, true);
  EXPECT_EQ(done.saga.state, SagaState::kCompleted);
  EXPECT_TRUE(done.finishes());
}

TEST_F(ParallelTransitionsTest,
       AFailureStopsTheOtherBranchAndCompensatesWhatStarted) {
  Saga s = Result(InBranches(), kFlight, true).saga;  // seat in flight
  Plan p = Result(s, kHotel, false);                  // http_404: for good
  EXPECT_THAT(Types(p),
              ElementsAre("step_failed", "step_stopped", "saga_compensating"));
  EXPECT_EQ(p.events[1].data["in_flight"], true);
  // The seat attempt is stopped, but it may be on its way: its branch's
  // undo waits for its result (a compensation sent now could overtake it).
  // The failed hotel step has nothing to undo.
  EXPECT_THAT(Actions(p), ElementsAre(std::string("stop ") + kSeat + "#1"));
  EXPECT_EQ(At(p.saga, kSeat).status, StepStatus::kRunning);
  ASSERT_NE(FindWait(p.saga, kSeat), nullptr);
  EXPECT_TRUE(FindWait(p.saga, kSeat)->stopped);
  EXPECT_EQ(At(p.saga, "book").status, StepStatus::kFailed);
  EXPECT_EQ(p.saga.failed_step, def_.StepAtPath(kHotel));

  // It succeeded after all: recorded, not retried, nothing new starts;
  // then it is undone first (newest in its branch).
  Plan seat = Result(p.saga, kSeat, true);
  EXPECT_THAT(Types(seat), ElementsAre("step_succeeded", "attempt_started"));
  EXPECT_EQ(seat.events[0].data["stopped"], true);
  EXPECT_EQ(At(seat.saga, kSeat).status, StepStatus::kSucceeded);
  EXPECT_THAT(Actions(seat), ElementsAre(std::string("undo ") + kSeat + "#1"));

  Plan undo_flight = Result(seat.saga, kSeat, true, true);
  EXPECT_THAT(Actions(undo_flight),
              ElementsAre(std::string("undo ") + kFlight + "#1"));
  Plan undo_prep = Result(undo_flight.saga, kFlight, true, true);
  EXPECT_THAT(Actions(undo_prep),
              ElementsAre(std::string("undo ") + kPrep + "#1"));
  Plan end = Result(undo_prep.saga, kPrep, true, true);
  EXPECT_EQ(end.saga.state, SagaState::kCompensated);
  EXPECT_EQ(At(end.saga, kHotel).compensation, CompensationStatus::kNone);
  for (const StepState& st : end.saga.steps) {
    EXPECT_NE(st.status, StepStatus::kRunning);
  }
}

TEST_F(ParallelTransitionsTest, AStoppedAttemptThatFailsIsNotUndoneNorRetried) {
  Saga s = Result(InBranches(), kFlight, true).saga;  // seat in flight
  s = Result(s, kHotel, false).saga;
  // A retryable error: no retry, the saga no longer goes forward.
  Plan seat = Result(s, kSeat, false, false, 1, "http_503");
  EXPECT_EQ(At(seat.saga, kSeat).status, StepStatus::kFailed);
  EXPECT_EQ(At(seat.saga, kSeat).error.kind, "http_503");
  EXPECT_EQ(seat.saga.failed_step, def_.StepAtPath(kHotel));  // unchanged
  EXPECT_THAT(Actions(seat),
              ElementsAre(std::string("undo ") + kFlight + "#1"));
}

TEST_F(ParallelTransitionsTest, AStoppedAttemptThatTimesOutIsUndone) {
  Saga s = Result(InBranches(), kFlight, true).saga;
  s = Result(s, kHotel, false).saga;
  Plan seat = Result(s, kSeat, false, false, 1, "timeout");
  EXPECT_THAT(Actions(seat), ElementsAre(std::string("undo ") + kSeat + "#1"));
}

TEST_F(ParallelTransitionsTest, AStoppedAttemptThatNeverRanIsNotUndone) {
  Saga s = Result(InBranches(), kFlight, true).saga;
  s = Result(s, kHotel, false).saga;
  // The engine's answer for an attempt still waiting at a gate.
  Plan seat = Result(s, kSeat, false, false, 1, kStoppedErrorKind);
  EXPECT_EQ(At(seat.saga, kSeat).status, StepStatus::kCancelled);
  EXPECT_THAT(Actions(seat),
              ElementsAre(std::string("undo ") + kFlight + "#1"));
}

TEST_F(ParallelTransitionsTest, AnAttemptAbandonedInFlightIsUndone) {
  Saga s = Result(InBranches(), kFlight, true).saga;
  s = Result(s, kHotel, false).saga;
  // The engine's answer after a restart: the outcome is unknown.
  Plan seat = Result(s, kSeat, false, false, 1, kAbandonedErrorKind);
  EXPECT_EQ(At(seat.saga, kSeat).status, StepStatus::kCancelled);
  EXPECT_THAT(Actions(seat), ElementsAre(std::string("undo ") + kSeat + "#1"));
}

TEST_F(ParallelTransitionsTest, AStoppedWaitIsKeptInTheSnapshot) {
  Saga s = Result(InBranches(), kFlight, true).saga;
  s = Result(s, kHotel, false).saga;
  auto back = FromRecord(ToRecord(s), &def_);
  ASSERT_OK(back.status());
  EXPECT_EQ(*back, s);
  ASSERT_NE(FindWait(*back, kSeat), nullptr);
  EXPECT_TRUE(FindWait(*back, kSeat)->stopped);
}

TEST_F(ParallelTransitionsTest, AParkAbandonsAStoppedAttempt) {
  def_ = TripDef("park");
  Saga s = Result(InBranches(), kFlight, true).saga;
  Plan p = Result(s, kHotel, false);
  EXPECT_EQ(p.saga.state, SagaState::kParked);
  EXPECT_TRUE(p.finishes());  // the engine aborts what is still out
  // Its step_stopped is followed by what became of it.
  EXPECT_THAT(Types(p), ElementsAre("step_failed", "step_stopped",
                                    "step_failed", "saga_parked"));
  EXPECT_EQ(p.events[2].data["stopped"], true);
  EXPECT_EQ(p.events[2].data["step"], kSeat);
  EXPECT_EQ(At(p.saga, kSeat).status, StepStatus::kCancelled);
  EXPECT_EQ(At(p.saga, kSeat).error.kind, kAbandonedErrorKind);
  // Its late result is fenced off: the saga no longer waits for it.
  EXPECT_FALSE(
      PlanAttemptResult(Ctx(), p.saga, {{kSeat, false, 1}, true, nullptr, {}})
          .has_value());
}

TEST_F(ParallelTransitionsTest, BranchesAreCompensatedSideBySide) {
  Saga s = Result(InBranches(), kFlight, true).saga;
  s = Result(s, kSeat, true).saga;
  s = Result(s, kHotel, true).saga;  // book succeeded: notify runs
  Plan p = Result(s, kNotify, false);
  // Newest first: notify failed (nothing to undo), then both branches of
  // book at once, each from its newest step.
  EXPECT_THAT(Actions(p), ElementsAre(std::string("undo ") + kSeat + "#1",
                                      std::string("undo ") + kHotel + "#1"));
  // One branch done undoing waits for the other before prep.
  Plan hotel_undone = Result(p.saga, kHotel, true, true);
  EXPECT_THAT(Actions(hotel_undone), ::testing::IsEmpty());
  Plan seat_undone = Result(hotel_undone.saga, kSeat, true, true);
  EXPECT_THAT(Actions(seat_undone),
              ElementsAre(std::string("undo ") + kFlight + "#1"));
  Plan flight_undone = Result(seat_undone.saga, kFlight, true, true);
  EXPECT_THAT(Actions(flight_undone),
              ElementsAre(std::string("undo ") + kPrep + "#1"));
}

TEST_F(ParallelTransitionsTest, ARetryInOneBranchDoesNotHoldTheOther) {
  Plan p = Result(InBranches(), kHotel, false, false, 1, "http_503");
  EXPECT_THAT(Actions(p),
              ElementsAre(std::string("timer backoff ") + kHotel + "#1"));
  Plan flight = Result(p.saga, kFlight, true);
  EXPECT_THAT(Actions(flight), ElementsAre(std::string("run ") + kSeat + "#1"));
  EXPECT_EQ(FindWait(flight.saga, kHotel)->kind, Wait::Kind::kBackoff);
  auto fired = PlanTimerFired(Ctx(), flight.saga,
                              TimerOf(*FindWait(flight.saga, kHotel)));
  ASSERT_TRUE(fired.has_value());
  EXPECT_THAT(Actions(*fired),
              ElementsAre(std::string("run ") + kHotel + "#2"));
}

TEST_F(ParallelTransitionsTest, AFailureCutsAnotherBranchsBackoff) {
  Plan p = Result(InBranches(), kHotel, false, false, 1, "http_503");
  const TimerRef backoff = TimerOf(*FindWait(p.saga, kHotel));
  Plan failed = Result(p.saga, kFlight, false);
  EXPECT_THAT(failed.timers_delete, ElementsAre(backoff));
  EXPECT_EQ(At(failed.saga, kHotel).status, StepStatus::kFailed);
  // Neither step succeeded; an http_503 is not an unknown outcome: only
  // prep is undone.
  EXPECT_THAT(Actions(failed),
              ElementsAre(std::string("undo ") + kPrep + "#1"));
}

TEST_F(ParallelTransitionsTest, CancelLetsAttemptsInFlightFinishFirst) {
  auto cancel = PlanCancel(Ctx(), InBranches(), true, "ops");
  ASSERT_TRUE(cancel.ok()) << cancel.status().ToString();
  EXPECT_THAT(Actions(*cancel), ::testing::IsEmpty());
  // A branch's step done: its next step does not start.
  Plan flight = Result(cancel->saga, kFlight, true);
  EXPECT_THAT(Actions(flight), ::testing::IsEmpty());
  EXPECT_EQ(flight.saga.state, SagaState::kRunning);
  // The last one in flight: the cancel begins, undoing both branches.
  Plan hotel = Result(flight.saga, kHotel, true);
  EXPECT_EQ(hotel.saga.state, SagaState::kCancelling);
  EXPECT_THAT(Actions(hotel),
              ElementsAre(std::string("undo ") + kFlight + "#1",
                          std::string("undo ") + kHotel + "#1"));
  EXPECT_EQ(At(hotel.saga, "book").status, StepStatus::kCancelled);
}

TEST_F(ParallelTransitionsTest, ParkStopsTheOtherBranchAndReplayRerunsOnlyIt) {
  def_ = TripDef("park");
  Saga s = Result(InBranches(), kFlight, true).saga;  // seat in flight
  Plan parked = Result(s, kHotel, false);
  EXPECT_EQ(parked.saga.state, SagaState::kParked);
  EXPECT_THAT(Actions(parked),
              ElementsAre(std::string("stop ") + kSeat + "#1", "finish"));
  ASSERT_TRUE(parked.dlq_put.has_value());
  EXPECT_EQ(parked.dlq_put->step, kHotel);

  auto replay = PlanReplay(Ctx(), parked.saga, "", false, "ops");
  ASSERT_TRUE(replay.ok()) << replay.status().ToString();
  // reserve-flight succeeded and is not run again; the others go on
  // numbering their attempts.
  EXPECT_THAT(Actions(*replay),
              ElementsAre(std::string("run ") + kSeat + "#2",
                          std::string("run ") + kHotel + "#2"));
  EXPECT_EQ(At(replay->saga, kFlight).status, StepStatus::kSucceeded);
  EXPECT_EQ(At(replay->saga, "book").status, StepStatus::kRunning);
  EXPECT_EQ(replay->events[0].data["from_step"], kHotel);

  // from_step names a top-level step only.
  auto nested = PlanReplay(Ctx(), parked.saga, "seat", false, "ops");
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(nested.status().message().find("inside a parallel or map step"),
            std::string::npos);
}

TEST_F(ParallelTransitionsTest, ASnapshotWithSeveralWaitsReadsBack) {
  const Saga s = Result(InBranches(), kFlight, true).saga;
  auto back = FromRecord(ToRecord(s), &def_);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(EncodeSnapshot(s), EncodeSaga(ToRecord(s)));
}

}  // namespace
}  // namespace cde
