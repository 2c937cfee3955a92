// WAL progress (storage/wal_progress.h) and the sync thread
// (storage/sync_thread.h) that together let a large group's fdatasync run
// beside its memtable inserts: a write counts as synced only by a sync
// that began after its WAL bytes were handed over, in the WAL file that
// holds them; the sync thread runs one sync per request and hands back
// its status. That acknowledged groups written this way survive a power
// cut is PowerCutTest.GroupsSyncedBesideTheirInsertsAreSyncedBeforeTheAck.
#include "storage/wal_progress.h"

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "storage/sync_thread.h"
#include "tests/test_util.h"

namespace cde {
namespace {

class WalProgressTest : public ::testing::Test {
 protected:
  WalProgressTest()
      : fs_(std::make_shared<WalProgressFileSystem>(
            rocksdb::FileSystem::Default(), dir_.path())) {}

  std::unique_ptr<rocksdb::FSWritableFile> NewWal(const std::string& name) {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    EXPECT_TRUE(fs_->NewWritableFile(dir_.path() + "/" + name,
                                     rocksdb::FileOptions(), &file, nullptr)
                    .ok());
    return file;
  }

  static void AppendAndFlush(rocksdb::FSWritableFile* file,
                             const std::string& data) {
    ASSERT_TRUE(file->Append(data, rocksdb::IOOptions(), nullptr).ok());
    ASSERT_TRUE(file->Flush(rocksdb::IOOptions(), nullptr).ok());
  }
  static void Sync(rocksdb::FSWritableFile* file) {
    ASSERT_TRUE(file->Sync(rocksdb::IOOptions(), nullptr).ok());
  }
  // The WALs' directory, as RocksDB opens it to fsync it.
  std::unique_ptr<rocksdb::FSDirectory> Directory() {
    std::unique_ptr<rocksdb::FSDirectory> dir;
    EXPECT_TRUE(
        fs_->NewDirectory(dir_.path(), rocksdb::IOOptions(), &dir, nullptr)
            .ok());
    return dir;
  }

  test::TempDir dir_;
  std::shared_ptr<WalProgressFileSystem> fs_;
};

TEST_F(WalProgressTest, AWriteIsCoveredOnlyByASyncBegunAfterItsFlush) {
  auto wal = NewWal("000004.log");
  AppendAndFlush(wal.get(), "before the watch");
  int first_flushes = 0;
  WalFlushWatch watch([&] { ++first_flushes; });
  {
    WalFlushWatch::Installed installed(&watch);
    AppendAndFlush(wal.get(), "the write's record");
    AppendAndFlush(wal.get(), "a second flush");
  }
  EXPECT_EQ(first_flushes, 1);
  ASSERT_TRUE(watch.saw_flush());
  EXPECT_FALSE(watch.CoveredBySync());
  // A flush on this thread once the watch is gone is not the write's.
  AppendAndFlush(wal.get(), "a later write");
  Sync(wal.get());
  EXPECT_TRUE(watch.CoveredBySync());
}

TEST_F(WalProgressTest, ASyncOfAnOlderWalDoesNotCoverARecordInTheNewOne) {
  auto older = NewWal("000004.log");
  auto newer = NewWal("000005.log");
  bool started = false;
  WalFlushWatch watch([&] { started = true; });
  {
    WalFlushWatch::Installed installed(&watch);
    // As RocksDB switching WALs: the older WAL's buffer is flushed first,
    // which starts the sync, and the record goes to the newer one.
    AppendAndFlush(older.get(), "the old WAL's tail");
    ASSERT_TRUE(started);
    Sync(older.get());
    AppendAndFlush(newer.get(), "the write's record");
  }
  EXPECT_FALSE(watch.CoveredBySync());
  Sync(newer.get());
  EXPECT_TRUE(watch.CoveredBySync());
}

TEST_F(WalProgressTest, OnlyWalsAreWatched) {
  std::unique_ptr<rocksdb::FSWritableFile> table;
  ASSERT_TRUE(fs_->NewWritableFile(dir_.path() + "/000007.sst",
                                   rocksdb::FileOptions(), &table, nullptr)
                  .ok());
  WalFlushWatch watch(nullptr);
  {
    WalFlushWatch::Installed installed(&watch);
    AppendAndFlush(table.get(), "a table's block");
  }
  EXPECT_FALSE(watch.saw_flush());
  EXPECT_FALSE(watch.CoveredBySync());
}

TEST_F(WalProgressTest, AFailedSyncCoversNothing) {
  // Closed underneath, the file's sync fails.
  auto wal = NewWal("000004.log");
  WalFlushWatch watch(nullptr);
  {
    WalFlushWatch::Installed installed(&watch);
    AppendAndFlush(wal.get(), "the write's record");
  }
  ASSERT_TRUE(wal->Close(rocksdb::IOOptions(), nullptr).ok());
  EXPECT_FALSE(wal->Sync(rocksdb::IOOptions(), nullptr).ok());
  EXPECT_FALSE(watch.CoveredBySync());
}

// A synced write tells its callers it is durable from inside RocksDB's
// write (Store::WriteSynced): only once its own record is synced and the
// WAL's name in its directory, which RocksDB fsyncs after the first sync of
// each new WAL.
TEST_F(WalProgressTest,
       AWriteIsToldDurableOnlyOnceItsWalAndTheWalsNameAreSynced) {
  auto dir = Directory();
  auto wal = NewWal("000004.log");
  int told = 0;
  WalFlushWatch watch(nullptr, [&] { ++told; });
  {
    WalFlushWatch::Installed installed(&watch);
    AppendAndFlush(wal.get(), "the write's record");
    Sync(wal.get());
    EXPECT_EQ(told, 0) << "the new WAL's name is not synced yet";
    ASSERT_TRUE(dir->FsyncWithDirOptions(rocksdb::IOOptions(), nullptr,
                                         rocksdb::DirFsyncOptions())
                    .ok());
    EXPECT_EQ(told, 1);
    Sync(wal.get());
    EXPECT_EQ(told, 1) << "told once";
  }
  // The next write to the same WAL is told at its sync.
  WalFlushWatch next(nullptr, [&] { ++told; });
  {
    WalFlushWatch::Installed installed(&next);
    AppendAndFlush(wal.get(), "the next record");
    EXPECT_EQ(told, 1);
    Sync(wal.get());
    EXPECT_EQ(told, 2);
  }
  // A new WAL again owes its directory a sync, even for a write to the old.
  auto newer = NewWal("000005.log");
  WalFlushWatch after_switch(nullptr, [&] { ++told; });
  {
    WalFlushWatch::Installed installed(&after_switch);
    AppendAndFlush(wal.get(), "a record in the old WAL");
    Sync(wal.get());
    EXPECT_EQ(told, 2);
    ASSERT_TRUE(dir->Fsync(rocksdb::IOOptions(), nullptr).ok());
    EXPECT_EQ(told, 3);
  }
}

TEST_F(WalProgressTest, AWriteIsNotToldDurableBySyncsThatDoNotCoverIt) {
  auto dir = Directory();
  auto older = NewWal("000004.log");
  auto newer = NewWal("000005.log");
  ASSERT_TRUE(dir->Fsync(rocksdb::IOOptions(), nullptr).ok());
  int told = 0;
  WalFlushWatch watch(nullptr, [&] { ++told; });
  {
    WalFlushWatch::Installed installed(&watch);
    AppendAndFlush(older.get(), "the old WAL's tail");
    AppendAndFlush(newer.get(), "the write's record");
    Sync(older.get());
    EXPECT_EQ(told, 0) << "the older WAL's sync";
  }
  Sync(newer.get());
  EXPECT_EQ(told, 0) << "a sync where the watch is not installed "
                        "(another thread's)";
  AppendAndFlush(newer.get(), "more");
  {
    WalFlushWatch::Installed installed(&watch);
    ASSERT_TRUE(newer->Close(rocksdb::IOOptions(), nullptr).ok());
    EXPECT_FALSE(newer->Sync(rocksdb::IOOptions(), nullptr).ok());
  }
  EXPECT_EQ(told, 0) << "a failed sync";
}

// RocksDB 7.8's synced write syncs every WAL it still keeps, oldest first,
// and WritableFileWriter::Sync flushes each one before its sync, whether or
// not its buffer holds anything. When the write's record went to a newer
// WAL (the memtable filled and RocksDB switched WALs under the group's
// early, unsynced writes), the older WAL's flush and sync come first on the
// writing thread: they must not tell the write durable, as they once did
// (a power cut between the two syncs lost an acknowledged transition).
TEST_F(WalProgressTest, TheOlderWalsSyncDoesNotTellARecordInTheNewerDurable) {
  auto dir = Directory();
  auto older = NewWal("000004.log");
  AppendAndFlush(older.get(), "early writes, unsynced");
  auto newer = NewWal("000005.log");
  ASSERT_TRUE(dir->Fsync(rocksdb::IOOptions(), nullptr).ok());
  int told = 0;
  WalFlushWatch watch(nullptr, [&] { ++told; });
  WalFlushWatch::Installed installed(&watch);
  AppendAndFlush(newer.get(), "the synced write's record");
  AppendAndFlush(older.get(), "");  // the sync's flush, nothing buffered
  Sync(older.get());
  EXPECT_EQ(told, 0) << "told at the older WAL's sync";
  EXPECT_FALSE(watch.CoveredBySync());
  AppendAndFlush(newer.get(), "");
  Sync(newer.get());
  EXPECT_EQ(told, 1);
  EXPECT_TRUE(watch.CoveredBySync());
}

// The same for a large group synced beside its inserts: a flush of the
// older WAL after the record's (a WAL switched by a later write on this
// thread) does not make a sync of the older one cover the record.
TEST_F(WalProgressTest, ASyncCoversAWriteOnlyWhenItCoversEveryWalItFlushed) {
  auto older = NewWal("000004.log");
  auto newer = NewWal("000005.log");
  WalFlushWatch watch(nullptr);
  {
    WalFlushWatch::Installed installed(&watch);
    AppendAndFlush(newer.get(), "the write's record");
    AppendAndFlush(older.get(), "the old WAL's tail");
  }
  Sync(older.get());
  EXPECT_FALSE(watch.CoveredBySync());
  Sync(newer.get());
  EXPECT_TRUE(watch.CoveredBySync());
}

TEST(SyncThreadTest, RunsOneSyncPerRequestAndHandsBackItsStatus) {
  std::atomic<int> syncs{0};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  SyncThread thread([&] {
    const int n = ++syncs;
    if (n == 1) released.wait();
    return n == 2 ? Status::IOError("disk gone") : Status::OK();
  });
  EXPECT_OK(thread.Wait());  // nothing asked for: nothing to wait for
  EXPECT_EQ(syncs.load(), 0);
  thread.Start();
  thread.Start();  // the same request
  release.set_value();
  EXPECT_OK(thread.Wait());
  EXPECT_EQ(syncs.load(), 1);
  thread.Start();
  Status failed = thread.Wait();
  EXPECT_TRUE(failed.IsIOError()) << failed.ToString();
  EXPECT_EQ(syncs.load(), 2);
}

// The waiter sleeps until shortly before a sync is due (by the syncs so
// far) and then watches for its end: a sync that takes far longer than
// those before it is still waited for, and its own status handed back.
TEST(SyncThreadTest, ASyncLongerThanTheOnesBeforeIsStillWaitedFor) {
  std::atomic<int> syncs{0};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  SyncThread thread([&] {
    if (++syncs == 4) {
      released.wait();
      return Status::IOError("slow disk gave up");
    }
    return Status::OK();
  });
  for (int i = 0; i < 3; ++i) {
    thread.Start();
    EXPECT_OK(thread.Wait());
  }
  thread.Start();
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    release.set_value();
  });
  Status slow = thread.Wait();
  releaser.join();
  EXPECT_TRUE(slow.IsIOError()) << slow.ToString();
  EXPECT_EQ(syncs.load(), 4);
}

TEST(SyncThreadTest, ASyncAskedForBeforeTheStopStillRuns) {
  std::atomic<int> syncs{0};
  {
    SyncThread thread([&] {
      ++syncs;
      return Status::OK();
    });
    thread.Start();
  }
  EXPECT_EQ(syncs.load(), 1);
}

}  // namespace
}  // namespace cde
