// A parallel step on a real engine and loop: branches' attempts are in
// flight at once, a failed branch stops the other's attempt and undoes it
// once its result is in, and a saga stopped with two attempts in flight
// resumes both from the store.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/clock.h"
#include "tests/engine/engine_harness.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using test::HeldAction;

json Parallel(const std::string& name, json branches) {
  return {{"name", name}, {"parallel", {{"branches", std::move(branches)}}}};
}

// A vector: a one-element braced list would be taken as that element rather
// than an array by some compilers.
json ParallelWorkflow(std::vector<json> steps) {
  return {{"name", "fan"}, {"version", 1}, {"steps", std::move(steps)}};
}

// A native action that succeeds at once, recording each attempt's `field`
// (its step, by default) in `out`.
NativeAction Recorder(
    std::vector<std::string>* out,
    std::string AttemptRequest::*field = &AttemptRequest::step) {
  return [out, field](const AttemptRequest& r, ActionDone done) {
    out->push_back(r.*field);
    done(ActionResult::Success(json::object()));
  };
}

// Reopens the engine on `dir` after two attempts rate-limited by "api" were
// left out: one token, the next 1000 s away on `clock`, so the first one
// resumed goes again at once and the second waits at the gate. Returns once
// both are where they should be.
void ReopenWithOneToken(EngineHarness& h, const std::string& dir,
                        const std::shared_ptr<ManualClock>& clock,
                        HeldAction& held, NativeAction undo) {
  EngineOptions options;
  options.data_dir = dir;
  options.clock = clock;
  options.actions = {{"held", held.AsAction()}, {"undo", std::move(undo)}};
  options.limits.outbound["api"] = {.rate_per_sec = 0.001, .burst = 1};
  ASSERT_OK(h.Open(std::move(options)));
  ASSERT_TRUE(h.RunUntil([&] {
    return held.pending() == 1 && h.engine().stats().waiting_at_gates == 1;
  }));
}

std::vector<std::string> Steps(const std::vector<AttemptRequest>& requests) {
  std::vector<std::string> out;
  for (const AttemptRequest& r : requests) out.push_back(r.step);
  return out;
}

TEST(ParallelEngineTest, BranchesRunSideBySideAndTheStepOutputsBoth) {
  HeldAction held;
  EngineHarness h;
  ASSERT_OK(h.Open("", {{"held", held.AsAction()}}));
  ASSERT_OK(
      h
          .Register(ParallelWorkflow(
              {Parallel("book",
                        {{"flight", {{{"name", "flight"}, {"action", "held"}}}},
                         {"hotel", {{{"name", "hotel"}, {"action", "held"}}}}}),
               {{"name", "after"},
                {"action", "echo"},
                {"params", {{"both", "${steps.book.output}"}}}}}))
          .status());
  auto started = h.Start({.workflow = "fan"});
  ASSERT_OK(started.status());
  // Both attempts are in flight before either is answered.
  ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 2; }));
  EXPECT_EQ(
      Steps(held.requests()),
      (std::vector<std::string>{"book.flight.flight", "book.hotel.hotel"}));
  EXPECT_EQ(held.requests()[0].idempotency_key,
            started->saga_id + "/book.flight.flight/1");
  ASSERT_TRUE(held.Complete(ActionResult::Success({{"pnr", "F1"}})));
  ASSERT_TRUE(held.Complete(ActionResult::Success({{"room", 12}})));
  auto rec = h.AwaitInactive(started->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
  const json both = {{"flight", {{"pnr", "F1"}}}, {"hotel", {{"room", 12}}}};
  EXPECT_EQ(rec->body["steps"][0]["output"], both);
  EXPECT_EQ(rec->body["steps"][3]["output"]["both"], both);
  ASSERT_OK(h.Close());
}

TEST(ParallelEngineTest,
     AFailedBranchStopsTheOtherAndUndoesItOnceItsResultIsIn) {
  HeldAction held;
  std::vector<std::string> undone;
  NativeAction undo = Recorder(&undone);
  EngineHarness h;
  ASSERT_OK(h.Open("", {{"held", held.AsAction()}, {"undo", undo}}));
  ASSERT_OK(
      h.Register(ParallelWorkflow({Parallel(
                     "book", {{"flight",
                               {{{"name", "flight"},
                                 {"action", "held"},
                                 {"compensate", {{"action", "undo"}}}}}},
                              {"hotel",
                               {{{"name", "hotel"},
                                 {"action", "fail"},
                                 {"params", {{"kind", "sold_out"}}},
                                 {"retry", {{"max_attempts", 1}}},
                                 {"compensate", {{"action", "undo"}}}}}}})}))
          .status());
  auto started = h.Start({.workflow = "fan"});
  ASSERT_OK(started.status());
  // The hotel fails while the flight is in flight: the saga compensates,
  // but the flight's undo waits for its result, so that it cannot overtake
  // the booking on its way to the service.
  auto compensating = h.AwaitStored(started->saga_id, SagaState::kCompensating);
  ASSERT_OK(compensating.status());
  ASSERT_TRUE(h.Settle());
  EXPECT_TRUE(undone.empty());
  EXPECT_EQ(held.pending(), 1u);  // not aborted
  EXPECT_EQ(compensating->body["waits"][0]["stopped"], true);
  // It booked after all: then it is undone; the hotel failed and has
  // nothing to undo.
  ASSERT_TRUE(held.Complete(ActionResult::Success({{"pnr", "F1"}})));
  auto rec = h.AwaitInactive(started->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompensated);
  EXPECT_EQ(undone, std::vector<std::string>{"book.flight.flight"});
  EXPECT_EQ(rec->body["steps"][1]["status"], "succeeded");
  EXPECT_EQ(rec->body["steps"][1]["compensation"], "succeeded");
  EXPECT_EQ(rec->body["steps"][0]["status"], "failed");
  const std::vector<std::string> log = h.LogTypes(started->saga_id);
  EXPECT_NE(std::find(log.begin(), log.end(), "step_stopped"), log.end());
  ASSERT_OK(h.Close());
}

// The engine stops while a stopped attempt is still out: after the restart
// it is sent again with the same idempotency key (the service's answer
// decides), still not moving the saga forward, and undone if it succeeded.
TEST(ParallelEngineTest, AStoppedAttemptOutAtARestartIsSentAgainAndAwaited) {
  test::TempDir dir;
  std::vector<std::string> undone;
  NativeAction undo = Recorder(&undone);
  const json def = ParallelWorkflow(
      {Parallel("book", {{"flight",
                          {{{"name", "flight"},
                            {"action", "held"},
                            {"compensate", {{"action", "undo"}}}},
                           {{"name", "seat"}, {"action", "held"}}}},
                         {"hotel",
                          {{{"name", "hotel"},
                            {"action", "fail"},
                            {"params", {{"kind", "sold_out"}}},
                            {"retry", {{"max_attempts", 1}}}}}}})});
  std::string id, key;
  {
    HeldAction first;
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"held", first.AsAction()}, {"undo", undo}}));
    ASSERT_OK(h.Register(def).status());
    auto started = h.Start({.workflow = "fan"});
    ASSERT_OK(started.status());
    id = started->saga_id;
    ASSERT_OK(h.AwaitStored(id, SagaState::kCompensating).status());
    ASSERT_TRUE(h.Settle());
    ASSERT_EQ(first.pending(), 1u);
    key = first.requests().at(0).idempotency_key;
    ASSERT_OK(h.Close());
  }
  EXPECT_TRUE(undone.empty());
  HeldAction second;
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path(), {{"held", second.AsAction()}, {"undo", undo}}));
  ASSERT_TRUE(h.RunUntil([&] { return second.pending() == 1; }));
  EXPECT_EQ(second.requests().at(0).idempotency_key, key);
  ASSERT_TRUE(h.Settle());
  EXPECT_TRUE(undone.empty());  // still awaited
  ASSERT_TRUE(second.Complete(ActionResult::Success({{"pnr", "F1"}})));
  auto rec = h.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompensated);
  EXPECT_EQ(second.calls(), 1u);  // seat never ran: the saga went back
  EXPECT_EQ(undone, std::vector<std::string>{"book.flight.flight"});
  EXPECT_EQ(rec->body["steps"][1]["status"], "succeeded");
  EXPECT_EQ(rec->body["steps"][1]["compensation"], "succeeded");
  ASSERT_OK(h.Close());
}

// An attempt out when the engine stopped is sent again at the restart; held
// at a rate limit there, and stopped before it went (the other branch
// failed), it may still have reached its service before the crash: its
// outcome is unknown, so its step is undone, not taken as never run.
TEST(ParallelEngineTest, AnAttemptOutAtARestartStoppedAtAGateIsUndone) {
  test::TempDir dir;
  std::vector<std::string> undone;
  NativeAction undo = Recorder(&undone);
  auto limited = [](const std::string& name) {
    return json{{"name", name},
                {"action", "held"},
                {"rate_limit", "api"},
                {"retry", {{"max_attempts", 1}}},
                {"compensate", {{"action", "undo"}}}};
  };
  const json def = ParallelWorkflow(
      {Parallel("book", {{"a", {limited("a")}}, {"b", {limited("b")}}})});
  std::string id;
  {
    HeldAction first;
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"held", first.AsAction()}, {"undo", undo}}));
    ASSERT_OK(h.Register(def).status());
    auto started = h.Start({.workflow = "fan"});
    ASSERT_OK(started.status());
    id = started->saga_id;
    ASSERT_TRUE(h.RunUntil([&] { return first.pending() == 2; }));
    ASSERT_OK(h.Close());  // both out, neither answered
  }
  // One token, and the next in 1000 s: a goes again, b waits at the gate.
  // (b's undo goes through the same bucket: the clock brings its token.)
  HeldAction second;
  auto clock = std::make_shared<ManualClock>();
  EngineHarness h;
  ReopenWithOneToken(h, dir.path(), clock, second, undo);
  if (HasFatalFailure()) return;
  ASSERT_EQ(Steps(second.requests()), std::vector<std::string>{"book.a.a"});
  ASSERT_TRUE(second.Complete(ActionResult::Failure("sold_out", "no seats")));
  ASSERT_TRUE(h.Settle());
  EXPECT_TRUE(undone.empty());  // b's undo waits for its token
  ASSERT_TRUE(h.Pass(*clock, 1000000));
  auto rec = h.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompensated);
  EXPECT_EQ(second.calls(), 1u);  // b was not sent again
  EXPECT_EQ(undone, std::vector<std::string>{"book.b.b"});
  const json& b = rec->body["steps"][2];
  EXPECT_EQ(b["status"], "cancelled") << rec->body.dump();
  EXPECT_EQ(b["error"]["kind"], kAbandonedErrorKind);
  EXPECT_EQ(b["compensation"], "succeeded");
  EXPECT_EQ(h.engine().stats().waiting_at_gates, 0u);
  ASSERT_OK(h.Close());
}

// The same for a cancel: an attempt out when the engine stopped, held at a
// gate after the restart and cancelled there, may have reached its service
// before the crash, so its step is undone.
TEST(ParallelEngineTest, AnAttemptOutAtARestartCancelledAtAGateIsUndone) {
  test::TempDir dir;
  std::vector<std::string> undone;
  NativeAction undo = Recorder(&undone, &AttemptRequest::saga_id);
  const json def = {{"name", "one"},
                    {"version", 1},
                    {"steps",
                     {{{"name", "a"},
                       {"action", "held"},
                       {"rate_limit", "api"},
                       {"compensate", {{"action", "undo"}}}}}}};
  std::vector<std::string> ids;
  {
    HeldAction first;
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"held", first.AsAction()}, {"undo", undo}}));
    ASSERT_OK(h.Register(def).status());
    for (int i = 0; i < 2; ++i) {
      auto started = h.Start({.workflow = "one"});
      ASSERT_OK(started.status());
      ids.push_back(started->saga_id);
    }
    ASSERT_TRUE(h.RunUntil([&] { return first.pending() == 2; }));
    ASSERT_OK(h.Close());  // both out, neither answered
  }
  std::sort(ids.begin(), ids.end());  // resumed oldest first
  HeldAction second;
  auto clock = std::make_shared<ManualClock>();
  EngineHarness h;
  ReopenWithOneToken(h, dir.path(), clock, second, undo);
  if (HasFatalFailure()) return;
  ASSERT_EQ(second.requests().at(0).saga_id, ids[0]);
  ASSERT_OK(h.Cancel(ids[1], /*compensate=*/true).status());
  ASSERT_TRUE(h.Settle());
  ASSERT_TRUE(h.Pass(*clock, 1000000));  // the undo's token
  auto rec = h.AwaitInactive(ids[1]);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCancelled);
  EXPECT_EQ(undone, std::vector<std::string>{ids[1]});
  EXPECT_EQ(rec->body["steps"][0]["error"]["kind"], kAbandonedErrorKind)
      << rec->body.dump();
  EXPECT_EQ(rec->body["steps"][0]["compensation"], "succeeded");
  EXPECT_EQ(second.calls(), 1u);  // it was not sent again
  ASSERT_TRUE(second.Complete(ActionResult::Success(nullptr)));
  ASSERT_OK(h.AwaitInactive(ids[0]).status());
  ASSERT_OK(h.Close());
}

TEST(ParallelEngineTest, BothAttemptsInFlightResumeAfterARestart) {
  test::TempDir dir;
  HeldAction first;
  std::string id;
  {
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"held", first.AsAction()}}));
    ASSERT_OK(h
                  .Register(ParallelWorkflow({Parallel(
                      "book", {{"a", {{{"name", "a"}, {"action", "held"}}}},
                               {"b", {{{"name", "b"}, {"action", "held"}}}}})}))
                  .status());
    auto started = h.Start({.workflow = "fan"});
    ASSERT_OK(started.status());
    id = started->saga_id;
    ASSERT_TRUE(h.RunUntil([&] { return first.pending() == 2; }));
    ASSERT_OK(h.Close());
  }
  HeldAction second;
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path(), {{"held", second.AsAction()}}));
  ASSERT_TRUE(h.RunUntil([&] { return second.pending() == 2; }));
  // The same attempts again, with the same idempotency keys.
  std::vector<std::string> keys;
  for (const AttemptRequest& r : second.requests()) {
    keys.push_back(r.idempotency_key);
  }
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys,
            (std::vector<std::string>{id + "/book.a.a/1", id + "/book.b.b/1"}));
  ASSERT_TRUE(second.Complete(ActionResult::Success(1)));
  ASSERT_TRUE(second.Complete(ActionResult::Success(2)));
  auto rec = h.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
  EXPECT_EQ(rec->body["steps"][0]["output"], (json{{"a", 1}, {"b", 2}}));
  ASSERT_OK(h.Close());
}

}  // namespace
}  // namespace cde
