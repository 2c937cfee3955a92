// The engine end to end on a real loop: sagas run, retry, compensate, park,
// replay, cancel, time out, queue, and resume after a restart.
#include "engine/engine.h"

#include <gmock/gmock.h>

#include <filesystem>
#include <fstream>

#include "engine/workflow_dir.h"
#include "tests/engine/engine_harness.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using test::HeldAction;
using ::testing::ElementsAre;

using test::Workflow;

json FastRetry(int attempts) {
  return {{"max_attempts", attempts},
          {"initial_backoff_ms", 1},
          {"max_backoff_ms", 5},
          {"jitter", 0}};
}

class EngineTest : public ::testing::Test {
 protected:
  void OpenMemory(std::map<std::string, NativeAction> actions = {}) {
    ASSERT_OK(h_.Open("", std::move(actions)));
  }
  std::string StartOk(const std::string& workflow, json input = json::object(),
                      std::string key = "") {
    auto r = h_.Start({.workflow = workflow,
                       .input = std::move(input),
                       .idempotency_key = std::move(key)});
    EXPECT_OK(r.status());
    return r.ok() ? r->saga_id : "";
  }
  // The data of the first `type` event on the log of `id` (null if none).
  json EventData(const std::string& id, const std::string& type) {
    auto log = h_.engine().store().ReadLog(id, 1, 1000);
    EXPECT_OK(log.status());
    for (const LogRecord& r : log.ok() ? *log : std::vector<LogRecord>{}) {
      if (r.type == type) return r.data;
    }
    return nullptr;
  }

  EngineHarness h_;
};

TEST_F(EngineTest, NoopStepsRunToCompletionAndLogEveryTransition) {
  OpenMemory();
  ASSERT_OK(
      h_.Register(Workflow("three", {{{"name", "a"}, {"action", "noop"}},
                                     {{"name", "b"},
                                      {"action", "echo"},
                                      {"params", {{"x", "${input.x}"}}}},
                                     {{"name", "c"}, {"action", "noop"}}}))
          .status());
  const std::string id = StartOk("three", {{"x", 42}});
  auto rec = h_.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
  EXPECT_EQ(rec->body["steps"][1]["output"], json({{"x", 42}}));
  EXPECT_THAT(h_.LogTypes(id), ElementsAre("saga_started", "attempt_started",
                                           "step_succeeded", "attempt_started",
                                           "step_succeeded", "attempt_started",
                                           "step_succeeded", "saga_completed"));
}

// A step handed straight on to the next writes a patch of the snapshot in
// its log row, not the snapshot (store format 8); every read of the store
// applies it. The stored snapshot row stays as the start wrote it until a
// transition that waits or ends writes it whole.
TEST_F(EngineTest, AStepHandedOnWritesAPatchThatReadsAsTheSnapshot) {
  HeldAction held;
  OpenMemory({{"held", held.AsAction()}});
  ASSERT_OK(
      h_.Register(Workflow("hand-on", {{{"name", "a"}, {"action", "noop"}},
                                       {{"name", "b"}, {"action", "held"}},
                                       {{"name", "c"}, {"action", "noop"}}}))
          .status());
  const std::string id = StartOk("hand-on");
  ASSERT_TRUE(h_.RunUntil([&] { return held.pending() == 1; }));
  Store& store = h_.engine().store();
  auto stored_row = [&] {
    SagaRecord raw;
    EXPECT_OK(store.ScanRows(Cf::kSagas, [&](auto key, auto value) {
      if (key == id) raw = DecodeSaga(value, "sagas").value();
      return true;
    }));
    return raw;
  };
  // The start wrote saga_started and attempt_started (seqs 1-2) with the
  // snapshot; a's success and b's attempt (3-4) a patch.
  EXPECT_EQ(stored_row().last_seq, 2u);
  EXPECT_TRUE(stored_row().patchable);
  auto read = store.GetSaga(id);
  ASSERT_OK(read.status());
  EXPECT_EQ(read->last_seq, 4u);
  EXPECT_EQ(read->body["steps"][0]["status"], "succeeded");
  EXPECT_EQ(read->body["steps"][1]["status"], "running");
  EXPECT_EQ(read->body["steps"][1]["attempts"], 1);
  ASSERT_EQ(read->body["waits"].size(), 1u);
  EXPECT_EQ(read->body["waits"][0]["path"], "b");
  auto saga = FromRecord(*read);
  ASSERT_OK(saga.status());
  held.Complete(ActionResult::Success(json{{"booked", 7}}));
  auto done = h_.AwaitInactive(id);
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state, SagaState::kCompleted);
  EXPECT_EQ(done->body["steps"][1]["output"], json({{"booked", 7}}));
  // The end is written whole, and no patch follows it: the row and the
  // read agree.
  EXPECT_EQ(stored_row(), *done);
  EXPECT_FALSE(done->patchable);
  EXPECT_EQ(done->last_seq, 8u);
}

// A saga that goes on from step to step writes its snapshot whole again
// at least every 32 events, so that a reader after a crash folds a few
// patches at most.
TEST_F(EngineTest, ALongRunOfHandOffsRewritesTheWholeSnapshotNowAndThen) {
  HeldAction held;
  OpenMemory({{"held", held.AsAction()}});
  json steps = json::array();
  for (int i = 0; i < 40; ++i) {
    steps.push_back({{"name", "s" + std::to_string(i)}, {"action", "noop"}});
  }
  steps.push_back({{"name", "last"}, {"action", "held"}});
  ASSERT_OK(h_.Register(Workflow("long", steps)).status());
  const std::string id = StartOk("long");
  ASSERT_TRUE(h_.RunUntil([&] { return held.pending() == 1; }));
  Store& store = h_.engine().store();
  SagaRecord raw;
  ASSERT_OK(store.ScanRows(Cf::kSagas, [&](auto key, auto value) {
    if (key == id) raw = DecodeSaga(value, "sagas").value();
    return true;
  }));
  auto read = store.GetSaga(id);
  ASSERT_OK(read.status());
  EXPECT_EQ(read->last_seq, 82u);  // started, then 41 steps of two events
  EXPECT_TRUE(raw.patchable);
  EXPECT_GT(raw.last_seq, 2u) << "never rewritten after the start";
  EXPECT_LE(read->last_seq - raw.last_seq, 32u);
  held.Complete(ActionResult::Success(nullptr));
  ASSERT_EQ(h_.AwaitInactive(id)->state, SagaState::kCompleted);
}

TEST_F(EngineTest, InputThatViolatesTheSchemaStartsNothing) {
  OpenMemory();
  ASSERT_OK(
      h_.Register(
            Workflow("typed", {{{"name", "a"}, {"action", "noop"}}},
                     {{"input_schema",
                       {{"type", "object"},
                        {"required", {"qty"}},
                        {"properties", {{"qty", {{"type", "integer"}}}}}}}}))
          .status());
  auto r = h_.Start({.workflow = "typed", .input = {{"qty", "many"}}});
  ASSERT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("input.qty"), std::string::npos);
  auto listed = h_.engine().store().ListSagas({});
  ASSERT_OK(listed.status());
  EXPECT_TRUE(listed->sagas.empty());
  EXPECT_TRUE(h_.Start({.workflow = "nope"}).status().IsNotFound());
}

TEST_F(EngineTest, StartReportsASagaParkedByItsFirstTransitionAsParked) {
  OpenMemory();
  // The sleep's duration cannot be rendered from this input, so the start
  // itself fails the step and, under on_failure park, parks the saga.
  ASSERT_OK(
      h_.Register(Workflow("bad-sleep",
                           {{{"name", "nap"},
                             {"action", "sleep"},
                             {"params", {{"duration_ms", "${input.ms}"}}}}},
                           {{"on_failure", "park"}}))
          .status());
  auto r = h_.Start({.workflow = "bad-sleep"});
  ASSERT_OK(r.status());
  EXPECT_EQ(r->state, SagaState::kParked);
  auto rec = h_.AwaitInactive(r->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kParked);
}

// Registration accepts "${input.x}" wherever a value of any type may go;
// what it renders to is checked when the step runs. A wrong type fails that
// step with a clear error (and the saga compensates); it never reaches code
// that assumes the registered type.
TEST_F(EngineTest, WholeTemplatesRenderedToTheWrongTypeFailTheStepOnly) {
  OpenMemory();
  const json once = {{"max_attempts", 1}};
  ASSERT_OK(h_.Register(Workflow("late-url",
                                 {{{"name", "call"},
                                   {"action", "http"},
                                   {"retry", once},
                                   {"params", {{"url", "${input.url}"}}}}}))
                .status());
  ASSERT_OK(
      h_.Register(Workflow("late-error", {{{"name", "boom"},
                                           {"action", "fail"},
                                           {"retry", once},
                                           {"params",
                                            {{"error", "${input.error}"},
                                             {"kind", "${input.kind}"}}}}}))
          .status());
  ASSERT_OK(
      h_.Register(Workflow("late-sleep",
                           {{{"name", "nap"},
                             {"action", "sleep"},
                             {"params", {{"duration_ms", "${input.ms}"}}}}}))
          .status());
  struct Case {
    std::string workflow;
    json input;
    std::string kind, message;
  };
  const std::vector<Case> cases = {
      {"late-url",
       {{"url", {{"host", "x"}}}},
       "params",
       "url must be a string"},
      {"late-error",
       {{"error", {1, 2}}, {"kind", "k"}},
       "params",
       "error must be a string, got array"},
      {"late-error",
       {{"error", "e"}, {"kind", 7}},
       "params",
       "kind must be a string, got number"},
      {"late-error", {{"error", "e"}, {"kind", "custom"}}, "custom", "e"},
      // INT64_MAX ms from now would overflow the due time.
      {"late-sleep",
       {{"ms", INT64_MAX}},
       "template",
       "params.duration_ms: must be an integer from 0 to 3155760000000, got "
       "9223372036854775807"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.workflow + " " + c.input.dump());
    auto rec = h_.AwaitInactive(StartOk(c.workflow, c.input));
    ASSERT_OK(rec.status());
    EXPECT_EQ(rec->state, SagaState::kCompensated);
    EXPECT_EQ(rec->body["steps"][0]["error"]["kind"], c.kind);
    EXPECT_EQ(rec->body["steps"][0]["error"]["message"], c.message);
  }
}

TEST_F(EngineTest, SameIdempotencyKeyReturnsTheSameSagaAndStartsNothingNew) {
  HeldAction held;
  OpenMemory({{"held", held.AsAction()}});
  ASSERT_OK(h_.Register(Workflow("w", {{{"name", "a"}, {"action", "held"}}}))
                .status());
  // Two starts in the same loop turn, then a third after both committed.
  std::optional<Result<StartResult>> r1, r2;
  h_.engine().Start({.workflow = "w", .idempotency_key = "order-1"},
                    [&](auto r) { r1.emplace(r); });
  h_.engine().Start({.workflow = "w", .idempotency_key = "order-1"},
                    [&](auto r) { r2.emplace(r); });
  ASSERT_TRUE(h_.RunUntil([&] { return r1 && r2; }));
  ASSERT_OK(r1->status());
  ASSERT_OK(r2->status());
  EXPECT_EQ((*r1)->saga_id, (*r2)->saga_id);
  EXPECT_NE((*r1)->created, (*r2)->created);
  auto r3 = h_.Start({.workflow = "w", .idempotency_key = "order-1"});
  ASSERT_OK(r3.status());
  EXPECT_EQ(r3->saga_id, (*r1)->saga_id);
  EXPECT_FALSE(r3->created);
  ASSERT_TRUE(h_.RunUntil([&] { return held.calls() == 1; }));
  EXPECT_EQ(held.calls(), 1u);
}

TEST_F(EngineTest, FailingStepIsRetriedWithBackoffUntilItSucceeds) {
  OpenMemory();
  ASSERT_OK(h_.Register(Workflow("flaky", {{{"name", "f"},
                                            {"action", "fail"},
                                            {"params", {{"fail_attempts", 2}}},
                                            {"retry", FastRetry(5)}}}))
                .status());
  const std::string id = StartOk("flaky");
  auto rec = h_.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
  EXPECT_EQ(rec->body["steps"][0]["attempts"], 3);
  EXPECT_THAT(h_.LogTypes(id),
              ElementsAre("saga_started", "attempt_started", "attempt_failed",
                          "timer_fired", "attempt_started", "attempt_failed",
                          "timer_fired", "attempt_started", "step_succeeded",
                          "saga_completed"));
}

TEST_F(EngineTest, PermanentFailureCompensatesStartedStepsInReverse) {
  std::vector<std::string> calls;
  NativeAction record = [&](const AttemptRequest& r, ActionDone done) {
    calls.push_back(r.params.at("what").get<std::string>());
    done(ActionResult::Success(nullptr));
  };
  OpenMemory({{"record", record}});
  auto step = [](const std::string& name) {
    return json{
        {"name", name},
        {"action", "record"},
        {"params", {{"what", "do " + name}}},
        {"compensate",
         {{"action", "record"}, {"params", {{"what", "undo " + name}}}}}};
  };
  ASSERT_OK(h_.Register(Workflow("trip", {step("flight"),
                                          step("hotel"),
                                          {{"name", "pay"},
                                           {"action", "fail"},
                                           {"retry", FastRetry(2)}},
                                          step("never")}))
                .status());
  const std::string id = StartOk("trip");
  auto rec = h_.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompensated);
  EXPECT_THAT(
      calls, ElementsAre("do flight", "do hotel", "undo hotel", "undo flight"));
}

TEST_F(EngineTest, ParkedSagaGoesToTheDlqAndReplaysToCompletion) {
  bool healthy = false;
  NativeAction flaky = [&](const AttemptRequest&, ActionDone done) {
    done(healthy ? ActionResult::Success({{"ok", true}})
                 : ActionResult::Failure("http_503", "service unavailable"));
  };
  OpenMemory({{"svc", flaky}});
  ASSERT_OK(
      h_
          .Register(Workflow(
              "p",
              {{{"name", "call"}, {"action", "svc"}, {"retry", FastRetry(2)}}},
              {{"on_failure", "park"}}))
          .status());
  const std::string id = StartOk("p");
  auto rec = h_.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kParked);
  auto dlq = h_.engine().store().GetDlq(id);
  ASSERT_OK(dlq.status());
  EXPECT_EQ(dlq->reason, "step_failed");
  EXPECT_EQ(dlq->step, "call");
  EXPECT_EQ(dlq->attempts, 2u);
  EXPECT_EQ(dlq->last_error, "http_503: service unavailable");

  healthy = true;
  auto replayed = h_.Replay(id, "", "ops-bot");
  ASSERT_OK(replayed.status());
  rec = h_.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
  EXPECT_EQ(rec->body["replayed_by"], "ops-bot");  // who, on the snapshot
  EXPECT_EQ(EventData(id, "replayed")["by"], "ops-bot");  // and the log
  EXPECT_TRUE(h_.engine().store().GetDlq(id).status().IsNotFound());
  EXPECT_TRUE(h_.Replay(id).status().IsInvalidArgument());
}

TEST_F(EngineTest, PurgeDeletesAParkedSagaAndLeavesAnAuditRecord) {
  HeldAction held;
  OpenMemory({{"held", held.AsAction()}});
  ASSERT_OK(
      h_
          .Register(Workflow(
              "p",
              {{{"name", "call"}, {"action", "fail"}, {"retry", FastRetry(1)}}},
              {{"on_failure", "park"}}))
          .status());
  ASSERT_OK(h_.Register(Workflow("h", {{{"name", "a"}, {"action", "held"}}}))
                .status());
  const std::string id = StartOk("p", json::object(), "key-1");
  ASSERT_EQ(h_.AwaitInactive(id)->state, SagaState::kParked);
  const std::string running = StartOk("h");
  auto purge = [&](const std::string& saga) {
    std::optional<Result<DlqRecord>> r;
    h_.engine().PurgeDlq(saga, "ops-bot",
                         [&](Result<DlqRecord> x) { r = std::move(x); });
    EXPECT_TRUE(h_.RunUntil([&] { return r.has_value(); }));
    return r.value_or(Status::Aborted("no answer"));
  };
  EXPECT_TRUE(purge(running).status().IsInvalidArgument());
  auto purged = purge(id);
  ASSERT_OK(purged.status());
  EXPECT_EQ(purged->step, "call");
  Store& store = h_.engine().store();
  EXPECT_TRUE(store.GetSaga(id).status().IsNotFound());
  EXPECT_TRUE(store.GetDlq(id).status().IsNotFound());
  EXPECT_TRUE(store.LookupIdempotency("key-1").status().IsNotFound());
  auto log = store.ReadLog(id, 1, 100);
  ASSERT_OK(log.status());
  EXPECT_TRUE(log->empty());
  json audit;
  ASSERT_OK(store.ScanRows(Cf::kMeta,
                           [&](std::string_view key, std::string_view value) {
                             if (key == AuditKey("dlq_purge", id))
                               audit = json::from_cbor(value);
                             return true;
                           }));
  EXPECT_EQ(audit["saga_id"], id);
  EXPECT_EQ(audit["dlq"]["step"], "call");
  EXPECT_TRUE(audit["purged_ms"].is_number_integer());
  EXPECT_EQ(audit["purged_by"], "ops-bot");
  EXPECT_TRUE(purge(id).status().IsNotFound());
  // The key is free again: a new start makes a new saga.
  const std::string again = StartOk("p", json::object(), "key-1");
  EXPECT_NE(again, id);
  held.Complete(ActionResult::Success(nullptr));
}

TEST_F(EngineTest, CancelStopsAfterTheCurrentAttemptThenCompensates) {
  HeldAction held;
  OpenMemory({{"held", held.AsAction()}});
  ASSERT_OK(h_.Register(Workflow("c", {{{"name", "a"},
                                        {"action", "held"},
                                        {"compensate", {{"action", "held"}}}},
                                       {{"name", "b"}, {"action", "held"}}}))
                .status());
  const std::string id = StartOk("c");
  ASSERT_TRUE(h_.RunUntil([&] { return held.pending() == 1; }));
  auto c = h_.Cancel(id, /*compensate=*/true, "ci-bot");
  ASSERT_OK(c.status());
  EXPECT_EQ(EventData(id, "cancel_requested"),
            json({{"compensate", true}, {"by", "ci-bot"}}));
  EXPECT_EQ(held.calls(), 1u);                    // nothing new starts
  held.Complete(ActionResult::Success(nullptr));  // a finishes
  ASSERT_TRUE(h_.RunUntil([&] { return held.pending() == 1; }));
  EXPECT_TRUE(held.requests().back().compensation);  // undo a, not run b
  held.Complete(ActionResult::Success(nullptr));
  auto rec = h_.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCancelled);
  EXPECT_EQ(rec->body["cancelled_by"], "ci-bot");
  auto again = h_.Cancel(id);
  EXPECT_TRUE(again.status().IsInvalidArgument());
  EXPECT_NE(again.status().message().find("already cancelled"),
            std::string::npos);
}

TEST_F(EngineTest, TimedOutAttemptIsRetriedAndItsLateResultIgnored) {
  HeldAction held;
  OpenMemory({{"held", held.AsAction()}});
  ASSERT_OK(h_.Register(Workflow("t", {{{"name", "slow"},
                                        {"action", "held"},
                                        {"timeout_ms", 1000},
                                        {"retry", FastRetry(5)}}}))
                .status());
  const std::string id = StartOk("t");
  ASSERT_TRUE(h_.RunUntil([&] { return held.calls() == 2; }, 30000));
  // The first attempt answers late: ignored.
  held.Complete(ActionResult::Success({{"attempt", 1}}));
  // Every later one is answered at once; should a loaded machine stall
  // one past its timeout, the next is answered instead.
  ASSERT_TRUE(h_.RunUntil(
      [&] {
        while (held.pending() > 0) {
          const size_t attempt = held.calls() - held.pending() + 1;
          held.Complete(ActionResult::Success({{"attempt", attempt}}));
        }
        return h_.engine().FindActive(id) == nullptr;
      },
      30000));
  auto rec = h_.AwaitInactive(id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);
  const size_t attempt = rec->body["steps"][0]["output"].value("attempt", 0u);
  EXPECT_GE(attempt, 2u);
  EXPECT_EQ(held.requests()[0].idempotency_key, id + "/slow/1");
  ASSERT_GE(held.requests().size(), attempt);
  EXPECT_EQ(held.requests()[attempt - 1].idempotency_key,
            id + "/slow/" + std::to_string(attempt));
}

TEST_F(EngineTest, MaxConcurrencyQueuesStartsInOrder) {
  HeldAction held;
  OpenMemory({{"held", held.AsAction()}});
  ASSERT_OK(h_.Register(Workflow("one", {{{"name", "a"}, {"action", "held"}}},
                                 {{"max_concurrency", 1}}))
                .status());
  const std::string first = StartOk("one");
  const std::string second = StartOk("one");
  ASSERT_TRUE(h_.RunUntil([&] { return held.calls() == 1; }));
  EXPECT_EQ(test::OnlyWait(h_.engine().FindActive(second)).kind,
            Wait::Kind::kQueued);
  EXPECT_EQ(h_.engine().stats().queued, 1u);
  held.Complete(ActionResult::Success(nullptr));
  ASSERT_TRUE(h_.RunUntil([&] { return held.calls() == 2; }));
  EXPECT_EQ(held.requests()[1].saga_id, second);
  held.Complete(ActionResult::Success(nullptr));
  ASSERT_OK(h_.AwaitInactive(second).status());
}

TEST_F(EngineTest, DefinitionVersionsAreImmutableAndSagasKeepTheirs) {
  HeldAction held;
  OpenMemory({{"held", held.AsAction()}});
  json v1 = Workflow("v", {{{"name", "a"}, {"action", "held"}}});
  ASSERT_OK(h_.Register(v1).status());
  ASSERT_OK(h_.Register(v1).status());  // identical: a no-op
  json changed = v1;
  changed["description"] = "something else";
  auto clash = h_.Register(changed);
  EXPECT_TRUE(clash.status().IsAlreadyExists()) << clash.status().ToString();

  const std::string old_saga = StartOk("v");
  json v2 = Workflow("v", {{{"name", "a"}, {"action", "held"}},
                           {{"name", "b"}, {"action", "noop"}}});
  v2["version"] = 2;
  ASSERT_OK(h_.Register(v2).status());
  const std::string new_saga = StartOk("v");
  EXPECT_EQ(h_.engine().FindActive(old_saga)->version, 1u);
  EXPECT_EQ(h_.engine().FindActive(new_saga)->version, 2u);
  ASSERT_TRUE(h_.RunUntil([&] { return held.pending() == 2; }));
  held.Complete(ActionResult::Success(nullptr));
  held.Complete(ActionResult::Success(nullptr));
  auto o = h_.AwaitInactive(old_saga);
  auto n = h_.AwaitInactive(new_saga);
  ASSERT_OK(o.status());
  ASSERT_OK(n.status());
  EXPECT_EQ(o->body["steps"].size(), 1u);
  EXPECT_EQ(n->body["steps"].size(), 2u);
}

// Restart: an attempt in flight at shutdown is re-run with the same
// idempotency key; a sleep keeps its logged due time.
TEST(EngineRestartTest, InFlightAttemptsAndTimersResumeAfterReopen) {
  test::TempDir dir;
  HeldAction before;
  std::string held_id, sleeper_id;
  int64_t sleep_due = 0;
  {
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"held", before.AsAction()}}));
    ASSERT_OK(
        h.Register(Workflow("held", {{{"name", "a"}, {"action", "held"}}}))
            .status());
    ASSERT_OK(
        h.Register(Workflow("nap", {{{"name", "z"},
                                     {"action", "sleep"},
                                     {"params", {{"duration_ms", 2000}}}}}))
            .status());
    auto a = h.Start({.workflow = "held"});
    auto b = h.Start({.workflow = "nap"});
    ASSERT_OK(a.status());
    ASSERT_OK(b.status());
    held_id = a->saga_id;
    sleeper_id = b->saga_id;
    ASSERT_TRUE(h.RunUntil([&] { return before.calls() == 1; }));
    const Saga* sleeper = h.engine().FindActive(sleeper_id);
    ASSERT_NE(sleeper, nullptr) << "slept 2 s before the engine was closed";
    ASSERT_EQ(test::OnlyWait(sleeper).kind, Wait::Kind::kSleep);
    sleep_due = test::OnlyWait(sleeper).due_ms;
    ASSERT_OK(h.Close());
  }
  std::vector<std::string> keys;
  NativeAction after = [&](const AttemptRequest& r, ActionDone done) {
    keys.push_back(r.idempotency_key);
    done(ActionResult::Success(nullptr));
  };
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path(), {{"held", after}}));
  auto held = h.AwaitInactive(held_id);
  ASSERT_OK(held.status());
  EXPECT_EQ(held->state, SagaState::kCompleted);
  EXPECT_THAT(keys, ElementsAre(before.requests()[0].idempotency_key));
  auto slept = h.AwaitInactive(sleeper_id);
  ASSERT_OK(slept.status());
  EXPECT_EQ(slept->state, SagaState::kCompleted);
  EXPECT_GE(slept->updated_ms, sleep_due);
}

// Maintenance (run_sagas = false): a cancel and a replay are committed, no
// action runs and no timer fires; the next normal engine runs what is due.
TEST(MaintenanceTest, CommitsCancelAndReplayAndRunsNothing) {
  test::TempDir dir;
  bool healthy = false;
  std::vector<std::string> calls;  // "step" or "step (undo)"
  NativeAction svc = [&](const AttemptRequest& r, ActionDone done) {
    calls.push_back(r.step + (r.compensation ? " (undo)" : ""));
    done(healthy || r.compensation
             ? ActionResult::Success(nullptr)
             : ActionResult::Failure("http_503", "service unavailable"));
  };
  std::string sleeper_id, parked_id;
  int64_t sleep_due = 0;
  {
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"svc", svc}}));
    ASSERT_OK(h.Register(Workflow("nap", {{{"name", "a"},
                                           {"action", "svc"},
                                           {"compensate", {{"action", "svc"}}}},
                                          {{"name", "z"},
                                           {"action", "sleep"},
                                           {"params", {{"duration_ms", 3000}}}},
                                          {{"name", "b"}, {"action", "svc"}}}))
                  .status());
    ASSERT_OK(h.Register(Workflow("p",
                                  {{{"name", "call"},
                                    {"action", "svc"},
                                    {"retry", FastRetry(1)}}},
                                  {{"on_failure", "park"}}))
                  .status());
    healthy = true;
    auto a = h.Start({.workflow = "nap"});
    ASSERT_OK(a.status());
    sleeper_id = a->saga_id;
    ASSERT_TRUE(h.RunUntil([&] {
      const Saga* s = h.engine().FindActive(sleeper_id);
      return test::OnlyWait(s).kind == Wait::Kind::kSleep;
    }));
    sleep_due = test::OnlyWait(h.engine().FindActive(sleeper_id)).due_ms;
    healthy = false;
    auto b = h.Start({.workflow = "p"});
    ASSERT_OK(b.status());
    parked_id = b->saga_id;
    ASSERT_OK(h.AwaitInactive(parked_id).status());
    ASSERT_OK(h.Close());
  }
  ASSERT_THAT(calls, ElementsAre("a", "call"));
  calls.clear();
  healthy = true;
  {
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"svc", svc}}, 60000, /*run_sagas=*/false));
    auto c = h.Cancel(sleeper_id);
    ASSERT_OK(c.status());
    EXPECT_EQ(*c, SagaState::kCancelling);  // stops when the sleep ends
    auto r = h.Replay(parked_id);
    ASSERT_OK(r.status());
    EXPECT_EQ(*r, SagaState::kRunning);
    // Until past the sleep's end: nothing runs, nothing fires.
    ASSERT_TRUE(h.RunUntil(
        [&] { return test::WallClockMs() > sleep_due + 100; }, 30000));
    EXPECT_TRUE(calls.empty());
    auto stored = h.engine().store().GetSaga(sleeper_id);
    ASSERT_OK(stored.status());
    EXPECT_EQ(stored->state, SagaState::kCancelling);
    EXPECT_TRUE(h.engine().store().GetDlq(parked_id).status().IsNotFound());
    ASSERT_OK(h.Close());
  }
  EXPECT_TRUE(calls.empty());
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path(), {{"svc", svc}}));
  auto undone = h.AwaitInactive(sleeper_id);
  ASSERT_OK(undone.status());
  EXPECT_EQ(undone->state, SagaState::kCancelled);
  auto replayed = h.AwaitInactive(parked_id);
  ASSERT_OK(replayed.status());
  EXPECT_EQ(replayed->state, SagaState::kCompleted);
  EXPECT_THAT(calls, ::testing::UnorderedElementsAre("a (undo)", "call"));
  ASSERT_OK(h.Close());
}

}  // namespace
}  // namespace cde

namespace cde {
namespace {

// Registers the files of `dir` on `h`'s engine: what RegisterWorkflowDir
// reported, or nothing if it never did.
std::optional<Result<std::vector<DefinitionRecord>>> RegisterDir(
    test::EngineHarness& h, const std::string& dir) {
  std::optional<Result<std::vector<DefinitionRecord>>> loaded;
  RegisterWorkflowDir(h.engine(), dir,
                      [&](auto r) { loaded.emplace(std::move(r)); });
  h.RunUntil([&] { return loaded.has_value(); });
  return loaded;
}

// Why registering `dir` was refused (an InvalidArgument's message), or
// what happened instead, in parentheses.
std::string RefusalOf(test::EngineHarness& h, const std::string& dir) {
  auto loaded = RegisterDir(h, dir);
  if (!loaded.has_value()) return "(no answer)";
  if (!loaded->status().IsInvalidArgument()) {
    return "(not refused: " + loaded->status().ToString() + ")";
  }
  return loaded->status().message();
}

TEST(WorkflowDirTest, LoadsEveryExampleAndAgainAsANoop) {
  size_t files = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(CDE_EXAMPLES_DIR)) {
    files += entry.path().extension() == ".json";
  }
  ASSERT_GE(files, 4u);
  test::EngineHarness h;
  ASSERT_OK(h.Open(""));
  for (int round = 0; round < 2; ++round) {
    std::optional<Result<std::vector<DefinitionRecord>>> loaded =
        RegisterDir(h, CDE_EXAMPLES_DIR);
    ASSERT_TRUE(loaded.has_value());
    ASSERT_OK(loaded->status());
    EXPECT_EQ((*loaded)->size(), files);
  }
  EXPECT_EQ(h.engine().ListWorkflows().size(), files);
}

TEST(WorkflowDirTest, BadFileIsNamedInTheError) {
  test::TempDir dir;
  std::ofstream(dir.Sub("a-good.json"))
      << R"({"name": "ok", "version": 1, "steps": [{"name": "s", "action": "noop"}]})";
  std::ofstream(dir.Sub("b-bad.json")) << R"({"name": "bad", "version": 0})";
  test::EngineHarness h;
  ASSERT_OK(h.Open(""));
  const std::string refusal = RefusalOf(h, dir.path());
  EXPECT_NE(refusal.find("b-bad.json: invalid workflow definition: version: "
                         "must be"),
            std::string::npos)
      << refusal;
}

TEST(WorkflowDirTest, FileNestedTooDeepIsRefusedByName) {
  test::TempDir dir;
  std::ofstream(dir.Sub("deep.json"))
      << R"({"name": "deep", "version": 1, "steps": [{"name": "s", )"
      << R"("action": "echo", "params": {"x": )" << std::string(5000, '[')
      << std::string(5000, ']') << "}}]}";
  test::EngineHarness h;
  ASSERT_OK(h.Open(""));
  const std::string refusal = RefusalOf(h, dir.path());
  EXPECT_NE(refusal.find("deep.json: arrays and objects nest 5004 levels "
                         "deep; at most 512 are accepted"),
            std::string::npos)
      << refusal;
  EXPECT_TRUE(h.engine().ListWorkflows().empty());
}

}  // namespace
}  // namespace cde

namespace cde {
namespace {

json SleepFlow(int ms) {
  return {
      {"name", "nap"},
      {"version", 1},
      {"steps",
       {{{"name", "z"}, {"action", "sleep"}, {"params", {{"duration_ms", ms}}}},
        {{"name", "after"}, {"action", "noop"}}}}};
}

// A saga sleeping beyond the timer window leaves memory; its durable timer
// row brings it back in time to wake up.
TEST(TimerWindowTest, FarSleepersLeaveMemoryAndWakeOnTime) {
  test::EngineHarness h;
  ASSERT_OK(h.Open("", {}, /*timer_window_ms=*/200));
  // 3 s: the start returns long before the sleep nears its window, even
  // in a sanitizer build on a loaded machine.
  ASSERT_OK(h.Register(SleepFlow(3000)).status());
  auto started = h.Start({.workflow = "nap"});
  ASSERT_OK(started.status());
  const std::string id = started->saga_id;
  EXPECT_EQ(h.engine().FindActive(id), nullptr);  // dormant
  EXPECT_EQ(h.engine().stats().timers_pending, 0u);
  auto done = h.AwaitStored(id, SagaState::kCompleted);
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state, SagaState::kCompleted);
  EXPECT_GE(done->body["steps"][0]["output"]["slept_ms"].get<int64_t>(), 3000);
}

TEST(TimerWindowTest, DormantSagaCanBeCancelled) {
  test::EngineHarness h;
  ASSERT_OK(h.Open("", {}, 200));
  ASSERT_OK(h.Register(SleepFlow(60000)).status());
  auto started = h.Start({.workflow = "nap"});
  ASSERT_OK(started.status());
  ASSERT_EQ(h.engine().FindActive(started->saga_id), nullptr);
  auto c = h.Cancel(started->saga_id, false);
  ASSERT_OK(c.status());
  auto rec = h.AwaitStored(started->saga_id, SagaState::kCancelled);
  ASSERT_OK(rec.status());
  auto timers = h.engine().store().DueTimers(INT64_MAX, 10);
  ASSERT_OK(timers.status());
  EXPECT_TRUE(timers->empty());  // the cancel deleted the timer row
}

TEST(TimerWindowTest, DormantSagasStayOnDiskAcrossARestartUntilDue) {
  test::TempDir dir;
  std::string id;
  {
    test::EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {}, 200));
    ASSERT_OK(h.Register(SleepFlow(4000)).status());  // outlasts a slow reopen
    auto started = h.Start({.workflow = "nap"});
    ASSERT_OK(started.status());
    id = started->saga_id;
    ASSERT_OK(h.Close());
  }
  test::EngineHarness h;
  ASSERT_OK(h.Open(dir.path(), {}, 200));
  EXPECT_EQ(h.engine().FindActive(id), nullptr);  // not loaded at start
  ASSERT_OK(h.AwaitStored(id, SagaState::kCompleted).status());
}

}  // namespace
}  // namespace cde

namespace cde {
namespace {

// Two registrations of one new version in the same loop turn: only the
// first is written; the other is told to retry, and a retry with different
// content is refused, so a version never changes once registered.
TEST(RegisterRaceTest, OneNewVersionIsWrittenOnce) {
  test::EngineHarness h;
  ASSERT_OK(h.Open(""));
  json a = {{"name", "r"},
            {"version", 1},
            {"steps", {{{"name", "s"}, {"action", "noop"}}}}};
  json b = a;
  b["description"] = "other";
  std::optional<Result<DefinitionRecord>> ra, rb;
  h.engine().RegisterWorkflow(a, [&](auto r) { ra.emplace(std::move(r)); });
  h.engine().RegisterWorkflow(b, [&](auto r) { rb.emplace(std::move(r)); });
  ASSERT_TRUE(h.RunUntil([&] { return ra && rb; }));
  ASSERT_OK(ra->status());
  EXPECT_EQ(rb->status().code(), Status::Code::kBusy);
  EXPECT_TRUE(h.Register(b).status().IsAlreadyExists());
  auto stored = h.engine().store().GetDefinition("r", 1);
  ASSERT_OK(stored.status());
  EXPECT_EQ(stored->definition, a);
}

}  // namespace
}  // namespace cde
