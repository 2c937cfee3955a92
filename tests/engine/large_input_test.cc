// A saga's input longer than kSnapshotInputBytes is kept only in its
// saga_started event, not rewritten with every snapshot; wherever the saga
// is read back (recovery, a dormant saga woken, a cancel of a dormant saga,
// a replay, get_saga) it has its input again.
#include <gmock/gmock.h>

#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/saga.h"
#include "tests/engine/engine_harness.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using test::HeldAction;

// An input whose JSON text is longer than the snapshot keeps.
json LargeInput(const std::string& tag) {
  return {{"tag", tag}, {"pad", std::string(kSnapshotInputBytes, 'x')}};
}

json Definition(const std::string& name, json steps, json extra = {}) {
  json doc = {{"name", name}, {"version", 1}, {"steps", std::move(steps)}};
  if (extra.is_object()) doc.update(extra);
  return doc;
}

// The first event of `type` on the log of `id` whose data has
// compensation == `compensation` (null if none).
json EventOf(Store& store, const std::string& id, const std::string& type,
             bool compensation = false) {
  auto log = store.ReadLog(id, 1, 1000);
  if (!log.ok()) return nullptr;
  for (const LogRecord& r : *log) {
    if (r.type == type && r.data.value("compensation", false) == compensation) {
      return r.data;
    }
  }
  return nullptr;
}

Result<SagaRecord> ReadSaga(EngineHarness& h, const std::string& id) {
  std::optional<Result<SagaRecord>> got;
  h.engine().ReadSaga(id, [&](Result<SagaRecord> r) { got = std::move(r); });
  if (!h.RunUntil([&] { return got.has_value(); })) {
    return Status::Aborted("ReadSaga did not answer");
  }
  return std::move(*got);
}

TEST(LargeInputTest, IsKeptInTheLogNotTheSnapshotAndReadBackAfterARestart) {
  test::TempDir dir;
  HeldAction before;
  std::string large_id, small_id;
  {
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"held", before.AsAction()}}));
    ASSERT_OK(h.Register(Definition("tagged",
                                    {{{"name", "hold"}, {"action", "held"}},
                                     {{"name", "say"},
                                      {"action", "echo"},
                                      {"params", {{"tag", "${input.tag}"}}}}}))
                  .status());
    auto large = h.Start({.workflow = "tagged", .input = LargeInput("big-1")});
    auto small = h.Start({.workflow = "tagged", .input = {{"tag", "small-1"}}});
    ASSERT_OK(large.status());
    ASSERT_OK(small.status());
    large_id = large->saga_id;
    small_id = small->saga_id;
    ASSERT_TRUE(h.RunUntil([&] { return before.calls() == 2; }));

    auto stored = h.engine().store().GetSaga(large_id);
    ASSERT_OK(stored.status());
    EXPECT_FALSE(stored->body.contains("input"));
    EXPECT_EQ(stored->body.value("input_in_log", false), true);
    EXPECT_EQ(EventOf(h.engine().store(), large_id, "saga_started")["input"],
              LargeInput("big-1"));
    auto small_stored = h.engine().store().GetSaga(small_id);
    ASSERT_OK(small_stored.status());
    EXPECT_EQ(small_stored->body["input"], json({{"tag", "small-1"}}));
    EXPECT_FALSE(small_stored->body.contains("input_in_log"));

    // get_saga of the saga in memory shows its input.
    auto read = ReadSaga(h, large_id);
    ASSERT_OK(read.status());
    EXPECT_EQ(read->body["input"], LargeInput("big-1"));
    ASSERT_OK(h.Close());  // both attempts in flight: resumed at the reopen
  }
  NativeAction done_at_once = [](const AttemptRequest&, ActionDone done) {
    done(ActionResult::Success(nullptr));
  };
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path(), {{"held", done_at_once}}));
  for (const auto& [id, tag] :
       {std::pair{large_id, "big-1"}, std::pair{small_id, "small-1"}}) {
    auto ended = h.AwaitInactive(id);
    ASSERT_OK(ended.status());
    EXPECT_EQ(ended->state, SagaState::kCompleted) << id;
    EXPECT_EQ(EventOf(h.engine().store(), id, "step_succeeded")["step"],
              "hold");
    EXPECT_EQ(ended->body["steps"][1]["output"], json({{"tag", tag}})) << id;
  }
  // get_saga of the stored saga reads its input from the log.
  auto read = ReadSaga(h, large_id);
  ASSERT_OK(read.status());
  EXPECT_EQ(read->body["input"], LargeInput("big-1"));
}

TEST(LargeInputTest, ADormantSagaWakesWithItsInput) {
  EngineHarness h;
  ASSERT_OK(h.Open("", {}, /*timer_window_ms=*/200));
  ASSERT_OK(h.Register(Definition("nap-then-say",
                                  {{{"name", "nap"},
                                    {"action", "sleep"},
                                    {"params", {{"duration_ms", 1500}}}},
                                   {{"name", "say"},
                                    {"action", "echo"},
                                    {"params", {{"tag", "${input.tag}"}}}}}))
                .status());
  auto started =
      h.Start({.workflow = "nap-then-say", .input = LargeInput("big-2")});
  ASSERT_OK(started.status());
  EXPECT_EQ(h.engine().FindActive(started->saga_id), nullptr);  // dormant
  auto done = h.AwaitStored(started->saga_id, SagaState::kCompleted);
  ASSERT_OK(done.status());
  EXPECT_EQ(done->body["steps"][1]["output"], json({{"tag", "big-2"}}));
}

TEST(LargeInputTest, ADormantSagaCancelledCompensatesWithItsInput) {
  std::vector<json> undone;  // the params of each compensation attempt
  NativeAction undo = [&undone](const AttemptRequest& r, ActionDone done) {
    undone.push_back(r.params);
    done(ActionResult::Success(nullptr));
  };
  EngineHarness h;
  ASSERT_OK(h.Open("", {{"undo", undo}}, /*timer_window_ms=*/200));
  ASSERT_OK(
      h.Register(Definition("book-then-nap",
                            {{{"name", "book"},
                              {"action", "echo"},
                              {"params", {{"booked", "${input.tag}"}}},
                              {"compensate",
                               {{"action", "undo"},
                                {"params", {{"cancelled", "${input.tag}"}}}}}},
                             {{"name", "nap"},
                              {"action", "sleep"},
                              {"params", {{"duration_ms", 600000}}}}}))
          .status());
  auto started =
      h.Start({.workflow = "book-then-nap", .input = LargeInput("big-3")});
  ASSERT_OK(started.status());
  const std::string id = started->saga_id;
  ASSERT_TRUE(h.RunUntil([&] {  // dormant: asleep, on disk only
    auto rec = h.engine().store().GetSaga(id);
    return h.engine().FindActive(id) == nullptr && rec.ok() &&
           rec->body.contains("waits") &&
           rec->body["waits"][0]["kind"] == "sleep";
  }));
  ASSERT_OK(h.Cancel(id, /*compensate=*/true).status());
  ASSERT_OK(h.AwaitStored(id, SagaState::kCancelled).status());
  EXPECT_EQ(undone, std::vector<json>{json({{"cancelled", "big-3"}})});
}

TEST(LargeInputTest, AParkedSagaIsReplayedWithItsInput) {
  HeldAction held;
  EngineHarness h;
  ASSERT_OK(h.Open("", {{"held", held.AsAction()}}));
  ASSERT_OK(h.Register(Definition("parks",
                                  {{{"name", "try"},
                                    {"action", "held"},
                                    {"params", {{"tag", "${input.tag}"}}},
                                    {"retry", {{"max_attempts", 1}}}}},
                                  {{"on_failure", "park"}}))
                .status());
  auto started = h.Start({.workflow = "parks", .input = LargeInput("big-4")});
  ASSERT_OK(started.status());
  const std::string id = started->saga_id;
  ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 1; }));
  ASSERT_TRUE(held.Complete(ActionResult::Failure("down", "not yet")));
  ASSERT_OK(h.AwaitStored(id, SagaState::kParked).status());
  ASSERT_TRUE(h.RunUntil([&] { return h.engine().FindActive(id) == nullptr; }));

  ASSERT_OK(h.Replay(id).status());
  ASSERT_TRUE(h.RunUntil([&] { return held.pending() == 1; }));
  EXPECT_EQ(held.requests().back().params, json({{"tag", "big-4"}}));
  ASSERT_TRUE(held.Complete(ActionResult::Success(nullptr)));
  ASSERT_OK(h.AwaitStored(id, SagaState::kCompleted).status());
}

TEST(LargeInputTest, ASnapshotWhoseInputEventIsMissingIsCorruptionNamingIt) {
  auto store = NewMemoryStore();
  SagaRecord record;
  record.id = "01M91S0000000000000000TEST";
  record.body = {{"input_in_log", true}, {"steps", json::array()}};
  auto saga = FromRecord(record);
  ASSERT_OK(saga.status());
  EXPECT_FALSE(HasInput(*saga));  // cannot run until its input is read
  Status s = LoadLoggedInput(*store, record);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_THAT(s.message(), ::testing::HasSubstr("saga_started event"));
  EXPECT_THAT(s.message(), ::testing::HasSubstr(record.id));
  EXPECT_FALSE(record.body.contains("input"));  // changed nothing
}

}  // namespace
}  // namespace cde
