// One suite, run against both Store implementations (RocksDB and memory):
// what the engine may rely on from any store.
#include <atomic>
#include <limits>
#include <set>
#include <thread>

#include "storage/cbor_writer.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using test::MakeEvent;
using test::MakeIds;
using test::MakeSaga;
using test::WriteOne;

class StoreConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "memory") {
      store_ = NewMemoryStore();
    } else {
      auto opened = OpenRocksStore({.path = dir_.Sub("db")});
      ASSERT_OK(opened.status());
      store_ = std::move(opened).value();
    }
  }

  // Creates a saga in `state` with a one-event log.
  void Create(const std::string& id, const std::string& workflow,
              SagaState state) {
    Transition t;
    t.AppendLog(MakeEvent(id, 1, "saga_started"));
    t.PutSaga(MakeSaga(id, workflow, state), std::nullopt);
    ASSERT_OK(WriteOne(*store_, t));
  }

  // A running saga of "trip" whose snapshot later transitions may patch.
  void CreatePatchable(const std::string& id) {
    Transition t;
    t.AppendLog(MakeEvent(id, 1, "saga_started"));
    SagaRecord rec = MakeSaga(id, "trip", SagaState::kRunning);
    rec.patchable = true;
    t.PutSaga(rec, std::nullopt);
    ASSERT_OK(WriteOne(*store_, t));
  }

  void Move(const std::string& id, const std::string& workflow, SagaState from,
            SagaState to, uint64_t seq) {
    Transition t;
    t.AppendLog(MakeEvent(id, seq));
    t.PutSaga(MakeSaga(id, workflow, to, seq), from);
    ASSERT_OK(WriteOne(*store_, t));
  }

  // Every saga id of a listing, following cursors to the end.
  std::vector<std::string> ListAll(SagaQuery q) {
    std::vector<std::string> ids;
    for (int pages = 0; pages < 1000; ++pages) {
      auto page = store_->ListSagas(q);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      for (const auto& s : page->sagas) ids.push_back(s.id);
      if (page->next_cursor.empty()) break;
      q.cursor = page->next_cursor;
    }
    return ids;
  }

  test::TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreConformanceTest, WrittenSagaReadsBackEqual) {
  auto id = MakeIds(1, 1000)[0];
  Create(id, "trip", SagaState::kRunning);
  auto got = store_->GetSaga(id);
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, MakeSaga(id, "trip", SagaState::kRunning));
}

TEST_P(StoreConformanceTest, MissingSagaIsNotFound) {
  auto got = store_->GetSaga("01ARZ3NDEKTSV4RRFFQ69G5FAV");
  EXPECT_TRUE(got.status().IsNotFound()) << got.status().ToString();
}

TEST_P(StoreConformanceTest, OneTransitionWritesEveryColumnFamilyTogether) {
  auto id = MakeIds(1, 5000)[0];
  Transition t;
  t.AppendLog(MakeEvent(id, 1, "saga_started"));
  t.PutSaga(MakeSaga(id, "trip", SagaState::kParked), std::nullopt);
  t.PutTimer({.due_ms = 9000, .saga_id = id, .name = "redrive"});
  t.PutIdempotency("order-17", id);
  t.PutDlq({.saga_id = id,
            .workflow = "trip",
            .version = 1,
            .reason = "step_failed",
            .step = "book",
            .last_error = "503",
            .attempts = 3,
            .parked_ms = 5001,
            .replay_count = 0});
  t.PutDefinition({.name = "trip",
                   .version = 1,
                   .registered_ms = 1,
                   .definition = {{"steps", nlohmann::json::array()}}});
  ASSERT_OK(WriteOne(*store_, t, /*sync=*/true));

  EXPECT_OK(store_->GetSaga(id).status());
  auto log = store_->ReadLog(id, 1, 10);
  ASSERT_OK(log.status());
  EXPECT_EQ(log->size(), 1u);
  auto timers = store_->DueTimers(9000, 10);
  ASSERT_OK(timers.status());
  EXPECT_EQ(timers->size(), 1u);
  auto idem = store_->LookupIdempotency("order-17");
  ASSERT_OK(idem.status());
  EXPECT_EQ(*idem, id);
  auto dlq = store_->GetDlq(id);
  ASSERT_OK(dlq.status());
  EXPECT_EQ(dlq->last_error, "503");
  EXPECT_EQ(ListAll({.state = SagaState::kParked}),
            std::vector<std::string>{id});
  EXPECT_OK(store_->GetDefinition("trip", 1).status());
}

// A purge (DeleteSaga, DeleteDlq, DeleteIdempotency, DeleteTimer and an
// audit record in one transition) leaves no row of the saga in any column
// family, and the audit record under "audit/" in meta.
TEST_P(StoreConformanceTest, PurgeRemovesEveryRowOfASagaAndAudits) {
  auto ids = MakeIds(2, 6000);
  const std::string id = ids[0], other = ids[1];
  Transition t;
  SagaRecord saga = MakeSaga(id, "trip", SagaState::kParked);
  saga.last_seq = 3;
  saga.idempotency_key = "order-9";
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    t.AppendLog(MakeEvent(id, seq, "e" + std::to_string(seq)));
  }
  t.PutSaga(saga, std::nullopt);
  t.PutTimer({.due_ms = 9100, .saga_id = id, .name = "redrive"});
  t.PutIdempotency("order-9", id);
  const DlqRecord entry{.saga_id = id,
                        .workflow = "trip",
                        .version = 1,
                        .reason = "step_failed",
                        .step = "book",
                        .last_error = "503",
                        .attempts = 3,
                        .parked_ms = 6001,
                        .replay_count = 0};
  t.PutDlq(entry);
  t.AppendLog(MakeEvent(other, 1, "saga_started"));
  t.PutSaga(MakeSaga(other, "trip", SagaState::kParked), std::nullopt);
  ASSERT_OK(WriteOne(*store_, t, /*sync=*/true));

  Transition purge;
  purge.DeleteSaga(saga);
  purge.DeleteDlq(id);
  purge.DeleteIdempotency("order-9");
  purge.DeleteTimer(9100, id, "redrive");
  purge.PutAudit("dlq_purge", id, {{"saga_id", id}, {"purged_ms", 7000}});
  ASSERT_OK(WriteOne(*store_, purge, /*sync=*/true));

  EXPECT_TRUE(store_->GetSaga(id).status().IsNotFound());
  EXPECT_TRUE(store_->GetDlq(id).status().IsNotFound());
  EXPECT_TRUE(store_->LookupIdempotency("order-9").status().IsNotFound());
  EXPECT_EQ(ListAll({.state = SagaState::kParked}),
            std::vector<std::string>{other});
  EXPECT_EQ(ListAll({.workflow = "trip"}), std::vector<std::string>{other});
  for (Cf cf : kAllCfs) {
    Status s =
        store_->ScanRows(cf, [&](std::string_view key, std::string_view value) {
          if (cf == Cf::kMeta && key == AuditKey("dlq_purge", id)) {
            const auto audit = nlohmann::json::from_cbor(value);
            EXPECT_EQ(audit["purged_ms"], 7000);
            return true;
          }
          EXPECT_EQ(key.find(id), std::string_view::npos)
              << "cf " << static_cast<int>(cf) << " key " << PrintableKey(key);
          return true;
        });
    if (s.IsNotSupported()) GTEST_SKIP() << "no ScanRows";
    EXPECT_OK(s);
  }
  bool audited = false;
  ASSERT_OK(
      store_->ScanRows(Cf::kMeta, [&](std::string_view key, std::string_view) {
        audited |= key.starts_with(kAuditPrefix);
        return true;
      }));
  EXPECT_TRUE(audited);
  auto log = store_->ReadLog(other, 1, 10);
  ASSERT_OK(log.status());
  EXPECT_EQ(log->size(), 1u);
}

// A reader never sees a transition half applied: while a writer moves sagas
// from running to completed, each saga is in exactly one state index.
TEST_P(StoreConformanceTest, ItemsReadBackByMapThenIndexForTheirSagaOnly) {
  const auto ids = MakeIds(2, 1000);
  Transition t;
  // Written out of order, and a neighbour saga's item beside them.
  t.PutItem(ids[0], "fan", 300, EncodeItem({{"n", 300}}));
  t.PutItem(ids[0], "fan", 2, EncodeItem({{"n", 2}}));
  t.PutItem(ids[0], "book.eu.fan", 7, EncodeItem({{"n", 7}}));
  t.PutItem(ids[1], "fan", 0, EncodeItem({{"n", 0}}));
  ASSERT_OK(WriteOne(*store_, t));

  auto items = store_->ReadItems(ids[0]);
  ASSERT_OK(items.status());
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ((*items)[0].map_path, "book.eu.fan");
  EXPECT_EQ((*items)[0].index, 7u);
  EXPECT_EQ((*items)[1].index, 2u);  // big-endian: 2 before 300
  EXPECT_EQ((*items)[2].index, 300u);
  EXPECT_EQ((*items)[2].body, nlohmann::json({{"n", 300}}));
  EXPECT_EQ((*items)[2].saga_id, ids[0]);

  Transition undo;
  undo.DeleteItem(ids[0], "fan", 2);
  ASSERT_OK(WriteOne(*store_, undo));
  items = store_->ReadItems(ids[0]);
  ASSERT_OK(items.status());
  EXPECT_EQ(items->size(), 2u);
  auto none = store_->ReadItems("01J00000000000000000000000");
  ASSERT_OK(none.status());
  EXPECT_TRUE(none->empty());
}

// A page of one map step's items: from an index on, in index order, at
// most `limit`, never another map step's (a longer path) or another saga's.
TEST_P(StoreConformanceTest, MapItemsAreReadAPageAtATime) {
  const auto ids = MakeIds(2, 1000);
  Transition t;
  for (uint32_t i : {0u, 1u, 2u, 255u, 256u, 300u}) {
    t.PutItem(ids[0], "fan", i, EncodeItem({{"n", i}}));
  }
  t.PutItem(ids[0], "fan2", 1, EncodeItem({{"n", -1}}));
  t.PutItem(ids[0], "fa", 1, EncodeItem({{"n", -2}}));
  t.PutItem(ids[1], "fan", 5, EncodeItem({{"n", -3}}));
  ASSERT_OK(WriteOne(*store_, t));
  auto indices = [](const std::vector<ItemRecord>& rows) {
    std::vector<uint32_t> out;
    for (const ItemRecord& r : rows) {
      EXPECT_EQ(r.map_path, "fan");
      out.push_back(r.index);
    }
    return out;
  };
  auto all = store_->ReadMapItems(ids[0], "fan", 0, 100);
  ASSERT_OK(all.status());
  EXPECT_EQ(indices(*all), (std::vector<uint32_t>{0, 1, 2, 255, 256, 300}));
  auto page = store_->ReadMapItems(ids[0], "fan", 2, 3);
  ASSERT_OK(page.status());
  EXPECT_EQ(indices(*page), (std::vector<uint32_t>{2, 255, 256}));
  EXPECT_EQ((*page)[1].body, nlohmann::json({{"n", 255}}));
  auto tail = store_->ReadMapItems(ids[0], "fan", 257, 10);
  ASSERT_OK(tail.status());
  EXPECT_EQ(indices(*tail), std::vector<uint32_t>{300});
  auto past = store_->ReadMapItems(ids[0], "fan", 301, 10);
  ASSERT_OK(past.status());
  EXPECT_TRUE(past->empty());
  auto none = store_->ReadMapItems(ids[0], "nope", 0, 10);
  ASSERT_OK(none.status());
  EXPECT_TRUE(none->empty());
}

TEST_P(StoreConformanceTest, CorruptItemIsCorruptionNamingCfAndKey) {
  const auto ids = MakeIds(1, 1000);
  Transition t;
  t.TEST_PutRaw(Cf::kItems, ItemKey(ids[0], "fan", 1), "\x01\xff");
  ASSERT_OK(WriteOne(*store_, t));
  auto items = store_->ReadItems(ids[0]);
  ASSERT_TRUE(items.status().IsCorruption()) << items.status().ToString();
  EXPECT_NE(items.status().message().find("cf 'items'"), std::string::npos)
      << items.status().message();
}

TEST_P(StoreConformanceTest, ReadersNeverSeeHalfAppliedTransitions) {
  const auto ids = MakeIds(200, 10000);
  for (const auto& id : ids) Create(id, "w", SagaState::kRunning);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (const auto& id : ids) {
      Move(id, "w", SagaState::kRunning, SagaState::kCompleted, 2);
    }
    done = true;
  });
  int checks = 0;
  while (!done || checks == 0) {
    auto running =
        store_->ListSagas({.state = SagaState::kRunning, .limit = 1000});
    auto completed =
        store_->ListSagas({.state = SagaState::kCompleted, .limit = 1000});
    EXPECT_OK(running.status());
    EXPECT_OK(completed.status());
    if (!running.ok() || !completed.ok()) break;
    for (const auto& s : running->sagas) {
      EXPECT_EQ(s.state, SagaState::kRunning) << s.id;
    }
    for (const auto& s : completed->sagas) {
      EXPECT_EQ(s.state, SagaState::kCompleted) << s.id;
    }
    ++checks;
  }
  writer.join();
  EXPECT_TRUE(ListAll({.state = SagaState::kRunning}).empty());
  EXPECT_EQ(ListAll({.state = SagaState::kCompleted}).size(), ids.size());
}

TEST_P(StoreConformanceTest, LogReadsBackInSeqOrderAcrossByteBoundaries) {
  auto id = MakeIds(1, 1000)[0];
  // Written out of order and past 255 so that only big-endian keys sort.
  std::vector<uint64_t> seqs;
  for (uint64_t s = 300; s >= 1; --s) seqs.push_back(s);
  for (size_t i = 0; i < seqs.size(); i += 50) {
    Transition t;
    for (size_t j = i; j < i + 50 && j < seqs.size(); ++j) {
      t.AppendLog(MakeEvent(id, seqs[j]));
    }
    ASSERT_OK(WriteOne(*store_, t));
  }
  auto all = store_->ReadLog(id, 1, 1000);
  ASSERT_OK(all.status());
  ASSERT_EQ(all->size(), 300u);
  for (uint64_t i = 0; i < 300; ++i) EXPECT_EQ((*all)[i].seq, i + 1);

  auto tail = store_->ReadLog(id, 256, 10);
  ASSERT_OK(tail.status());
  ASSERT_EQ(tail->size(), 10u);
  EXPECT_EQ(tail->front().seq, 256u);
  EXPECT_EQ(tail->back().seq, 265u);
}

// The engine writes each transition's events as one row keyed by the last
// seq; a read from any seq, with any limit, sees the same events as if each
// were a row of its own, and rows of either form mix in one log.
TEST_P(StoreConformanceTest, LogRowsOfSeveralEventsReadAsSingleEvents) {
  auto id = MakeIds(1, 1000)[0];
  const nlohmann::json data = {{"step", "one"}};
  std::vector<Transition::LogEvent> three(3, {"step_succeeded", &data});
  Transition t;
  t.AppendLog(MakeEvent(id, 1));                      // seq 1 alone
  t.AppendLogEvents(id, 2, 5000, three);              // seqs 2-4, keyed 4
  t.AppendLogEvents(id, 5, 6000, {three.data(), 2});  // seqs 5-6, keyed 6
  ASSERT_OK(WriteOne(*store_, t));
  std::vector<uint64_t> seqs;
  for (uint64_t from = 0; from <= 7; ++from) {
    for (size_t limit = 1; limit <= 7; ++limit) {
      auto log = store_->ReadLog(id, from, limit);
      ASSERT_OK(log.status());
      const uint64_t first = std::max<uint64_t>(from, 1);
      const size_t want =
          first > 6 ? 0 : std::min<size_t>(limit, 6 - first + 1);
      ASSERT_EQ(log->size(), want) << "from " << from << " limit " << limit;
      for (size_t i = 0; i < log->size(); ++i) {
        EXPECT_EQ((*log)[i].seq, first + i);
        EXPECT_EQ((*log)[i].saga_id, id);
      }
    }
  }
  auto all = store_->ReadLog(id, 1, 10);
  ASSERT_OK(all.status());
  EXPECT_EQ((*all)[2].time_ms, 5000);
  EXPECT_EQ((*all)[2].type, "step_succeeded");
  EXPECT_EQ((*all)[2].data, data);
  EXPECT_EQ((*all)[5].time_ms, 6000);
}

// A transition may write, instead of the saga's snapshot, a patch of it in
// its log row (store format 8): every read of the saga applies the patches
// after its snapshot, in order, and reading the log still gives events.
void AppendPatchedRow(Transition& t, const std::string& id, uint64_t seq,
                      const nlohmann::json& patch) {
  const nlohmann::json data = {{"step", "s" + std::to_string(seq)}};
  const Transition::LogEvent event{"step_succeeded", &data};
  t.AppendLogEvents(
      id, seq, 1700000000000 + static_cast<int64_t>(seq), {&event, 1},
      [](const void* p, CborWriter& w) {
        w.Json(*static_cast<const nlohmann::json*>(p));
      },
      &patch);
}

TEST_P(StoreConformanceTest, ReadersApplyTheSnapshotPatchesInTheLogAfterIt) {
  auto ids = MakeIds(3, 1000);
  const std::string& id = ids[0];
  CreatePatchable(id);
  Create(ids[1], "trip", SagaState::kRunning);  // its log follows id's
  Transition t;
  AppendPatchedRow(t, id, 2,
                   {{"set", {{"current_step", 1}, {"waits", {1, 2, 3}}}},
                    {"updated_ms", 70}});
  AppendPatchedRow(t, id, 3,
                   {{"elements", {{"waits", {{1, "two"}}}}},
                    {"unset", {"input"}},
                    {"updated_ms", 80}});
  ASSERT_OK(WriteOne(*store_, t));
  SagaRecord want = MakeSaga(id, "trip", SagaState::kRunning, 3);
  want.patchable = true;
  want.updated_ms = 80;
  want.body = {{"current_step", 1}, {"waits", {1, "two", 3}}};
  auto got = store_->GetSaga(id);
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, want);
  auto listed = store_->ListSagas({.state = SagaState::kRunning});
  ASSERT_OK(listed.status());
  ASSERT_EQ(listed->sagas.size(), 2u);
  EXPECT_EQ(listed->sagas[1], want);
  auto all = store_->ListSagas({});
  ASSERT_OK(all.status());
  ASSERT_EQ(all->sagas.size(), 2u);
  EXPECT_EQ(all->sagas[1], want);
  EXPECT_EQ(all->sagas[0], MakeSaga(ids[1], "trip", SagaState::kRunning));
  auto active = store_->ListActiveSagas();
  ASSERT_OK(active.status());
  ASSERT_EQ(active->sagas.size(), 2u);
  EXPECT_EQ(active->sagas[0], want);
  EXPECT_TRUE(active->unreadable.empty());
  auto log = store_->ReadLog(id, 1, 10);
  ASSERT_OK(log.status());
  ASSERT_EQ(log->size(), 3u);
  EXPECT_EQ((*log)[2].seq, 3u);
  EXPECT_EQ((*log)[2].data, nlohmann::json({{"step", "s3"}}));
  // A whole snapshot written later covers the patches before it.
  Move(id, "trip", SagaState::kRunning, SagaState::kCompleted, 4);
  auto done = store_->GetSaga(id);
  ASSERT_OK(done.status());
  EXPECT_EQ(*done, MakeSaga(id, "trip", SagaState::kCompleted, 4));
  // A snapshot not marked patchable has none after it: its log is not read
  // for them (a row there is verify's to report).
  const std::string& plain = ids[2];
  Create(plain, "trip", SagaState::kRunning);
  Transition stray;
  AppendPatchedRow(stray, plain, 2, {{"updated_ms", 99}});
  ASSERT_OK(WriteOne(*store_, stray));
  auto as_is = store_->GetSaga(plain);
  ASSERT_OK(as_is.status());
  EXPECT_EQ(*as_is, MakeSaga(plain, "trip", SagaState::kRunning));
}

TEST_P(StoreConformanceTest, AnUnfoldableLogRowIsCorruptionNamingIt) {
  const std::vector<std::pair<std::string, nlohmann::json>> bad = {
      {"no updated_ms", {{"set", {{"a", 1}}}}},
      {"set not a map", {{"set", 1}, {"updated_ms", 1}}},
      {"unknown field", {{"replace", 1}, {"updated_ms", 1}}},
      {"unset of a number", {{"unset", {7}}, {"updated_ms", 1}}},
      {"elements of a non-array",
       {{"elements", {{"input", {{0, 1}}}}}, {"updated_ms", 1}}},
      {"element out of range",
       {{"elements", {{"list", {{5, 1}}}}}, {"updated_ms", 1}}},
      {"element not a pair",
       {{"elements", {{"list", {7}}}}, {"updated_ms", 1}}},
  };
  auto ids = MakeIds(static_cast<int>(bad.size()) + 4, 1000);
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(bad[i].first);
    const std::string& id = ids[i];
    Transition t;
    t.AppendLog(MakeEvent(id, 1, "saga_started"));
    SagaRecord rec = MakeSaga(id, "trip", SagaState::kRunning);
    rec.patchable = true;
    rec.body["list"] = {1, 2};
    t.PutSaga(rec, std::nullopt);
    AppendPatchedRow(t, id, 2, bad[i].second);
    ASSERT_OK(WriteOne(*store_, t));
    auto got = store_->GetSaga(id);
    ASSERT_TRUE(got.status().IsCorruption()) << got.status().ToString();
    EXPECT_NE(got.status().message().find("cf 'log' key '" + id),
              std::string::npos)
        << got.status().message();
  }
  // A row after the snapshot without a patch, and one that skips a seq.
  const std::string& bare = ids[bad.size()];
  CreatePatchable(bare);
  {
    Transition t;
    t.AppendLog(MakeEvent(bare, 2));
    ASSERT_OK(WriteOne(*store_, t));
  }
  auto got = store_->GetSaga(bare);
  ASSERT_TRUE(got.status().IsCorruption()) << got.status().ToString();
  EXPECT_NE(got.status().message().find("holds no patch"), std::string::npos)
      << got.status().message();
  const std::string& gap = ids[bad.size() + 1];
  CreatePatchable(gap);
  {
    Transition t;
    AppendPatchedRow(t, gap, 3, {{"updated_ms", 9}});
    ASSERT_OK(WriteOne(*store_, t));
  }
  got = store_->GetSaga(gap);
  ASSERT_TRUE(got.status().IsCorruption()) << got.status().ToString();
  EXPECT_NE(got.status().message().find("begins at seq 3"), std::string::npos)
      << got.status().message();
  // A row under this saga's key that holds another saga's events.
  const std::string& foreign = ids[bad.size() + 2];
  CreatePatchable(foreign);
  {
    Transition other;
    AppendPatchedRow(other, gap, 2, {{"updated_ms", 9}});
    std::string value;
    other.ForEach([&](Cf, bool, std::string_view, std::string_view v) {
      value = std::string(v);
    });
    Transition t;
    t.TEST_PutRaw(Cf::kLog, LogKey(foreign, 2), value);
    ASSERT_OK(WriteOne(*store_, t));
  }
  got = store_->GetSaga(foreign);
  ASSERT_TRUE(got.status().IsCorruption()) << got.status().ToString();
  EXPECT_NE(got.status().message().find("holds events of saga '" + gap),
            std::string::npos)
      << got.status().message();
  // Listed apart, each with its head and the seq of its newest log key,
  // not as a reason to list none.
  const std::string readable = ids[bad.size() + 3];
  Create(readable, "trip", SagaState::kRunning);
  auto active = store_->ListActiveSagas();
  ASSERT_OK(active.status());
  ASSERT_EQ(active->sagas.size(), 1u);
  EXPECT_EQ(active->sagas[0].id, readable);
  ASSERT_EQ(active->unreadable.size(), bad.size() + 3);
  for (const UnreadableSaga& u : active->unreadable) {
    SCOPED_TRACE(u.id);
    EXPECT_TRUE(u.error.IsCorruption());
    EXPECT_NE(u.error.message().find("cf 'log' key '" + u.id),
              std::string::npos)
        << u.error.message();
    EXPECT_EQ(u.workflow, "trip");
    EXPECT_EQ(u.state, SagaState::kRunning);
    ASSERT_TRUE(u.head.has_value());
    EXPECT_EQ(u.head->last_seq, 1u);
    EXPECT_FALSE(u.snapshot.empty());
    EXPECT_EQ(u.last_seq, u.id == gap ? 3u : 2u);
  }
}

TEST_P(StoreConformanceTest, LogOfOneSagaNeverIncludesAnother) {
  auto ids = MakeIds(3, 1000);
  for (const auto& id : ids) Create(id, "w", SagaState::kRunning);
  for (const auto& id : ids) {
    auto log = store_->ReadLog(id, 0, 100);
    ASSERT_OK(log.status());
    ASSERT_EQ(log->size(), 1u);
    EXPECT_EQ(log->front().saga_id, id);
  }
}

TEST_P(StoreConformanceTest, ListingPagesNewestFirstWithoutGapsOrRepeats) {
  auto ids = MakeIds(25, 1000);
  for (const auto& id : ids) Create(id, "w", SagaState::kRunning);
  std::vector<size_t> page_sizes;
  std::vector<std::string> seen;
  SagaQuery q{.limit = 10};
  for (;;) {
    auto page = store_->ListSagas(q);
    ASSERT_OK(page.status());
    page_sizes.push_back(page->sagas.size());
    for (const auto& s : page->sagas) seen.push_back(s.id);
    if (page->next_cursor.empty()) break;
    q.cursor = page->next_cursor;
  }
  EXPECT_EQ(page_sizes, (std::vector<size_t>{10, 10, 5}));
  std::vector<std::string> newest_first(ids.rbegin(), ids.rend());
  EXPECT_EQ(seen, newest_first);
}

TEST_P(StoreConformanceTest, ExactlyFullLastPageHasNoCursor) {
  auto ids = MakeIds(10, 1000);
  for (const auto& id : ids) Create(id, "w", SagaState::kRunning);
  auto page = store_->ListSagas({.limit = 10});
  ASSERT_OK(page.status());
  EXPECT_EQ(page->sagas.size(), 10u);
  EXPECT_EQ(page->next_cursor, "");
}

TEST_P(StoreConformanceTest, ListingFiltersByStateWorkflowAndBoth) {
  auto ids = MakeIds(12, 1000);
  const std::vector<std::string> wfs = {"trip", "deploy", "trip"};
  for (size_t i = 0; i < ids.size(); ++i) {
    Create(ids[i], wfs[i % 3], SagaState::kRunning);
    if (i % 2 == 0) {
      Move(ids[i], wfs[i % 3], SagaState::kRunning, SagaState::kCompleted, 2);
    }
  }
  auto expect = [&](auto pred) {
    std::vector<std::string> want;
    for (size_t i = ids.size(); i-- > 0;) {
      if (pred(i)) want.push_back(ids[i]);
    }
    return want;
  };
  EXPECT_EQ(ListAll({.state = SagaState::kCompleted, .limit = 3}),
            expect([](size_t i) { return i % 2 == 0; }));
  EXPECT_EQ(ListAll({.workflow = "deploy", .limit = 3}),
            expect([](size_t i) { return i % 3 == 1; }));
  EXPECT_EQ(
      ListAll({.state = SagaState::kRunning, .workflow = "trip", .limit = 2}),
      expect([](size_t i) { return i % 2 == 1 && i % 3 != 1; }));
  EXPECT_TRUE(ListAll({.workflow = "tri"}).empty());  // no prefix matches
}

// A query by state alone merges that state's prefix of every workflow, and
// one by workflow alone every state's: newest first, paged without gaps or
// repeats, also where a prefix holds more than one read's worth of ids and
// where workflow names are prefixes of each other.
TEST_P(StoreConformanceTest, ListingMergesTheIndexPrefixesNewestFirst) {
  const std::vector<std::string> workflows = {"big", "a", "a\x01", "ab", "a b"};
  auto ids = MakeIds(700, 1000);
  std::vector<std::string> workflow_of(ids.size());
  std::vector<SagaState> state_of(ids.size());
  Transition t;
  for (size_t i = 0; i < ids.size(); ++i) {
    // Every other saga is big's, all of them running: over 256 in one
    // prefix.
    workflow_of[i] = i % 2 == 0 ? "big" : workflows[1 + (i / 2) % 4];
    state_of[i] =
        i % 2 == 0 || i % 3 == 0 ? SagaState::kRunning : SagaState::kParked;
    t.PutSaga(MakeSaga(ids[i], workflow_of[i], state_of[i]), std::nullopt);
  }
  ASSERT_OK(WriteOne(*store_, t));
  auto expect = [&](auto pred) {
    std::vector<std::string> want;
    for (size_t i = ids.size(); i-- > 0;) {
      if (pred(i)) want.push_back(ids[i]);
    }
    return want;
  };
  const auto running =
      expect([&](size_t i) { return state_of[i] == SagaState::kRunning; });
  ASSERT_GT(running.size(), 400u);
  // SIZE_MAX: cde-admin's --limit takes any 64-bit count.
  for (size_t limit : {size_t{1}, size_t{7}, size_t{300}, size_t{1000},
                       std::numeric_limits<size_t>::max()}) {
    EXPECT_EQ(ListAll({.state = SagaState::kRunning, .limit = limit}), running)
        << "limit " << limit;
  }
  for (const std::string& w : workflows) {
    EXPECT_EQ(ListAll({.workflow = w, .limit = 5}),
              expect([&](size_t i) { return workflow_of[i] == w; }))
        << PrintableKey(w);
  }
  EXPECT_EQ(ListAll({.state = SagaState::kParked,
                     .since_ms = 1100,
                     .until_ms = 1199,
                     .limit = 4}),
            expect([&](size_t i) {
              return state_of[i] == SagaState::kParked && i >= 100 && i < 200;
            }));
  auto stats = store_->Stats();
  ASSERT_OK(stats.status());
  EXPECT_EQ(stats->sagas_by_state["running"], running.size());
  auto active = store_->ListActiveSagas();
  ASSERT_OK(active.status());
  EXPECT_EQ(active->sagas.size(), running.size());
}

TEST_P(StoreConformanceTest, ListingFiltersByCreationTime) {
  auto ids = MakeIds(10, 1000);  // created at ms 1000..1009
  for (const auto& id : ids) Create(id, "w", SagaState::kRunning);
  EXPECT_EQ(ListAll({.since_ms = 1003, .until_ms = 1005}),
            (std::vector<std::string>{ids[5], ids[4], ids[3]}));
  EXPECT_EQ(ListAll({.state = SagaState::kRunning, .since_ms = 1008}),
            (std::vector<std::string>{ids[9], ids[8]}));
}

TEST_P(StoreConformanceTest, StateIndexFollowsTransitions) {
  auto id = MakeIds(1, 1000)[0];
  Create(id, "w", SagaState::kRunning);
  Move(id, "w", SagaState::kRunning, SagaState::kCompensating, 2);
  Move(id, "w", SagaState::kCompensating, SagaState::kCompensated, 3);
  EXPECT_TRUE(ListAll({.state = SagaState::kRunning}).empty());
  EXPECT_TRUE(ListAll({.state = SagaState::kCompensating}).empty());
  EXPECT_EQ(ListAll({.state = SagaState::kCompensated}).size(), 1u);
  EXPECT_EQ(ListAll({.workflow = "w"}).size(), 1u);
}

TEST_P(StoreConformanceTest, ActiveSagasAreRunningCompensatingOrCancelling) {
  auto ids = MakeIds(7, 1000);
  const SagaState states[] = {SagaState::kRunning,   SagaState::kCompensating,
                              SagaState::kCompleted, SagaState::kCompensated,
                              SagaState::kParked,    SagaState::kCancelling,
                              SagaState::kCancelled};
  for (size_t i = 0; i < ids.size(); ++i) {
    Create(ids[i], i % 2 == 0 ? "w" : "v", states[i]);
  }
  auto active = store_->ListActiveSagas();
  ASSERT_OK(active.status());
  std::set<std::string> got;
  for (const auto& s : active->sagas) got.insert(s.id);
  EXPECT_EQ(got, (std::set<std::string>{ids[0], ids[1], ids[5]}));
}

TEST_P(StoreConformanceTest, DueTimersAreThoseAtOrBeforeTheTimeInDueOrder) {
  auto ids = MakeIds(3, 1000);
  Transition t;
  t.PutTimer({.due_ms = 500, .saga_id = ids[0], .name = "backoff"});
  t.PutTimer({.due_ms = -5, .saga_id = ids[1], .name = "sleep"});
  t.PutTimer({.due_ms = 70000, .saga_id = ids[2], .name = "sleep"});
  t.PutTimer({.due_ms = 500, .saga_id = ids[1], .name = "backoff"});
  ASSERT_OK(WriteOne(*store_, t));
  auto due = store_->DueTimers(500, 100);
  ASSERT_OK(due.status());
  ASSERT_EQ(due->size(), 3u);
  EXPECT_EQ((*due)[0].due_ms, -5);
  EXPECT_EQ((*due)[1].due_ms, 500);
  EXPECT_EQ((*due)[2].due_ms, 500);

  Transition del;
  del.DeleteTimer(-5, ids[1], "sleep");
  ASSERT_OK(WriteOne(*store_, del));
  auto after = store_->DueTimers(1 << 30, 100);
  ASSERT_OK(after.status());
  EXPECT_EQ(after->size(), 3u);
  auto limited = store_->DueTimers(1 << 30, 1);
  ASSERT_OK(limited.status());
  EXPECT_EQ(limited->size(), 1u);
}

TEST_P(StoreConformanceTest, IdempotencyKeyFindsItsSaga) {
  auto id = MakeIds(1, 1000)[0];
  Transition t;
  t.PutIdempotency("client-key-1", id);
  ASSERT_OK(WriteOne(*store_, t));
  auto got = store_->LookupIdempotency("client-key-1");
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, id);
  EXPECT_TRUE(store_->LookupIdempotency("client-key-2").status().IsNotFound());
}

TEST_P(StoreConformanceTest, DlqListsFiltersPagesCountsAndForgetsReplayed) {
  auto ids = MakeIds(5, 1000);
  Transition t;
  for (size_t i = 0; i < ids.size(); ++i) {
    t.PutDlq({.saga_id = ids[i],
              .workflow = i % 2 ? "a" : "b",
              .reason = "step_failed"});
  }
  ASSERT_OK(WriteOne(*store_, t));
  auto page = store_->ListDlq({.limit = 2});
  ASSERT_OK(page.status());
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[0].saga_id, ids[0]);
  auto next = store_->ListDlq({.limit = 10, .cursor = page->next_cursor});
  ASSERT_OK(next.status());
  EXPECT_EQ(next->entries.size(), 3u);
  EXPECT_EQ(next->next_cursor, "");
  auto only_a = store_->ListDlq({.workflow = "a"});
  ASSERT_OK(only_a.status());
  EXPECT_EQ(only_a->entries.size(), 2u);

  auto count = store_->CountDlq();
  ASSERT_OK(count.status());
  EXPECT_EQ(*count, 5u);

  Transition replay;
  replay.DeleteDlq(ids[1]);
  ASSERT_OK(WriteOne(*store_, replay));
  EXPECT_TRUE(store_->GetDlq(ids[1]).status().IsNotFound());
  count = store_->CountDlq();
  ASSERT_OK(count.status());
  EXPECT_EQ(*count, 4u);
}

TEST_P(StoreConformanceTest, DefinitionsListByNameThenVersion) {
  Transition t;
  for (uint32_t v : {2u, 10u, 1u}) {
    t.PutDefinition({.name = "trip", .version = v});
  }
  t.PutDefinition({.name = "deploy", .version = 1});
  ASSERT_OK(WriteOne(*store_, t));
  auto all = store_->ListDefinitions();
  ASSERT_OK(all.status());
  std::vector<std::string> got;
  for (const auto& d : *all)
    got.push_back(d.name + "@" + std::to_string(d.version));
  EXPECT_EQ(got, (std::vector<std::string>{"deploy@1", "trip@1", "trip@2",
                                           "trip@10"}));
  EXPECT_TRUE(store_->GetDefinition("trip", 3).status().IsNotFound());
}

TEST_P(StoreConformanceTest, StatsCountSagasByState) {
  auto ids = MakeIds(3, 1000);
  Create(ids[0], "w", SagaState::kRunning);
  Create(ids[1], "w", SagaState::kRunning);
  Create(ids[2], "w", SagaState::kParked);
  auto stats = store_->Stats();
  ASSERT_OK(stats.status());
  EXPECT_EQ(stats->sagas_by_state["running"], 2u);
  EXPECT_EQ(stats->sagas_by_state["parked"], 1u);
}

TEST_P(StoreConformanceTest, CorruptSnapshotIsCorruptionNamingCfAndKey) {
  auto id = MakeIds(1, 1000)[0];
  Transition t;
  t.TEST_PutRaw(Cf::kSagas, id, std::string("\x01\xff\x00garbage", 10));
  t.TEST_PutRaw(Cf::kIdxWorkflowState,
                IdxWorkflowStatePrefix("w", SagaState::kRunning) + id, "");
  ASSERT_OK(WriteOne(*store_, t));
  auto got = store_->GetSaga(id);
  ASSERT_TRUE(got.status().IsCorruption()) << got.status().ToString();
  EXPECT_NE(got.status().message().find("cf 'sagas' key '" + id + "'"),
            std::string::npos)
      << got.status().message();
  // A listing passes over it, naming it and why, and lists the others.
  const std::string ended = MakeIds(2, 1000)[1];
  Create(ended, "w", SagaState::kCompleted);
  for (const SagaQuery& q : {SagaQuery{.state = SagaState::kRunning},
                             SagaQuery{.workflow = "w"}, SagaQuery{}}) {
    auto listed = store_->ListSagas(q);
    ASSERT_OK(listed.status());
    ASSERT_EQ(listed->sagas.size(), q.state ? 0u : 1u);
    if (!q.state) {
      EXPECT_EQ(listed->sagas[0].id, ended);
    }
    ASSERT_EQ(listed->unreadable.size(), 1u);
    EXPECT_EQ(listed->unreadable[0].id, id);
    EXPECT_TRUE(listed->unreadable[0].error.IsCorruption());
    EXPECT_NE(listed->unreadable[0].error.message().find("cf 'sagas' key '" +
                                                         id + "'"),
              std::string::npos)
        << listed->unreadable[0].error.message();
  }
  // The saga the engine resumes are listed; this one apart, as stored.
  auto active = store_->ListActiveSagas();
  ASSERT_OK(active.status());
  EXPECT_TRUE(active->sagas.empty());
  ASSERT_EQ(active->unreadable.size(), 1u);
  const UnreadableSaga& u = active->unreadable[0];
  EXPECT_EQ(u.id, id);
  EXPECT_EQ(u.workflow, "w");
  EXPECT_EQ(u.state, SagaState::kRunning);
  EXPECT_EQ(u.snapshot, std::string("\x01\xff\x00garbage", 10));
  EXPECT_FALSE(u.head.has_value());
  EXPECT_EQ(u.last_seq, 0u);
  EXPECT_NE(u.error.message().find("cf 'sagas' key '" + id + "'"),
            std::string::npos)
      << u.error.message();
  // The same, asked for by id (a dormant saga found unreadable at its
  // wake); a saga with no active index row is not described.
  auto described = store_->DescribeUnreadable(id, u.error);
  ASSERT_OK(described.status());
  EXPECT_EQ(described->workflow, "w");
  EXPECT_EQ(described->state, SagaState::kRunning);
  EXPECT_EQ(described->snapshot, u.snapshot);
  EXPECT_EQ(described->error, u.error);
  EXPECT_TRUE(store_->DescribeUnreadable(ended, u.error).status().IsNotFound());
}

TEST_P(StoreConformanceTest, IndexRowWithoutSnapshotIsCorruption) {
  auto id = MakeIds(1, 1000)[0];
  Transition t;
  t.TEST_PutRaw(Cf::kIdxWorkflowState,
                IdxWorkflowStatePrefix("w", SagaState::kRunning) + id, "");
  ASSERT_OK(WriteOne(*store_, t));
  for (const SagaQuery& q :
       {SagaQuery{.state = SagaState::kRunning}, SagaQuery{.workflow = "w"}}) {
    auto listed = store_->ListSagas(q);
    ASSERT_OK(listed.status());
    EXPECT_TRUE(listed->sagas.empty());
    ASSERT_EQ(listed->unreadable.size(), 1u);
    EXPECT_EQ(listed->unreadable[0].id, id);
    EXPECT_NE(listed->unreadable[0].error.message().find("idx_workflow_state"),
              std::string::npos)
        << listed->unreadable[0].error.message();
  }
  // Its log's keys still give its last seq.
  Transition log;
  log.AppendLog(MakeEvent(id, 1, "saga_started"));
  log.AppendLog(MakeEvent(id, 2));
  ASSERT_OK(WriteOne(*store_, log));
  auto active = store_->ListActiveSagas();
  ASSERT_OK(active.status());
  ASSERT_EQ(active->unreadable.size(), 1u);
  EXPECT_EQ(active->unreadable[0].last_seq, 2u);
  EXPECT_TRUE(active->unreadable[0].snapshot.empty());
  EXPECT_NE(active->unreadable[0].error.message().find("has no snapshot"),
            std::string::npos)
      << active->unreadable[0].error.message();
}

TEST_P(StoreConformanceTest, IndexKeyWithoutAWorkflowIsCorruptionNamingIt) {
  Create(MakeIds(1, 1000)[0], "w", SagaState::kRunning);
  Transition t;
  t.TEST_PutRaw(Cf::kIdxWorkflowState, "no-separator", "");
  ASSERT_OK(WriteOne(*store_, t));
  auto listed = store_->ListSagas({.state = SagaState::kRunning});
  ASSERT_TRUE(listed.status().IsCorruption()) << listed.status().ToString();
  EXPECT_NE(listed.status().message().find(
                "cf 'idx_workflow_state' key 'no-separator'"),
            std::string::npos)
      << listed.status().message();
  EXPECT_TRUE(store_->ListActiveSagas().status().IsCorruption());
  EXPECT_TRUE(store_->Stats().status().IsCorruption());
}

TEST_P(StoreConformanceTest, BadCursorAndZeroLimitAreInvalidArguments) {
  EXPECT_TRUE(
      store_->ListSagas({.cursor = "not-an-id"}).status().IsInvalidArgument());
  EXPECT_TRUE(store_->ListSagas({.limit = 0}).status().IsInvalidArgument());
  EXPECT_TRUE(store_->ListDlq({.limit = 0}).status().IsInvalidArgument());
}

// Every call of a closed store, each returning its Status.
std::vector<std::pair<std::string, Status>> CallEverything(
    Store& store, const std::string& id) {
  Transition t;
  t.PutIdempotency("k", "v");
  return {
      {"Write", WriteOne(store, t)},
      {"health", store.health()},
      {"GetSaga", store.GetSaga(id).status()},
      {"ReadLog", store.ReadLog(id, 1, 10).status()},
      {"ListSagas", store.ListSagas({}).status()},
      {"ListActiveSagas", store.ListActiveSagas().status()},
      {"GetDlq", store.GetDlq(id).status()},
      {"ListDlq", store.ListDlq({}).status()},
      {"DueTimers", store.DueTimers(INT64_MAX, 10).status()},
      {"LookupIdempotency", store.LookupIdempotency("k").status()},
      {"GetDefinition", store.GetDefinition("trip", 1).status()},
      {"ListDefinitions", store.ListDefinitions().status()},
      {"Stats", store.Stats().status()},
      {"CountDlq", store.CountDlq().status()},
      {"ScanRows", store.ScanRows(Cf::kSagas, [](auto, auto) { return true; })},
      {"CatchUp", store.CatchUp()},
  };
}

TEST_P(StoreConformanceTest, EveryCallAfterCloseIsShutdownInProgress) {
  auto id = MakeIds(1, 1000)[0];
  Create(id, "trip", SagaState::kRunning);
  ASSERT_OK(store_->Close());
  for (const auto& [call, status] : CallEverything(*store_, id)) {
    EXPECT_EQ(status.code(), Status::Code::kShutdownInProgress)
        << call << ": " << status.ToString();
  }
  EXPECT_EQ(store_->Checkpoint(dir_.Sub("copy")).code(),
            Status::Code::kShutdownInProgress);
  EXPECT_OK(store_->Close());  // a second close is harmless
}

// Readers on other threads while the store closes: each call either runs
// wholly before the close or is refused, never reads a closed engine.
TEST_P(StoreConformanceTest, CallsRacingCloseRunBeforeItOrAreRefused) {
  auto ids = MakeIds(20, 1000);
  for (const auto& id : ids) Create(id, "trip", SagaState::kRunning);
  std::atomic<int> refused{0};
  std::atomic<int> reading{0};  // readers that have read once
  std::atomic<bool> bad{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 4; ++r) {
    readers.emplace_back([&, r] {
      for (int i = 0;; ++i) {
        auto got =
            store_->GetSaga(ids[static_cast<size_t>(i + r) % ids.size()]);
        auto listed = store_->ListActiveSagas();
        for (const Status& s : {got.status(), listed.status()}) {
          if (s.code() == Status::Code::kShutdownInProgress) continue;
          if (!s.ok()) bad = true;
        }
        if (!got.ok() || !listed.ok()) {
          ++refused;
          return;
        }
        if (listed->sagas.size() != ids.size()) bad = true;
        if (i == 0) ++reading;
      }
    });
  }
  while (reading.load() < 4) std::this_thread::yield();
  ASSERT_OK(store_->Close());
  for (auto& t : readers) t.join();
  EXPECT_FALSE(bad);
  EXPECT_EQ(refused.load(), 4);
}

TEST_P(StoreConformanceTest, ScanRowsListsRawRowsInKeyOrderEvenUndecodable) {
  auto ids = MakeIds(2, 7000);
  Create(ids[1], "trip", SagaState::kCompleted);
  Create(ids[0], "trip", SagaState::kRunning);
  Transition t;
  t.TEST_PutRaw(Cf::kSagas, "ZZ-not-a-saga", "\x09garbage");
  ASSERT_OK(WriteOne(*store_, t));

  std::vector<std::pair<std::string, std::string>> rows;
  ASSERT_OK(store_->ScanRows(Cf::kSagas, [&](auto key, auto value) {
    rows.emplace_back(key, value);
    return true;
  }));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].first, ids[0]);
  EXPECT_EQ(rows[1].first, ids[1]);
  EXPECT_EQ(rows[2], std::make_pair(std::string("ZZ-not-a-saga"),
                                    std::string("\x09garbage")));
  auto decoded = DecodeSaga(rows[0].second, "test");
  ASSERT_OK(decoded.status());
  EXPECT_EQ(decoded->state, SagaState::kRunning);

  std::vector<std::string> index;
  ASSERT_OK(store_->ScanRows(Cf::kIdxWorkflowState, [&](auto key, auto) {
    index.emplace_back(key);
    return true;
  }));
  EXPECT_EQ(
      index,
      (std::vector<std::string>{
          IdxWorkflowStatePrefix("trip", SagaState::kRunning) + ids[0],
          IdxWorkflowStatePrefix("trip", SagaState::kCompleted) + ids[1]}));
  std::vector<std::string> from_second;
  ASSERT_OK(
      store_->ScanRowsFrom(Cf::kSagas, ids[0] + '\0', [&](auto key, auto) {
        from_second.emplace_back(key);
        return true;
      }));
  EXPECT_EQ(from_second, (std::vector<std::string>{ids[1], "ZZ-not-a-saga"}));

  size_t visited = 0;
  ASSERT_OK(store_->ScanRows(Cf::kSagas, [&](auto, auto) {
    ++visited;
    return false;  // stops after the first row
  }));
  EXPECT_EQ(visited, 1u);
}

INSTANTIATE_TEST_SUITE_P(BothStores, StoreConformanceTest,
                         ::testing::Values(std::string("memory"),
                                           std::string("rocks")),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace cde
