// The saga state machine, event by event, without I/O: each test feeds a
// saga an event and checks the plan (snapshot, log events, timers, DLQ rows,
// and what the engine must do after the commit).
#include "engine/transitions.h"

#include <gmock/gmock.h>

#include "tests/engine/plan_words.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;
using test::Actions;
using test::Types;
using ::testing::ElementsAre;

constexpr int64_t kNow = 1'764'000'000'000;

WorkflowDefinition Def(json steps, const char* on_failure = "compensate") {
  json doc = {{"name", "trip"},
              {"version", 1},
              {"on_failure", on_failure},
              {"steps", std::move(steps)}};
  auto def = ParseDefinition(doc, {"book"});
  EXPECT_TRUE(def.ok()) << def.status().ToString();
  return def.ok() ? std::move(def).value() : WorkflowDefinition{};
}

json BookStep(const std::string& name, json extra = json::object()) {
  json s = {{"name", name}, {"action", "book"}};
  s.update(extra);
  return s;
}

json WithUndo(const std::string& name, json retry = json::object()) {
  json s = BookStep(name);
  s["compensate"] = {{"action", "book"}};
  if (!retry.empty()) s["retry"] = retry;
  return s;
}

// The one wait of a saga that runs one step at a time (none: kNothing).
const Wait& W(const Saga& s) {
  static const Wait kNone;
  EXPECT_LE(s.waits.size(), 1u);
  return s.waits.empty() ? kNone : s.waits.front();
}

class TransitionsTest : public ::testing::Test {
 protected:
  // The outcome of an attempt of step `step` (by index in def_).
  AttemptOutcome Ok(int step, uint32_t attempt = 1, bool comp = false) {
    return {{PathOf(step), comp, attempt}, true, {{"id", step}}, {}};
  }
  AttemptOutcome Err(int step, uint32_t attempt, std::string kind = "http_503",
                     bool comp = false) {
    return {{PathOf(step), comp, attempt},
            false,
            nullptr,
            {std::move(kind), "boom"}};
  }
  std::string PathOf(int step) const {
    return def_.steps.at(static_cast<size_t>(step)).name;
  }
  PlanContext Ctx() { return {def_, kNow, 0.5}; }
  Plan Start(bool queued = false) {
    return PlanStart(Ctx(), "S1", {{"trip", 7}}, "", "", "", "", queued);
  }
  // Applies `o` to `s`, which must produce a plan.
  Saga Feed(const Saga& s, const AttemptOutcome& o) {
    auto p = PlanAttemptResult(Ctx(), s, o);
    EXPECT_TRUE(p.has_value());
    return p ? p->saga : s;
  }

  WorkflowDefinition def_ =
      Def({WithUndo("flight"), WithUndo("hotel"), BookStep("car")});
};

TEST_F(TransitionsTest, StartLogsTheStartAndTheFirstAttemptTogether) {
  Plan p = Start();
  EXPECT_THAT(Types(p), ElementsAre("saga_started", "attempt_started"));
  EXPECT_EQ(p.previous_state, std::nullopt);
  EXPECT_THAT(Actions(p), ElementsAre("run flight#1"));
  EXPECT_EQ(W(p.saga), (Wait{Wait::Kind::kAttempt, PathOf(0), false, 1, 0}));
  EXPECT_EQ(p.saga.steps[0].status, StepStatus::kRunning);
  EXPECT_EQ(p.events[1].data["idempotency_key"], "S1/flight/1");
}

TEST_F(TransitionsTest, StartKeepsAndLogsTheCorrelationTraceAndStarter) {
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  Plan p = PlanStart(Ctx(), "S1", {{"trip", 7}}, "", "req-7", trace, "ci-bot",
                     false);
  EXPECT_EQ(p.saga.correlation_id, "req-7");
  EXPECT_EQ(p.saga.trace_id, trace);
  EXPECT_EQ(p.events[0].data["correlation_id"], "req-7");
  EXPECT_EQ(p.events[0].data["trace_id"], trace);
  EXPECT_EQ(p.events[0].data["started_by"], "ci-bot");
  // They survive the snapshot.
  auto back = FromRecord(ToRecord(p.saga));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->correlation_id, "req-7");
  EXPECT_EQ(back->trace_id, trace);
  EXPECT_EQ(back->started_by, "ci-bot");
  EXPECT_EQ(ToRecord(p.saga).body["trace_id"], trace);
}

TEST_F(TransitionsTest, StartWithoutIdsLogsNone) {
  Plan p = Start();
  EXPECT_FALSE(p.events[0].data.contains("correlation_id"));
  EXPECT_FALSE(p.events[0].data.contains("started_by"));
  EXPECT_FALSE(p.events[0].data.contains("trace_id"));
  EXPECT_FALSE(ToRecord(p.saga).body.contains("trace_id"));
}

TEST_F(TransitionsTest, AnOldSnapshotWithoutATraceIdStillLoads) {
  SagaRecord r = ToRecord(Start().saga);
  r.body.erase("trace_id");
  r.body["correlation_id"] = "old-req";
  auto s = FromRecord(r);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->trace_id, "");
  EXPECT_EQ(s->correlation_id, "old-req");
}

TEST(TraceIdTest, AValidTraceparentGivesItsTraceId) {
  std::mt19937_64 rng(7);
  EXPECT_EQ(TraceIdFrom(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", rng),
            "4bf92f3577b34da6a3ce929d0e0e4736");
}

TEST(TraceIdTest, AnythingElseGetsAFreshRandomTraceId) {
  std::mt19937_64 rng(7);
  for (const char* bad : {
           "",
           "nonsense",
           // all-zero trace id, all-zero parent id
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
           // upper case, a version other than 00, wrong lengths
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
       }) {
    EXPECT_EQ(TraceIdOf(bad), "") << bad;
    const std::string id = TraceIdFrom(bad, rng);
    EXPECT_EQ(id.size(), 32u) << bad;
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_NE(id, "00000000000000000000000000000000");
  }
  EXPECT_NE(TraceIdFrom("", rng), TraceIdFrom("", rng));
  EXPECT_EQ(RandomHexId(rng, 64).size(), 16u);
}

TEST_F(TransitionsTest, QueuedStartRunsNothingUntilDequeued) {
  Plan p = Start(/*queued=*/true);
  EXPECT_THAT(Types(p), ElementsAre("saga_started", "saga_queued"));
  EXPECT_TRUE(p.actions.empty());
  Plan d = PlanDequeue(Ctx(), p.saga);
  EXPECT_THAT(Types(d), ElementsAre("saga_dequeued", "attempt_started"));
  EXPECT_THAT(Actions(d), ElementsAre("run flight#1"));
}

TEST_F(TransitionsTest, SuccessStartsTheNextStepAndTheLastCompletes) {
  Saga s = Start().saga;
  auto p = PlanAttemptResult(Ctx(), s, Ok(0));
  ASSERT_TRUE(p);
  EXPECT_THAT(Types(*p), ElementsAre("step_succeeded", "attempt_started"));
  EXPECT_EQ(p->saga.steps[0].output, json({{"id", 0}}));
  s = Feed(p->saga, Ok(1));
  auto last = PlanAttemptResult(Ctx(), s, Ok(2));
  ASSERT_TRUE(last);
  EXPECT_THAT(Types(*last), ElementsAre("step_succeeded", "saga_completed"));
  EXPECT_EQ(last->saga.state, SagaState::kCompleted);
  EXPECT_THAT(Actions(*last), ElementsAre("finish"));
}

// Results are fenced by (path, attempt): only the attempt in flight counts.
TEST_F(TransitionsTest, ResultOfAnotherAttemptIsStale) {
  Saga s = Start().saga;
  EXPECT_FALSE(PlanAttemptResult(Ctx(), s, Ok(0, /*attempt=*/2)));
  EXPECT_FALSE(PlanAttemptResult(Ctx(), s, Ok(1)));
  EXPECT_FALSE(PlanAttemptResult(Ctx(), s, Ok(0, 1, /*comp=*/true)));
  AttemptOutcome unknown = Ok(0);
  unknown.ref.path = "flight[0]";  // no step there
  EXPECT_FALSE(PlanAttemptResult(Ctx(), s, unknown));
  EXPECT_TRUE(PlanAttemptResult(Ctx(), s, Ok(0)));
}

TEST_F(TransitionsTest, RetryableFailureSetsADurableBackoffTimer) {
  Saga s = Start().saga;
  auto p = PlanAttemptResult(Ctx(), s, Err(0, 1));
  ASSERT_TRUE(p);
  EXPECT_THAT(Types(*p), ElementsAre("attempt_failed"));
  // Default policy: 100 ms initial backoff; jitter sample 0.5 = no spread.
  EXPECT_EQ(W(p->saga),
            (Wait{Wait::Kind::kBackoff, PathOf(0), false, 1, kNow + 100}));
  EXPECT_THAT(p->timers_put,
              ElementsAre(TimerRef{kNow + 100, TimerKind::kBackoff, "flight"}));
  EXPECT_THAT(Actions(*p), ElementsAre("timer backoff flight#1"));

  auto fired = PlanTimerFired(Ctx(), p->saga,
                              {kNow + 100, TimerKind::kBackoff, "flight"});
  ASSERT_TRUE(fired);
  EXPECT_THAT(Types(*fired), ElementsAre("timer_fired", "attempt_started"));
  EXPECT_THAT(fired->timers_delete,
              ElementsAre(TimerRef{kNow + 100, TimerKind::kBackoff, "flight"}));
  EXPECT_EQ(W(fired->saga).attempt, 2u);
  EXPECT_FALSE(PlanTimerFired(Ctx(), p->saga,
                              {kNow + 99, TimerKind::kBackoff, "flight"}));
}

TEST_F(TransitionsTest, NonRetryableKindFailsAtOnceAndCompensatesInReverse) {
  Saga s = Feed(Feed(Start().saga, Ok(0)), Ok(1));  // flight, hotel done
  auto p = PlanAttemptResult(Ctx(), s, Err(2, 1, "http_404"));
  ASSERT_TRUE(p);
  EXPECT_THAT(Types(*p), ElementsAre("step_failed", "saga_compensating",
                                     "attempt_started"));
  EXPECT_EQ(p->saga.state, SagaState::kCompensating);
  EXPECT_EQ(W(p->saga), (Wait{Wait::Kind::kAttempt, PathOf(1), true, 1, 0}));
  EXPECT_EQ(p->events[2].data["idempotency_key"], "S1/hotel/compensate/1");

  Saga c = Feed(p->saga, Ok(1, 1, true));
  EXPECT_EQ(W(c), (Wait{Wait::Kind::kAttempt, PathOf(0), true, 1, 0}));
  auto done = PlanAttemptResult(Ctx(), c, Ok(0, 1, true));
  ASSERT_TRUE(done);
  EXPECT_THAT(Types(*done),
              ElementsAre("compensation_succeeded", "saga_compensated"));
  EXPECT_EQ(done->saga.state, SagaState::kCompensated);
  EXPECT_EQ(done->saga.steps[2].status, StepStatus::kFailed);
  // Each step keeps its own outcome beside its compensation's.
  for (int i : {0, 1}) {
    EXPECT_EQ(done->saga.steps[i].status, StepStatus::kSucceeded) << i;
    EXPECT_EQ(done->saga.steps[i].compensation, CompensationStatus::kSucceeded)
        << i;
  }
  EXPECT_EQ(done->saga.steps[2].compensation, CompensationStatus::kNone);
}

TEST_F(TransitionsTest, ExhaustedRetriesFailTheStep) {
  def_ =
      Def(json::array({BookStep("only", {{"retry", {{"max_attempts", 2}}}})}));
  Saga s = Start().saga;
  auto p1 = PlanAttemptResult(Ctx(), s, Err(0, 1));
  ASSERT_TRUE(p1);
  auto p2 = PlanTimerFired(Ctx(), p1->saga,
                           {W(p1->saga).due_ms, TimerKind::kBackoff, "only"});
  ASSERT_TRUE(p2);
  auto p3 = PlanAttemptResult(Ctx(), p2->saga, Err(0, 2));
  ASSERT_TRUE(p3);
  // Nothing ran to success, so nothing needs compensating.
  EXPECT_THAT(Types(*p3), ElementsAre("step_failed", "saga_compensating",
                                      "saga_compensated"));
}

TEST_F(TransitionsTest, StepWithUnknownOutcomeIsCompensatedToo) {
  def_ = Def(json::array({WithUndo("pay", {{"max_attempts", 1}})}));
  auto p = PlanAttemptResult(Ctx(), Start().saga, Err(0, 1, "timeout"));
  ASSERT_TRUE(p);
  EXPECT_EQ(W(p->saga), (Wait{Wait::Kind::kAttempt, PathOf(0), true, 1, 0}));
}

TEST_F(TransitionsTest, ParkPolicyParksWithADlqEntry) {
  def_ = Def({WithUndo("a"), BookStep("b", {{"retry", {{"max_attempts", 1}}}})},
             "park");
  Saga s = Feed(Start().saga, Ok(0));
  auto p = PlanAttemptResult(Ctx(), s, Err(1, 1));
  ASSERT_TRUE(p);
  EXPECT_THAT(Types(*p), ElementsAre("step_failed", "saga_parked"));
  EXPECT_EQ(p->saga.state, SagaState::kParked);
  ASSERT_TRUE(p->dlq_put);
  EXPECT_EQ(p->dlq_put->reason, "step_failed");
  EXPECT_EQ(p->dlq_put->step, "b");
  EXPECT_EQ(p->dlq_put->attempts, 1u);
  EXPECT_THAT(Actions(*p), ElementsAre("finish"));
}

// The engine plans into plans its commits gave back (Plan::Reset): one
// that held another saga's transition (parked: a DLQ row, a finish, a
// whole snapshot; then patched against a base) plans and builds exactly
// what a new plan does, transition after transition.
TEST_F(TransitionsTest,
       APlanReusedAfterAnotherSagasTransitionPlansWhatANewOneDoes) {
  Plan reused;
  {
    const WorkflowDefinition ordinary = def_;
    def_ =
        Def({WithUndo("a"), BookStep("b", {{"retry", {{"max_attempts", 1}}}})},
            "park");
    const Saga other = Feed(Start().saga, Ok(0));
    std::vector<bool> applied;
    ASSERT_TRUE(
        PlanAttemptResultsInto(Ctx(), other, {Err(1, 1)}, &applied, &reused));
    ASSERT_TRUE(reused.dlq_put);
    // With a base, Build keeps the snapshot body and its layout too.
    const std::string other_body = "not a patch base: the saga parks";
    reused.Build(kNow, {&other, &other_body, nullptr});
    ASSERT_FALSE(reused.body.empty());
    def_ = ordinary;
  }
  Plan started = Start();
  started.Build(kNow);
  Saga s = started.saga;
  std::string body;  // the engine's base: the last commit's snapshot body
  BodyLayout layout;
  {
    CborWriter w(&body);
    WriteSnapshotBody(s, w, &layout);
  }
  for (int step = 0; step < 3; ++step) {
    std::vector<bool> applied;
    std::optional<Plan> fresh =
        PlanAttemptResults(Ctx(), s, {Ok(step)}, &applied);
    ASSERT_TRUE(fresh);
    ASSERT_TRUE(
        PlanAttemptResultsInto(Ctx(), s, {Ok(step)}, &applied, &reused));
    EXPECT_EQ(Types(reused), Types(*fresh)) << step;
    EXPECT_EQ(Actions(reused), Actions(*fresh)) << step;
    EXPECT_EQ(reused.timers_put, fresh->timers_put) << step;
    EXPECT_EQ(reused.timers_delete, fresh->timers_delete) << step;
    EXPECT_EQ(reused.dlq_put.has_value(), fresh->dlq_put.has_value()) << step;
    EXPECT_EQ(reused.previous_state, fresh->previous_state) << step;
    const Plan::Base base{&s, &body, &layout};
    std::vector<std::string> rows[2];
    for (Plan* p : {&*fresh, &reused}) {
      const Transition t = p->Build(kNow + 1 + step, base);
      t.ForEach([&](Cf cf, bool del, std::string_view key, std::string_view v) {
        rows[p == &reused].push_back(std::string(CfName(cf)) +
                                     (del ? " del " : " put ") +
                                     std::string(key) + "=" + std::string(v));
      });
    }
    EXPECT_EQ(rows[1], rows[0]) << step;
    EXPECT_EQ(reused.saga, fresh->saga) << step;
    EXPECT_EQ(reused.body, fresh->body) << step;
    EXPECT_EQ(reused.wrote_snapshot, fresh->wrote_snapshot) << step;
    s = fresh->saga;
    body = fresh->body;
    layout = fresh->body_layout;
  }
  EXPECT_EQ(s.state, SagaState::kCompleted);
}

TEST_F(TransitionsTest, FailedCompensationParksTheSaga) {
  json a = WithUndo("a");
  a["compensate"]["retry"] = {{"max_attempts", 1}};
  def_ = Def({a, BookStep("b", {{"retry", {{"max_attempts", 1}}}})});
  Saga s = Feed(Start().saga, Ok(0));
  s = Feed(s, Err(1, 1));  // compensating a
  auto p = PlanAttemptResult(Ctx(), s, Err(0, 1, "http_500", true));
  ASSERT_TRUE(p);
  EXPECT_THAT(Types(*p), ElementsAre("compensation_failed", "saga_parked"));
  EXPECT_EQ(p->dlq_put->reason, "compensation_failed");
  EXPECT_EQ(p->saga.steps[0].status, StepStatus::kSucceeded);
  EXPECT_EQ(p->saga.steps[0].compensation, CompensationStatus::kFailed);

  // Its replay retries the compensation; the step still says it succeeded.
  auto replayed = PlanReplay(Ctx(), p->saga, "");
  ASSERT_TRUE(replayed.ok());
  // Its attempt numbers go on (a new key), with a fresh budget.
  EXPECT_EQ(W(replayed->saga),
            (Wait{Wait::Kind::kAttempt, PathOf(0), true, 2, 0}));
  EXPECT_EQ(replayed->saga.steps[0].compensation_attempts_base, 1u);
  EXPECT_EQ(replayed->saga.steps[0].status, StepStatus::kSucceeded);
  EXPECT_EQ(replayed->saga.steps[0].compensation, CompensationStatus::kRunning);
}

TEST_F(TransitionsTest, ReplayRestartsTheFailedStepWithAFreshBudget) {
  def_ = Def({WithUndo("a"), BookStep("b", {{"retry", {{"max_attempts", 1}}}})},
             "park");
  Saga parked = Feed(Feed(Start().saga, Ok(0)), Err(1, 1));
  ASSERT_EQ(parked.state, SagaState::kParked);
  auto p = PlanReplay(Ctx(), parked, "");
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(Types(*p), ElementsAre("replayed", "attempt_started"));
  EXPECT_TRUE(p->dlq_delete);
  EXPECT_EQ(p->saga.replay_count, 1u);
  // Attempt 2, not 1 again: a new idempotency key, which a service that
  // kept its answer to attempt 1 (a failure) does not answer from cache.
  EXPECT_EQ(W(p->saga), (Wait{Wait::Kind::kAttempt, PathOf(1), false, 2, 0}));
  EXPECT_EQ(p->events[1].data["idempotency_key"], "S1/b/2");
  EXPECT_EQ(p->saga.steps[1].attempts_base, 1u);
  // A fresh budget of one attempt: the next failure parks it again, and
  // the DLQ counts this run's attempts.
  Plan again = *PlanAttemptResult(Ctx(), p->saga, Err(1, 2));
  EXPECT_EQ(again.saga.state, SagaState::kParked);
  ASSERT_TRUE(again.dlq_put.has_value());
  EXPECT_EQ(again.dlq_put->attempts, 1u);
  // The base survives the snapshot.
  auto back = FromRecord(ToRecord(again.saga), &def_);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, again.saga);
  // from_step reruns that step and everything after it (a's attempts go on
  // too).
  auto from_a = PlanReplay(Ctx(), parked, "a");
  ASSERT_TRUE(from_a.ok());
  EXPECT_EQ(W(from_a->saga).path, "a");
  EXPECT_EQ(W(from_a->saga).attempt, 2u);
  EXPECT_TRUE(PlanReplay(Ctx(), parked, "zzz").status().IsInvalidArgument());
  EXPECT_TRUE(PlanReplay(Ctx(), Start().saga, "").status().IsInvalidArgument());
}

TEST_F(TransitionsTest, CancelDuringAnAttemptWaitsForItsResult) {
  Saga s = Feed(Start().saga, Ok(0));  // hotel in flight
  auto c = PlanCancel(Ctx(), s, true);
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(Types(*c), ElementsAre("cancel_requested"));
  EXPECT_TRUE(c->actions.empty());
  // hotel succeeds: now compensate hotel, then flight, and end cancelled.
  auto p = PlanAttemptResult(Ctx(), c->saga, Ok(1));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->saga.state, SagaState::kCancelling);
  EXPECT_EQ(W(p->saga), (Wait{Wait::Kind::kAttempt, PathOf(1), true, 1, 0}));
  Saga s2 = Feed(p->saga, Ok(1, 1, true));
  auto end = PlanAttemptResult(Ctx(), s2, Ok(0, 1, true));
  ASSERT_TRUE(end);
  EXPECT_EQ(end->saga.state, SagaState::kCancelled);
  EXPECT_THAT(Actions(*end), ElementsAre("finish"));
}

// retry-park-demo cancelled while 'pause' sleeps: the sleep is cut off
// (cancelled, not running), and a step that succeeded without a
// compensation to run still says it succeeded.
TEST_F(TransitionsTest, CancelDuringASleepLeavesNoStepRunning) {
  def_ = Def({BookStep("flaky"),
              {{"name", "pause"},
               {"action", "sleep"},
               {"params", {{"duration_ms", 600000}}}},
              BookStep("report")});
  Saga s = Feed(Start().saga, Ok(0));
  ASSERT_EQ(W(s).kind, Wait::Kind::kSleep);
  for (bool compensate : {true, false}) {
    auto c = PlanCancel(Ctx(), s, compensate);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->saga.state, SagaState::kCancelled);
    EXPECT_THAT(c->timers_delete,
                ElementsAre(TimerRef{W(s).due_ms, TimerKind::kSleep, "pause"}));
    const auto& steps = c->saga.steps;
    EXPECT_EQ(steps[0].status, StepStatus::kSucceeded);
    EXPECT_EQ(steps[0].compensation, compensate
                                         ? CompensationStatus::kNotDefined
                                         : CompensationStatus::kNone);
    EXPECT_EQ(steps[1].status, StepStatus::kCancelled);
    EXPECT_EQ(steps[1].compensation, CompensationStatus::kNone);
    EXPECT_EQ(steps[1].finished_ms, kNow);
    EXPECT_EQ(steps[2].status, StepStatus::kPending);
  }
}

TEST_F(TransitionsTest, CancelWithoutCompensationJustStops) {
  Saga s = Feed(Start().saga, Err(0, 1));  // in backoff
  auto c = PlanCancel(Ctx(), s, false);
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(Types(*c), ElementsAre("cancel_requested", "saga_cancelled"));
  EXPECT_EQ(c->saga.state, SagaState::kCancelled);
  EXPECT_EQ(c->timers_delete.size(), 1u);
}

TEST_F(TransitionsTest, CancelOfFinishedOrParkedSagaIsRefused) {
  Saga s = Start().saga;
  s.state = SagaState::kCompleted;
  auto c = PlanCancel(Ctx(), s, true);
  EXPECT_EQ(c.status().message(),
            "saga S1 is already completed; only running sagas can be "
            "cancelled");
  s.state = SagaState::kParked;
  EXPECT_EQ(PlanCancel(Ctx(), s, true).status().message(),
            "saga S1 is parked in the DLQ; replay or purge it");
}

TEST_F(TransitionsTest, SleepIsADurableTimerThatSucceedsWhenDue) {
  def_ = Def({{{"name", "nap"},
               {"action", "sleep"},
               {"params", {{"duration_ms", "${input.ms}"}}}}});
  Plan p = PlanStart(Ctx(), "S2", {{"ms", 250}}, "", "", "", "", false);
  EXPECT_EQ(W(p.saga),
            (Wait{Wait::Kind::kSleep, PathOf(0), false, 1, kNow + 250}));
  EXPECT_THAT(p.timers_put,
              ElementsAre(TimerRef{kNow + 250, TimerKind::kSleep, "nap"}));
  EXPECT_THAT(Actions(p), ElementsAre("timer sleep nap#1"));
  auto fired =
      PlanTimerFired(Ctx(), p.saga, {kNow + 250, TimerKind::kSleep, "nap"});
  ASSERT_TRUE(fired);
  EXPECT_THAT(Types(*fired), ElementsAre("step_succeeded", "saga_completed"));
  EXPECT_EQ(fired->saga.steps[0].output, json({{"slept_ms", 250}}));
}

TEST_F(TransitionsTest, SleepWithABadDurationFailsPermanently) {
  def_ = Def({{{"name", "nap"},
               {"action", "sleep"},
               {"params", {{"duration_ms", "${input.ms}"}}}}});
  Plan p = PlanStart(Ctx(), "S3", {{"ms", "soon"}}, "", "", "", "", false);
  EXPECT_EQ(p.saga.state, SagaState::kCompensated);
  EXPECT_EQ(p.saga.steps[0].error.kind, "template");
}

TEST(BackoffTest, GrowsByTheMultiplierUpToTheCapWithJitter) {
  RetryPolicy p;
  p.initial_backoff_ms = 100;
  p.multiplier = 2;
  p.max_backoff_ms = 1000;
  p.jitter = 0.2;
  EXPECT_EQ(BackoffMs(p, 2, 0.5), 100);
  EXPECT_EQ(BackoffMs(p, 3, 0.5), 200);
  EXPECT_EQ(BackoffMs(p, 6, 0.5), 1000);  // 1600 capped
  EXPECT_EQ(BackoffMs(p, 2, 0.0), 80);    // -20%
  EXPECT_EQ(BackoffMs(p, 2, 1.0), 120);   // +20%
}

TEST(BackoffTest, NonRetryableMatchesClassesOfHttpStatus) {
  RetryPolicy p;  // default {"http_4xx"}
  EXPECT_TRUE(IsNonRetryable(p, "http_404"));
  EXPECT_FALSE(IsNonRetryable(p, "http_429"));
  EXPECT_FALSE(IsNonRetryable(p, "http_503"));
  p.non_retryable = {"exit_code:3"};
  EXPECT_TRUE(IsNonRetryable(p, "exit_code:3"));
  EXPECT_FALSE(IsNonRetryable(p, "http_404"));
}

}  // namespace
}  // namespace cde
