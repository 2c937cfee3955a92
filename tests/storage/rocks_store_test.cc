// What only the RocksDB store does: persistence across reopen, the format
// version guard, read-only and secondary opens, checkpoints, and refusing
// writes after a failed sync or a full disk.
#include "storage/rocks_store.h"

#include <chrono>
#include <fstream>
#include <functional>
#include <future>

#include "storage/commit_writer.h"
#include "storage/keys.h"
#include "tests/storage/faulty_fs.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using test::MakeEvent;
using test::MakeIds;
using test::MakeSaga;
using test::WriteOne;

std::unique_ptr<Store> Open(const std::string& path,
                            OpenMode mode = OpenMode::kReadWrite,
                            rocksdb::Env* env = nullptr) {
  auto s = OpenRocksStoreWithEnv({.path = path, .mode = mode}, env);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

TEST(RocksStoreTest, DataSurvivesCloseAndReopen) {
  test::TempDir dir;
  auto id = MakeIds(1, 1000)[0];
  {
    auto store = Open(dir.path());
    ASSERT_OK(WriteOne(*store, test::SagaStep(id), true));
    ASSERT_OK(store->Close());
  }
  auto store = Open(dir.path());
  ASSERT_TRUE(store);
  EXPECT_OK(store->GetSaga(id).status());
}

TEST(RocksStoreTest, CloseFlushesSoReopenReplaysNoWal) {
  test::TempDir dir;
  {
    auto store = Open(dir.path());
    for (const auto& id : MakeIds(50, 1000)) {
      ASSERT_OK(WriteOne(*store, test::SagaStep(id), true));
    }
    ASSERT_OK(store->Close());
  }
  auto store = Open(dir.path());
  auto stats = store->Stats();
  ASSERT_OK(stats.status());
  EXPECT_EQ(stats->engine["wal_bytes"], 0u);
  EXPECT_GT(stats->engine["sst_files"], 0u);
  EXPECT_EQ(stats->sagas_by_state["running"], 50u);
}

TEST(RocksStoreTest, NewerFormatVersionIsRefusedWithAClearMessage) {
  test::TempDir dir;
  {
    auto store = Open(dir.path());
    Transition t;
    t.PutFormatVersion(kFormatVersion + 1);
    ASSERT_OK(WriteOne(*store, t, true));
  }
  for (OpenMode mode : {OpenMode::kReadWrite, OpenMode::kReadOnly}) {
    auto s = OpenRocksStore({.path = dir.path(), .mode = mode});
    ASSERT_TRUE(s.status().IsNotSupported()) << s.status().ToString();
    EXPECT_NE(s.status().message().find("store format version " +
                                        std::to_string(kFormatVersion + 1) +
                                        " is newer"),
              std::string::npos)
        << s.status().message();
  }
}

TEST(RocksStoreTest, DirectoryWithOtherFilesIsNotTurnedIntoAStore) {
  test::TempDir dir;
  std::ofstream(dir.Sub("notes.txt")) << "hello";
  auto s = OpenRocksStore({.path = dir.path()});
  ASSERT_TRUE(s.status().IsInvalidArgument()) << s.status().ToString();
  EXPECT_NE(s.status().message().find("holds no store"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir.Sub("notes.txt")));
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("CURRENT")));
}

TEST(RocksStoreTest, ReadOnlyOpenOfMissingStoreFailsAndCreatesNothing) {
  test::TempDir dir;
  auto s =
      OpenRocksStore({.path = dir.Sub("none"), .mode = OpenMode::kReadOnly});
  ASSERT_TRUE(s.status().IsInvalidArgument()) << s.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("none")));
}

TEST(RocksStoreTest, ReadOnlyStoreRefusesWrites) {
  test::TempDir dir;
  Open(dir.path()).reset();
  auto ro = Open(dir.path(), OpenMode::kReadOnly);
  ASSERT_TRUE(ro);
  EXPECT_TRUE(WriteOne(*ro, test::SagaStep(MakeIds(1, 1)[0])).IsNotSupported());
}

TEST(RocksStoreTest, SecondaryFollowsARunningPrimaryOnCatchUp) {
  test::TempDir dir;
  auto ids = MakeIds(2, 1000);
  auto primary = Open(dir.path());
  ASSERT_OK(WriteOne(*primary, test::SagaStep(ids[0]), true));

  auto secondary = Open(dir.path(), OpenMode::kSecondary);
  ASSERT_TRUE(secondary);
  EXPECT_OK(secondary->GetSaga(ids[0]).status());
  EXPECT_TRUE(secondary->GetSaga(ids[1]).status().IsNotFound());

  ASSERT_OK(WriteOne(*primary, test::SagaStep(ids[1]), true));
  ASSERT_OK(secondary->CatchUp());
  EXPECT_OK(secondary->GetSaga(ids[1]).status());
}

TEST(RocksStoreTest, CheckpointIsAStoreThatOpensOnItsOwn) {
  test::TempDir dir;
  auto id = MakeIds(1, 1000)[0];
  auto store = Open(dir.Sub("live"));
  ASSERT_OK(WriteOne(*store, test::SagaStep(id), true));
  ASSERT_OK(store->Checkpoint(dir.Sub("backup")));
  auto copy = Open(dir.Sub("backup"));
  ASSERT_TRUE(copy);
  EXPECT_OK(copy->GetSaga(id).status());
  EXPECT_FALSE(store->Checkpoint(dir.Sub("backup")).ok());  // exists already
}

// A failed synced write leaves the fate of its batch unknown: every waiter
// of that batch and every later write fails until the store is reopened,
// and everything acknowledged before is still there after the reopen.
// Both commit writers: the group-commit one and the pipelined one.
class RocksStoreWriterTest : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(Writers, RocksStoreWriterTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "Pipelined" : "GroupCommit";
                         });

TEST_P(RocksStoreWriterTest, FailedSyncFailsWaitersAndRefusesLaterWrites) {
  test::TempDir dir;
  test::FaultSwitches sw;
  auto env = test::NewFaultyEnv(&sw);
  auto ids = MakeIds(3, 1000);
  {
    auto store = Open(dir.path(), OpenMode::kReadWrite, env.get());
    ASSERT_TRUE(store);
    CommitWriter writer(store.get(), {.pipeline = GetParam()});
    auto commit = [&](const std::string& id) {
      std::promise<Status> done;
      writer.Enqueue(test::SagaStep(id),
                     [&](const Status& s) { done.set_value(s); });
      return done.get_future().get();
    };
    ASSERT_OK(commit(ids[0]));
    sw.fail_sync = true;
    Status failed = commit(ids[1]);
    EXPECT_TRUE(failed.IsIOError()) << failed.ToString();
    sw.fail_sync = false;
    Status later = commit(ids[2]);
    EXPECT_FALSE(later.ok());
    EXPECT_NE(later.message().find("refuses writes"), std::string::npos)
        << later.ToString();
    EXPECT_FALSE(store->health().ok());
    writer.Stop();
  }
  auto reopened = Open(dir.path());
  ASSERT_TRUE(reopened);
  ASSERT_OK(reopened->health());
  EXPECT_OK(reopened->GetSaga(ids[0]).status());
  EXPECT_TRUE(reopened->GetSaga(ids[2]).status().IsNotFound());
  EXPECT_OK(WriteOne(*reopened, test::SagaStep(ids[2]), true));
}

Status WriteUnsynced(Store& store, Transition t) {
  const Transition* batch[] = {&t};
  return store.WriteUnsynced(batch);
}

TEST(RocksStoreTest, AnUnsyncedWriteIsReadOnlyOnceASyncCoversIt) {
  test::TempDir dir;
  auto store = Open(dir.path());
  ASSERT_TRUE(store);
  auto ids = MakeIds(4, 1000);
  ASSERT_OK(WriteOne(*store, test::SagaStep(ids[0]), true));
  ASSERT_OK(WriteUnsynced(*store, test::SagaStep(ids[1])));
  // Not synced: no read shows it, whether by id, list or index.
  EXPECT_TRUE(store->GetSaga(ids[1]).status().IsNotFound());
  auto page = store->ListSagas({.limit = 10});
  ASSERT_OK(page.status());
  ASSERT_EQ(page->sagas.size(), 1u);
  EXPECT_EQ(page->sagas[0].id, ids[0]);
  ASSERT_OK(store->SyncWritten());
  EXPECT_OK(store->GetSaga(ids[1]).status());
  // A second sync with nothing new written is a no-op.
  ASSERT_OK(store->SyncWritten());
  // A synced write syncs every write before it: both are read at once.
  ASSERT_OK(WriteUnsynced(*store, test::SagaStep(ids[2])));
  EXPECT_TRUE(store->GetSaga(ids[2]).status().IsNotFound());
  ASSERT_OK(WriteOne(*store, test::SagaStep(ids[3]), true));
  EXPECT_OK(store->GetSaga(ids[2]).status());
  EXPECT_OK(store->GetSaga(ids[3]).status());
  ASSERT_OK(store->SyncWritten());
  ASSERT_OK(store->Close());
  auto reopened = Open(dir.path());
  ASSERT_TRUE(reopened);
  for (const auto& id : ids) EXPECT_OK(reopened->GetSaga(id).status()) << id;
}

TEST(RocksStoreTest, AFailedSyncShowsNothingItCarriedAndRefusesLaterWrites) {
  test::TempDir dir;
  test::FaultSwitches sw;
  auto env = test::NewFaultyEnv(&sw);
  auto store = Open(dir.path(), OpenMode::kReadWrite, env.get());
  ASSERT_TRUE(store);
  auto ids = MakeIds(3, 1000);
  ASSERT_OK(WriteUnsynced(*store, test::SagaStep(ids[0])));
  ASSERT_OK(store->SyncWritten());
  ASSERT_OK(WriteUnsynced(*store, test::SagaStep(ids[1])));
  sw.fail_sync = true;
  Status failed = store->SyncWritten();
  EXPECT_TRUE(failed.IsIOError()) << failed.ToString();
  sw.fail_sync = false;
  EXPECT_OK(store->GetSaga(ids[0]).status());
  EXPECT_TRUE(store->GetSaga(ids[1]).status().IsNotFound());
  Status later = WriteUnsynced(*store, test::SagaStep(ids[2]));
  EXPECT_NE(later.message().find("refuses writes"), std::string::npos)
      << later.ToString();
  EXPECT_FALSE(store->SyncWritten().ok());
  EXPECT_FALSE(store->health().ok());
}

// A synced write of a step for each of `ids` (a large group: RocksKv syncs
// its WAL beside its memtable inserts, storage/wal_progress.h); with
// `on_durable`, through Store::WriteSynced.
Status WriteGroup(Store& store, const std::vector<std::string>& ids,
                  const std::function<void()>& on_durable = nullptr) {
  std::vector<Transition> group;
  for (const auto& id : ids) group.push_back(test::SagaStep(id));
  std::vector<const Transition*> batch;
  for (const auto& t : group) batch.push_back(&t);
  return on_durable ? store.WriteSynced(batch, on_durable)
                    : store.Write(batch, /*sync=*/true);
}

// Groups whose WAL sync ran beside their inserts, resynced or not.
uint64_t GroupsSyncedBesideInserts(Store& store) {
  auto stats = store.Stats();
  EXPECT_OK(stats.status());
  if (!stats.ok()) return 0;
  uint64_t n = 0;
  for (const char* name : {"wal_syncs_beside_inserts", "wal_resyncs"}) {
    if (stats->engine.count(name)) n += stats->engine.at(name);
  }
  return n;
}

TEST(RocksStoreTest,
     ALargeGroupSyncedBesideItsInsertsIsReadOnceTheWriteReturns) {
  test::TempDir dir;
  auto ids = MakeIds(48, 1000);
  {
    auto store = Open(dir.path());
    ASSERT_TRUE(store);
    ASSERT_OK(WriteGroup(*store, ids));
    EXPECT_EQ(GroupsSyncedBesideInserts(*store), 1u);
    for (const auto& id : ids) EXPECT_OK(store->GetSaga(id).status()) << id;
    // A small group is written as before: RocksDB syncs, then inserts.
    ASSERT_OK(WriteOne(*store, test::SagaStep(ids[0], 2), true));
    EXPECT_EQ(GroupsSyncedBesideInserts(*store), 1u);
  }
  auto reopened = Open(dir.path());
  ASSERT_TRUE(reopened);
  for (const auto& id : ids) EXPECT_OK(reopened->GetSaga(id).status()) << id;
}

uint64_t WritesDurableBeforeInserts(Store& store) {
  auto stats = store.Stats();
  EXPECT_OK(stats.status());
  return stats.ok() && stats->engine.count("writes_durable_before_inserts")
             ? stats->engine.at("writes_durable_before_inserts")
             : 0;
}

// A small synced group is told durable at its WAL's sync, before RocksDB's
// memtable inserts (Store::WriteSynced); a read begun after the tell waits
// until the write is readable rather than miss it.
TEST(RocksStoreTest, ASmallGroupIsToldDurableAtItsSyncAndReadAfterTheTell) {
  test::TempDir dir;
  auto ids = MakeIds(4, 1000);
  {
    auto store = Open(dir.path());
    ASSERT_TRUE(store);
    // The first synced write to a new WAL also fsyncs the WAL's directory.
    ASSERT_OK(WriteOne(*store, test::SagaStep(ids[0]), true));
    int told = 0;
    std::future<Status> read;
    bool read_done_inside = false;
    ASSERT_OK(WriteGroup(*store, {ids.begin() + 1, ids.end()}, [&] {
      ++told;
      read = std::async(std::launch::async,
                        [&] { return store->GetSaga(ids.back()).status(); });
      // It cannot end before the write has returned and shown the group.
      read_done_inside = read.wait_for(std::chrono::milliseconds(20)) ==
                         std::future_status::ready;
    }));
    EXPECT_EQ(told, 1);
    EXPECT_FALSE(read_done_inside);
    ASSERT_TRUE(read.valid());
    EXPECT_OK(read.get());
    EXPECT_GE(WritesDurableBeforeInserts(*store), 1u);
    // A large group's inserts run beside its sync instead: not told early.
    const uint64_t before = WritesDurableBeforeInserts(*store);
    told = 0;
    ASSERT_OK(WriteGroup(*store, MakeIds(40, 2000), [&] { ++told; }));
    EXPECT_EQ(told, 0);
    EXPECT_EQ(WritesDurableBeforeInserts(*store), before);
  }
  auto reopened = Open(dir.path());
  ASSERT_TRUE(reopened);
  for (const auto& id : ids) EXPECT_OK(reopened->GetSaga(id).status()) << id;
}

TEST(RocksStoreTest, AFailedSyncTellsNothingDurable) {
  test::TempDir dir;
  test::FaultSwitches sw;
  auto env = test::NewFaultyEnv(&sw);
  auto store = Open(dir.path(), OpenMode::kReadWrite, env.get());
  ASSERT_TRUE(store);
  ASSERT_OK(WriteOne(*store, test::SagaStep(MakeIds(1, 1)[0]), true));
  sw.fail_sync = true;
  int told = 0;
  Status failed = WriteGroup(*store, MakeIds(1, 2), [&] { ++told; });
  EXPECT_TRUE(failed.IsIOError()) << failed.ToString();
  EXPECT_EQ(told, 0);
}

TEST(RocksStoreTest, AFailedSyncBesideTheInsertsShowsNothingOfItsGroup) {
  test::TempDir dir;
  test::FaultSwitches sw;
  auto env = test::NewFaultyEnv(&sw);
  auto ids = MakeIds(49, 1000);
  const std::string acked = ids.back();
  ids.pop_back();
  {
    auto store = Open(dir.path(), OpenMode::kReadWrite, env.get());
    ASSERT_TRUE(store);
    ASSERT_OK(WriteOne(*store, test::SagaStep(acked), true));
    sw.fail_sync = true;
    Status failed = WriteGroup(*store, ids);
    EXPECT_TRUE(failed.IsIOError()) << failed.ToString();
    sw.fail_sync = false;
    // In the memtables, but no reader sees what no sync covered.
    for (const auto& id : ids) {
      EXPECT_TRUE(store->GetSaga(id).status().IsNotFound()) << id;
    }
    auto page = store->ListSagas({.limit = 100});
    ASSERT_OK(page.status());
    ASSERT_EQ(page->sagas.size(), 1u);
    EXPECT_EQ(page->sagas[0].id, acked);
    Status later = WriteGroup(*store, MakeIds(40, 5000));
    EXPECT_NE(later.message().find("refuses writes"), std::string::npos)
        << later.ToString();
    EXPECT_FALSE(store->health().ok());
  }
  auto reopened = Open(dir.path());
  ASSERT_TRUE(reopened);
  EXPECT_OK(reopened->GetSaga(acked).status());
}

TEST(RocksStoreTest, FullDiskIsReportedAsNoSpaceAndLosesNothingAcknowledged) {
  test::TempDir dir;
  test::FaultSwitches sw;
  auto env = test::NewFaultyEnv(&sw);
  auto ids = MakeIds(2, 1000);
  {
    auto store = Open(dir.path(), OpenMode::kReadWrite, env.get());
    ASSERT_TRUE(store);
    ASSERT_OK(WriteOne(*store, test::SagaStep(ids[0]), true));
    sw.no_space = true;
    Status s = WriteOne(*store, test::SagaStep(ids[1]), true);
    EXPECT_TRUE(s.IsNoSpace()) << s.ToString();
    EXPECT_TRUE(store->health().IsNoSpace());
    sw.no_space = false;
  }
  auto reopened = Open(dir.path());
  ASSERT_TRUE(reopened);
  EXPECT_OK(reopened->GetSaga(ids[0]).status());
}

}  // namespace
}  // namespace cde
