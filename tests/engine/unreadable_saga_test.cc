// A saga whose stored rows do not read is set aside when the engine opens:
// parked in the DLQ as poison, with the error naming the row, while every
// other saga resumes. One bad row never keeps the server from starting.
#include <gmock/gmock.h>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/saga.h"
#include "storage/keys.h"
#include "storage/rocks_store.h"
#include "tests/engine/engine_harness.h"
#include "tests/engine/prometheus_parser.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using test::HeldAction;
using test::Workflow;
using ::testing::HasSubstr;

constexpr char kGarbage[] = "\x01\xff\x00not a snapshot";
constexpr size_t kGarbageSize = sizeof(kGarbage) - 1;

Status WriteRaw(Store& store, const Transition& t) {
  const Transition* one = &t;
  return store.Write({&one, 1}, /*sync=*/true);
}

TEST(UnreadableSagaTest, IsParkedAsPoisonWhileTheOthersResume) {
  test::TempDir dir;
  HeldAction before;
  std::vector<std::string> ids;  // 0: bad head, 1: bad patch row, 2: bad body,
                                 // 3: fine
  {
    EngineHarness h;
    ASSERT_OK(h.Open(dir.path(), {{"held", before.AsAction()}}));
    ASSERT_OK(
        h.Register(Workflow("held", {{{"name", "a"}, {"action", "held"}},
                                     {{"name", "b"}, {"action", "held"}}}))
            .status());
    for (int i = 0; i < 4; ++i) {
      auto started = h.Start({.workflow = "held"});
      ASSERT_OK(started.status());
      ids.push_back(started->saga_id);
    }
    ASSERT_TRUE(h.RunUntil([&] { return before.calls() == 4; }));
    ASSERT_OK(h.Close());
  }
  uint64_t patched_seq = 0;  // the seq of the damaged row after saga 1's
  {
    auto opened = OpenRocksStore({.path = dir.path()});
    ASSERT_OK(opened.status());
    Store& store = **opened;
    Transition t;
    t.TEST_PutRaw(Cf::kSagas, ids[0], std::string(kGarbage, kGarbageSize));
    // Saga 1: its snapshot marked patchable, and a log row after it that
    // does not decode, as if a patch had been written torn.
    auto one = store.GetSaga(ids[1]);
    ASSERT_OK(one.status());
    one->patchable = true;
    t.PutSaga(*one, one->state);
    patched_seq = one->last_seq + 1;
    t.TEST_PutRaw(Cf::kLog, LogKey(ids[1], patched_seq), "torn");
    // Saga 2: a head that decodes around a body the engine cannot run.
    auto two = store.GetSaga(ids[2]);
    ASSERT_OK(two.status());
    two->body = {{"steps", "not a list"}};
    t.PutSaga(*two, two->state);
    ASSERT_OK(WriteRaw(store, t));
    ASSERT_OK(store.Close());
  }

  NativeAction after = [](const AttemptRequest&, ActionDone done) {
    done(ActionResult::Success(nullptr));
  };
  EngineHarness h;
  ASSERT_OK(h.Open(dir.path(), {{"held", after}}));
  auto fine = h.AwaitInactive(ids[3]);
  ASSERT_OK(fine.status());
  EXPECT_EQ(fine->state, SagaState::kCompleted);

  const std::vector<std::string> where = {
      "cf 'sagas' key '" + ids[0] + "'",
      "cf 'log' key '" + ids[1],
      "saga '" + ids[2] + "': bad snapshot body",
  };
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(ids[i]);
    auto parked = h.AwaitStored(ids[i], SagaState::kParked);
    ASSERT_OK(parked.status());
    ASSERT_EQ(parked->state, SagaState::kParked);
    EXPECT_EQ(parked->workflow, "held");
    auto dlq = h.engine().store().GetDlq(ids[i]);
    ASSERT_OK(dlq.status());
    EXPECT_EQ(dlq->reason, "poison");
    EXPECT_THAT(dlq->last_error, HasSubstr(where[i]));
    // Set aside, not run: a replay is refused with the same reason.
    auto replayed = h.Replay(ids[i]);
    ASSERT_FALSE(replayed.ok());
    EXPECT_THAT(replayed.status().message(), HasSubstr(where[i]));
  }
  // Saga 0's snapshot as it was stored, kept in the parked one.
  auto zero = h.engine().store().GetSaga(ids[0]);
  ASSERT_OK(zero.status());
  std::string hex;
  for (unsigned char c : std::string(kGarbage, kGarbageSize)) {
    static constexpr char kDigits[] = "0123456789abcdef";
    hex += kDigits[c >> 4];
    hex += kDigits[c & 0xf];
  }
  EXPECT_EQ(zero->body["unreadable"]["snapshot_hex"], hex);
  EXPECT_EQ(zero->version, 0u);  // its head did not decode
  // Saga 1's poisoned event follows the damaged row rather than overwrite it.
  auto one = h.engine().store().GetSaga(ids[1]);
  ASSERT_OK(one.status());
  EXPECT_EQ(one->last_seq, patched_seq + 1);
  EXPECT_EQ(one->version, 1u);  // from its head, which did decode
  auto log = h.engine().store().ReadLog(ids[1], patched_seq + 1, 10);
  ASSERT_OK(log.status());
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0].type, "saga_poisoned");
  // Counted in flight when loaded, out when parked, like any other.
  auto metrics = test::ParsePrometheusText(h.engine().metrics().Render());
  ASSERT_OK(metrics.status());
  EXPECT_EQ(metrics->Value("cde_sagas_in_flight", {}), 0);
  EXPECT_EQ(metrics->Value("cde_dlq_entries", {}), 3);
  ASSERT_OK(h.Close());

  // Parked, they are no longer the engine's to load: a reopen parks nothing
  // twice, and a purge removes one.
  EngineHarness again;
  ASSERT_OK(again.Open(dir.path(), {{"held", after}}));
  auto dlq = again.engine().store().ListDlq({});
  ASSERT_OK(dlq.status());
  EXPECT_EQ(dlq->entries.size(), 3u);
  bool purged = false;
  again.engine().PurgeDlq(ids[0], "test", [&](Result<DlqRecord> r) {
    EXPECT_OK(r.status());
    purged = true;
  });
  ASSERT_TRUE(again.RunUntil([&] { return purged; }));
  EXPECT_TRUE(again.engine().store().GetSaga(ids[0]).status().IsNotFound());
  ASSERT_OK(again.Close());
}

}  // namespace
}  // namespace cde
