// The engine on a ManualClock: backoffs, attempt timeouts, sleeps (an hour
// long, dormant on disk meanwhile), rate limits and breaker cool-downs all
// happen when the clock reaches them, not before, and take no real time.
// Each test also shows what the real loop does between timers: the
// harness settles the loop at every step of the clock.
#include "engine/clock.h"

#include <gmock/gmock.h>

#include "engine/engine.h"
#include "tests/engine/engine_harness.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using test::HeldAction;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using test::Workflow;

json Retry(int attempts, int64_t backoff_ms) {
  return {{"max_attempts", attempts},
          {"initial_backoff_ms", backoff_ms},
          {"max_backoff_ms", backoff_ms},
          {"jitter", 0},
          {"non_retryable", json::array()}};
}

class EngineClockTest : public ::testing::Test {
 protected:
  void Open(std::map<std::string, NativeAction> actions,
            EngineLimits limits = {}) {
    EngineOptions options;
    options.data_dir = "";
    options.clock = clock_;
    options.actions = std::move(actions);
    options.limits = std::move(limits);
    options.timer_window_ms = 60000;
    ASSERT_OK(h_.Open(std::move(options)));
  }
  void TearDown() override { EXPECT_OK(h_.Close()); }

  // What `id` waits for, if it is in memory.
  std::optional<Wait::Kind> WaitOf(const std::string& id) {
    const Saga* s = h_.engine().FindActive(id);
    if (s == nullptr) return std::nullopt;
    return test::OnlyWait(s).kind;
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  EngineHarness h_;
};

TEST_F(EngineClockTest, ABackoffEndsWhenTheClockReachesItAndNotBefore) {
  HeldAction held;
  Open({{"held", held.AsAction()}});
  ASSERT_OK(h_.Register(Workflow("flaky", {{{"name", "s"},
                                            {"action", "held"},
                                            {"retry", Retry(2, 10000)}}}))
                .status());
  auto r = h_.Start({.workflow = "flaky"});
  ASSERT_OK(r.status());
  ASSERT_TRUE(h_.Settle());
  ASSERT_TRUE(held.Complete(ActionResult::Failure("boom", "first try")));
  ASSERT_TRUE(
      h_.RunUntil([&] { return WaitOf(r->saga_id) == Wait::Kind::kBackoff; }));
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(clock_->NextDueIn(), 10000);

  ASSERT_TRUE(h_.Pass(*clock_, 9999));
  EXPECT_EQ(held.calls(), 1u);
  EXPECT_EQ(WaitOf(r->saga_id), Wait::Kind::kBackoff);
  ASSERT_TRUE(h_.Pass(*clock_, 1));
  EXPECT_EQ(held.calls(), 2u);
  EXPECT_EQ(held.requests()[1].idempotency_key, r->saga_id + "/s/2");
  ASSERT_TRUE(held.Complete(ActionResult::Success(nullptr)));
  auto rec = h_.AwaitInactive(r->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
}

TEST_F(EngineClockTest, AnAttemptTimesOutWhenTheClockPassesItsTimeout) {
  HeldAction held;
  Open({{"held", held.AsAction()}});
  ASSERT_OK(h_.Register(Workflow("slow", {{{"name", "s"},
                                           {"action", "held"},
                                           {"timeout_ms", 30000},
                                           {"retry", Retry(1, 1)}}}))
                .status());
  auto r = h_.Start({.workflow = "slow"});
  ASSERT_OK(r.status());
  ASSERT_TRUE(h_.Settle());
  ASSERT_EQ(held.pending(), 1u);
  ASSERT_TRUE(h_.Pass(*clock_, 29999));
  EXPECT_EQ(WaitOf(r->saga_id), Wait::Kind::kAttempt);
  EXPECT_EQ(h_.engine().stats().attempts_in_flight, 1u);
  ASSERT_TRUE(h_.Pass(*clock_, 1));
  auto rec = h_.AwaitInactive(r->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompensated);
  EXPECT_EQ(rec->body["steps"][0]["error"]["kind"], "timeout");
  EXPECT_EQ(h_.engine().stats().attempts_in_flight, 0u);
  // The late result of the timed-out attempt changes nothing.
  ASSERT_TRUE(held.Complete(ActionResult::Success(nullptr)));
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(h_.AwaitInactive(r->saga_id)->state, SagaState::kCompensated);
}

// An hour's sleep is beyond the timer window: the saga leaves memory and
// is loaded again by the window's sweep shortly before it falls due.
TEST_F(EngineClockTest, AnHoursSleepWaitsOnDiskAndWakesOnTheHour) {
  HeldAction held;
  Open({{"held", held.AsAction()}});
  ASSERT_OK(
      h_.Register(Workflow("nap", {{{"name", "sleep"},
                                    {"action", "sleep"},
                                    {"params", {{"duration_ms", 3600000}}}},
                                   {{"name", "after"}, {"action", "held"}}}))
          .status());
  auto r = h_.Start({.workflow = "nap"});
  ASSERT_OK(r.status());
  ASSERT_TRUE(h_.Settle());
  EXPECT_EQ(h_.engine().FindActive(r->saga_id), nullptr) << "dormant";

  ASSERT_TRUE(h_.Pass(*clock_, 3600000 - 1));
  EXPECT_EQ(held.calls(), 0u);
  EXPECT_EQ(WaitOf(r->saga_id), Wait::Kind::kSleep) << "loaded before due";
  ASSERT_TRUE(h_.Pass(*clock_, 1));
  ASSERT_EQ(held.calls(), 1u);
  ASSERT_TRUE(held.Complete(ActionResult::Success(nullptr)));
  auto rec = h_.AwaitInactive(r->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
}

TEST_F(EngineClockTest, RateLimitedStepsGoOnePerTokenInArrivalOrder) {
  std::vector<std::string> order;
  std::vector<int64_t> at;
  NativeAction record = [&](const AttemptRequest& r, ActionDone done) {
    order.push_back(r.saga_id);
    at.push_back(clock_->MonotonicMs());
    done(ActionResult::Success(nullptr));
  };
  EngineLimits limits;
  limits.outbound["api"] = {.rate_per_sec = 10, .burst = 1};
  Open({{"call", record}}, limits);
  ASSERT_OK(h_.Register(Workflow("limited", {{{"name", "s"},
                                              {"action", "call"},
                                              {"rate_limit", "api"}}}))
                .status());
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    auto r = h_.Start({.workflow = "limited"});
    ASSERT_OK(r.status());
    ids.push_back(r->saga_id);
  }
  ASSERT_TRUE(h_.Settle());
  ASSERT_EQ(order.size(), 1u) << "one token in the bucket";
  EXPECT_EQ(h_.engine().stats().waiting_at_gates, 3u);
  ASSERT_TRUE(h_.Pass(*clock_, 99));
  EXPECT_EQ(order.size(), 1u);
  ASSERT_TRUE(h_.Pass(*clock_, 1000));
  EXPECT_EQ(order, ids);
  ASSERT_EQ(at.size(), 4u);
  EXPECT_THAT(
      std::vector<int64_t>({at[1] - at[0], at[2] - at[0], at[3] - at[0]}),
      ElementsAre(100, 200, 300));
  for (const std::string& id : ids) {
    auto rec = h_.AwaitInactive(id);
    ASSERT_OK(rec.status());
    EXPECT_EQ(rec->state, SagaState::kCompleted);
    EXPECT_EQ(rec->body["steps"][0]["attempts"], 1) << "a wait is no attempt";
  }
  EXPECT_THAT(
      h_.engine().metrics().Render(),
      HasSubstr(R"(cde_gate_waits_total{gate="rate_limit",key="api"} 3)"));
}

// A branch fails while a step of another branch waits at a rate limit: the
// waiting step never runs (it is stopped before it was sent), so nothing of
// it is undone; the step that did run is undone.
TEST_F(EngineClockTest, AStoppedStepWaitingAtARateLimitNeverRuns) {
  std::vector<std::string> calls;
  std::vector<std::string> undone;
  NativeAction call = [&](const AttemptRequest& r, ActionDone done) {
    calls.push_back(r.step);
    done(ActionResult::Success(nullptr));
  };
  NativeAction undo = [&](const AttemptRequest& r, ActionDone done) {
    undone.push_back(r.step);
    done(ActionResult::Success(nullptr));
  };
  EngineLimits limits;
  limits.outbound["api"] = {.rate_per_sec = 10, .burst = 1};
  Open({{"call", call}, {"undo", undo}}, limits);
  auto limited = [](const std::string& name) {
    return json{{"name", name},
                {"action", "call"},
                {"rate_limit", "api"},
                {"compensate", {{"action", "undo"}}}};
  };
  const json fail = {{"name", "c"},
                     {"action", "fail"},
                     {"params", {{"kind", "sold_out"}}},
                     {"retry", {{"max_attempts", 1}}}};
  ASSERT_OK(h_.Register(Workflow("stopped",
                                 {{{"name", "p"},
                                   {"parallel",
                                    {{"branches",
                                      {{"a", std::vector<json>{limited("a")}},
                                       {"b", std::vector<json>{limited("b")}},
                                       {"c", std::vector<json>{fail}}}}}}}}))
                .status());
  auto r = h_.Start({.workflow = "stopped"});
  ASSERT_OK(r.status());
  ASSERT_TRUE(h_.Settle());
  ASSERT_TRUE(h_.Pass(*clock_, 1000));  // b's token would have come by now
  auto rec = h_.AwaitInactive(r->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompensated);
  EXPECT_EQ(calls, std::vector<std::string>{"p.a.a"});
  EXPECT_EQ(undone, std::vector<std::string>{"p.a.a"});
  const json& b = rec->body["steps"][2];
  EXPECT_EQ(b["status"], "cancelled") << rec->body.dump();
  EXPECT_EQ(b["error"]["kind"], kStoppedErrorKind);
  EXPECT_EQ(h_.engine().stats().waiting_at_gates, 0u);
}

// A stopped attempt that never answers (its step has no timeout_ms) holds
// its undo for limits.stopped_attempt_wait_ms, not forever: then it is
// aborted and, its outcome unknown, compensated.
TEST_F(EngineClockTest, AStoppedAttemptIsAwaitedForItsDeadlineAtMost) {
  HeldAction held;
  std::vector<std::string> undone;
  NativeAction undo = [&](const AttemptRequest& r, ActionDone done) {
    undone.push_back(r.step);
    done(ActionResult::Success(nullptr));
  };
  EngineLimits limits;
  limits.stopped_attempt_wait_ms = 5000;
  Open({{"held", held.AsAction()}, {"undo", undo}}, limits);
  const json fail = {{"name", "b"},
                     {"action", "fail"},
                     {"params", {{"kind", "sold_out"}}},
                     {"retry", {{"max_attempts", 1}}}};
  ASSERT_OK(
      h_.Register(
            Workflow("deadline",
                     {{{"name", "p"},
                       {"parallel",
                        {{"branches",
                          {{"a", std::vector<json>{{{"name", "a"},
                                                    {"action", "held"},
                                                    {"compensate",
                                                     {{"action", "undo"}}}}}},
                           {"b", std::vector<json>{fail}}}}}}}}))
          .status());
  auto r = h_.Start({.workflow = "deadline"});
  ASSERT_OK(r.status());
  ASSERT_TRUE(h_.Settle());
  ASSERT_EQ(held.pending(), 1u);
  ASSERT_TRUE(h_.Pass(*clock_, 4999));
  EXPECT_TRUE(undone.empty());
  EXPECT_EQ(h_.engine().FindActive(r->saga_id)->state,
            SagaState::kCompensating);
  ASSERT_TRUE(h_.Pass(*clock_, 1));
  auto rec = h_.AwaitInactive(r->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompensated);
  EXPECT_EQ(undone, std::vector<std::string>{"p.a.a"});
  EXPECT_EQ(rec->body["steps"][1]["status"], "cancelled");
  EXPECT_EQ(rec->body["steps"][1]["error"]["kind"], kAbandonedErrorKind);
  // Its late answer changes nothing.
  ASSERT_TRUE(held.Complete(ActionResult::Success(nullptr)));
  ASSERT_TRUE(h_.Settle());
  auto after = h_.AwaitInactive(r->saga_id);
  ASSERT_OK(after.status());
  EXPECT_EQ(after->last_seq, rec->last_seq);
}

TEST_F(EngineClockTest, AnOpenBreakerHalfOpensWhenItsCoolDownHasPassed) {
  int calls = 0;
  bool healthy = false;
  NativeAction service = [&](const AttemptRequest&, ActionDone done) {
    ++calls;
    done(healthy ? ActionResult::Success(nullptr)
                 : ActionResult::Failure("unavailable", "down"));
  };
  EngineLimits limits;
  limits.breaker_default = {.failure_threshold = 1,
                            .failure_ratio = 0,
                            .cool_down_ms = 60000,
                            .half_open_probes = 1};
  Open({{"service", service}}, limits);
  ASSERT_OK(h_.Register(Workflow("call", {{{"name", "s"},
                                           {"action", "service"},
                                           {"retry", Retry(3, 1)}}}))
                .status());
  auto r = h_.Start({.workflow = "call"});
  ASSERT_OK(r.status());
  ASSERT_TRUE(h_.Settle());
  ASSERT_EQ(calls, 1);               // failed, and opened the breaker
  ASSERT_TRUE(h_.Pass(*clock_, 1));  // the backoff: now it waits at the gate
  EXPECT_EQ(h_.engine().stats().waiting_at_gates, 1u);
  healthy = true;
  ASSERT_TRUE(h_.Pass(*clock_, 60000 - 2));
  EXPECT_EQ(calls, 1) << "open: nothing goes out during the cool-down";
  ASSERT_TRUE(h_.Pass(*clock_, 1));
  EXPECT_EQ(calls, 2) << "half open: one probe";
  auto rec = h_.AwaitInactive(r->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
  EXPECT_EQ(rec->body["steps"][0]["attempts"], 2);
  ASSERT_EQ(h_.engine().stats().breakers.size(), 1u);
  EXPECT_EQ(h_.engine().stats().breakers[0].state, BreakerState::kClosed);
}

}  // namespace
}  // namespace cde
