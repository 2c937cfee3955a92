// The WAL spare (storage/wal_spare.h): a new WAL is the spare when one is
// ready, a WAL in real use gets the next one written, a spare left in any
// other shape is removed, a spare that cannot be written leaves plain WALs,
// a WAL over a spare is cut to its records when closed, and what is written
// over a spare reads back after a reopen. Its readers
// (storage/wal_tail.h): a secondary follows a primary whose WAL is a spare,
// and a WAL reads up to its last whole record. (That a killed process's WAL,
// zeros after its last record, recovers is
// StoreCrashTest.EveryAcknowledgedTransitionSurvivesSigkillInAWalOverASpare.)
#include "storage/wal_spare.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "storage/rocks_store.h"
#include "storage/wal_tail.h"
#include "tests/storage/faulty_fs.h"
#include "tests/test_util.h"

namespace cde {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kSpareBytes = uint64_t{256} << 10;

std::string SparePath(const std::string& dir) {
  return dir + "/" + WalSpareFileSystem::kSpareName;
}

std::string PartialPath(const std::string& dir) {
  return dir + "/" + WalSpareFileSystem::kPartialName;
}

void WriteFile(const std::string& path, size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  out << std::string(bytes, 'x');
}

TEST(WalSpareTest, WalFilesAreTheNumberedLogsOfTheStoreDirectory) {
  EXPECT_TRUE(IsWalFileOf("db", "db/000004.log"));
  EXPECT_TRUE(IsWalFileOf("db/", "db//000004.log"));
  EXPECT_TRUE(IsWalFileOf("db/", "db/000004.log"));
  EXPECT_TRUE(IsWalFileOf("./a/db", "./a/db/000123.log"));
  EXPECT_TRUE(IsWalFileOf("/var/lib/cde", "/var/lib/cde/1.log"));
  EXPECT_FALSE(IsWalFileOf("db", "db/LOG"));
  EXPECT_FALSE(IsWalFileOf("db", "db/LOG.old.1700000000"));
  EXPECT_FALSE(IsWalFileOf("db", "db/000004.log.tmp"));
  EXPECT_FALSE(IsWalFileOf("db", "db/x00004.log"));
  EXPECT_FALSE(IsWalFileOf("db", "db/.log"));
  EXPECT_FALSE(IsWalFileOf("db", "other/000004.log"));
  EXPECT_FALSE(IsWalFileOf("db", "db/archive/000004.log"));
  EXPECT_FALSE(IsWalFileOf("db", "db2/000004.log"));
  EXPECT_FALSE(IsWalFileOf("db", "db/cde-wal-spare"));
}

// A RocksDB database over `fs`, for what the file system does beneath it.
struct Db {
  Db(const std::string& dir, std::shared_ptr<WalSpareFileSystem> fs)
      : env(rocksdb::NewCompositeEnv(fs)) {
    rocksdb::Options o;
    o.create_if_missing = true;
    o.env = env.get();
    rocksdb::DB* raw = nullptr;
    status = rocksdb::DB::Open(o, dir, &raw);
    db.reset(raw);
  }
  rocksdb::Status PutSynced(const std::string& key, const std::string& value) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return db->Put(wo, key, value);
  }
  std::unique_ptr<rocksdb::Env> env;
  rocksdb::Status status;
  std::unique_ptr<rocksdb::DB> db;
};

TEST(WalSpareTest, AStoreOpenedWithASpareWritesItsWalOverItAndReadsBack) {
  test::TempDir dir;
  const std::string path = dir.Sub("store");
  const auto ids = test::MakeIds(200, 7);
  {
    auto store = OpenRocksStore({.path = path,
                                 .wal_spare_bytes = kSpareBytes,
                                 .wal_spare_at_open = true});
    ASSERT_OK(store.status());
    auto stats = (*store)->Stats();
    ASSERT_OK(stats.status());
    EXPECT_EQ(stats->engine["wal_files_from_spare"], 1u);
    EXPECT_EQ(stats->engine["wal_spare_ready"], 0u);
    EXPECT_FALSE(fs::exists(SparePath(path))) << "renamed into the WAL";
    for (const auto& id : ids) {
      ASSERT_OK(test::WriteOne(**store, test::SagaStep(id), true));
    }
    ASSERT_OK((*store)->Close());
  }
  auto store = OpenRocksStore({.path = path, .wal_spare_bytes = kSpareBytes});
  ASSERT_OK(store.status());
  for (const auto& id : ids) EXPECT_OK((*store)->GetSaga(id).status()) << id;
  // Little was written: no spare was wanted, the new WAL is a plain file.
  auto stats = (*store)->Stats();
  ASSERT_OK(stats.status());
  EXPECT_EQ(stats->engine["wal_files_from_spare"], 0u);
}

// A clean close leaves no WAL to replay: a WAL over a spare ends where its
// last record does, even one that took nothing before the close (the WAL the
// flush of a clean shutdown switches to takes nothing, and is a spare when
// one was ready). RocksDB trims only what it preallocated itself.
TEST(WalSpareTest, AWalOverASpareIsCutToItsRecordsWhenClosed) {
  for (const int records : {0, 3}) {
    SCOPED_TRACE(records);
    test::TempDir dir;
    auto spare = std::make_shared<WalSpareFileSystem>(
        rocksdb::FileSystem::Default(), dir.path(), kSpareBytes);
    {
      Db db(dir.path(), spare);
      ASSERT_TRUE(db.status.ok()) << db.status.ToString();
      ASSERT_TRUE(db.PutSynced("before", "the switch").ok());
      ASSERT_TRUE(spare->PrepareNow().ok());
      ASSERT_TRUE(db.db->Flush(rocksdb::FlushOptions()).ok());
      ASSERT_EQ(spare->wals_from_spares(), 1u);
      for (int i = 0; i < records; ++i) {
        ASSERT_TRUE(db.PutSynced("k" + std::to_string(i), "v").ok());
      }
      ASSERT_TRUE(db.db->Close().ok());
    }
    int wals = 0;
    for (const auto& e : fs::directory_iterator(dir.path())) {
      if (e.path().extension() != ".log") continue;
      ++wals;
      EXPECT_LT(fs::file_size(e.path()), records == 0 ? 1u : 4096u) << e.path();
    }
    EXPECT_GT(wals, 0);
    Db db(dir.path(),
          std::make_shared<WalSpareFileSystem>(rocksdb::FileSystem::Default(),
                                               dir.path(), kSpareBytes));
    ASSERT_TRUE(db.status.ok()) << db.status.ToString();
    std::string value;
    EXPECT_TRUE(db.db->Get(rocksdb::ReadOptions(), "before", &value).ok());
    for (int i = 0; i < records; ++i) {
      EXPECT_TRUE(
          db.db->Get(rocksdb::ReadOptions(), "k" + std::to_string(i), &value)
              .ok());
    }
  }
}

// A secondary (cde-admin beside a live server) tails the WAL the primary
// writes. Over a spare, the zeros past the primary's last record must read as
// "not written yet", not as padding to skip: each catch-up sees exactly what
// was written before it, records of every size (some cross 32 KiB blocks),
// however many catch-ups.
TEST(WalSpareTest, ASecondaryFollowsAPrimaryWhoseWalIsASpare) {
  test::TempDir dir;
  const std::string path = dir.Sub("store");
  auto primary = OpenRocksStore({.path = path,
                                 .wal_spare_bytes = uint64_t{4} << 20,
                                 .wal_spare_at_open = true});
  ASSERT_OK(primary.status());
  const auto ids = test::MakeIds(300, 11);
  ASSERT_OK(test::WriteOne(**primary, test::SagaStep(ids[0]), true));
  // Spelled with a trailing slash, as a tool's flag may be: the same WALs.
  auto secondary =
      OpenRocksStore({.path = path + "/", .mode = OpenMode::kSecondary});
  ASSERT_OK(secondary.status());
  size_t written = 1;
  std::mt19937 rng(test::TestSeed());
  while (written < ids.size()) {
    const size_t batch = std::min(ids.size() - written, size_t{1} + rng() % 7);
    for (size_t i = 0; i < batch; ++i) {
      const std::string& id = ids[written + i];
      Transition t;
      t.AppendLog(test::MakeEvent(id, 1, "saga_started"));
      SagaRecord saga = test::MakeSaga(id, "w", SagaState::kRunning);
      if (rng() % 4 == 0) {  // now and then a record larger than a block
        saga.body = nlohmann::json{{"pad", std::string(40000, 'p')}};
      }
      t.PutSaga(saga, std::nullopt);
      ASSERT_OK(test::WriteOne(**primary, t, true));
    }
    written += batch;
    ASSERT_OK((*secondary)->CatchUp());
    for (size_t i = 0; i < written; ++i) {
      ASSERT_OK((*secondary)->GetSaga(ids[i]).status())
          << "saga " << i << " of " << written << " written";
    }
  }
}

// What a reader of `path` through WalTailFileSystem gets, read to its end.
std::string ReadWalTail(const std::string& dir, const std::string& path) {
  WalTailFileSystem tail(rocksdb::FileSystem::Default(), dir);
  std::unique_ptr<rocksdb::FSSequentialFile> file;
  EXPECT_TRUE(
      tail.NewSequentialFile(path, rocksdb::FileOptions(), &file, nullptr)
          .ok());
  std::string out;
  std::string scratch(32768, '\0');
  for (;;) {
    rocksdb::Slice got;
    EXPECT_TRUE(file->Read(scratch.size(), rocksdb::IOOptions(), &got,
                           scratch.data(), nullptr)
                    .ok());
    if (got.empty()) return out;
    out.append(got.data(), got.size());
  }
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A WAL over a spare, read through WalTailFileSystem, ends after its last
// record: not in the zeros, and not inside a record whose last bytes have
// not landed yet (the primary may be copying it in).
TEST(WalSpareTest, AWalReadsUpToItsLastWholeRecord) {
  test::TempDir dir;
  const std::string path = dir.Sub("store");
  auto store = OpenRocksStore({.path = path,
                               .wal_spare_bytes = uint64_t{1} << 20,
                               .wal_spare_at_open = true});
  ASSERT_OK(store.status());
  for (const auto& id : test::MakeIds(20, 3)) {
    ASSERT_OK(test::WriteOne(**store, test::SagaStep(id), true));
  }
  std::string wal;
  for (const auto& entry : fs::directory_iterator(path)) {
    if (entry.path().extension() == ".log") wal = entry.path().string();
  }
  ASSERT_FALSE(wal.empty());
  const std::string copy_dir = dir.Sub("copy");
  fs::create_directories(copy_dir);
  const std::string copy = copy_dir + "/000009.log";
  std::string bytes = ReadAll(wal);
  ASSERT_EQ(bytes.size(), uint64_t{1} << 20) << "the WAL is the spare";
  WriteFile(copy, 0);
  std::ofstream(copy, std::ios::binary) << bytes;

  const std::string whole = ReadWalTail(copy_dir, copy);
  ASSERT_GT(whole.size(), 20u * 100);
  EXPECT_EQ(whole, bytes.substr(0, whole.size()));
  EXPECT_EQ(bytes.find_first_not_of('\0', whole.size()), std::string::npos)
      << "only zeros after what it reads";

  // The last record's last bytes not there yet: it ends before that record.
  std::string torn = bytes;
  std::fill(torn.begin() + static_cast<ptrdiff_t>(whole.size()) - 5,
            torn.begin() + static_cast<ptrdiff_t>(whole.size()), '\0');
  std::ofstream(copy, std::ios::binary | std::ios::trunc) << torn;
  const std::string before = ReadWalTail(copy_dir, copy);
  EXPECT_LT(before.size(), whole.size() - 5);
  EXPECT_GT(before.size(), 0u);
  EXPECT_EQ(before, bytes.substr(0, before.size()));

  // A file not named as a WAL reads as it is.
  const std::string other = copy_dir + "/MANIFEST-000001";
  std::ofstream(other, std::ios::binary) << bytes;
  EXPECT_EQ(ReadWalTail(copy_dir, other).size(), bytes.size());
}

TEST(WalSpareTest, AWalThatTakesAMebibyteGetsTheNextSpareWrittenForTheNextWal) {
  test::TempDir dir;
  auto spare = std::make_shared<WalSpareFileSystem>(
      rocksdb::FileSystem::Default(), dir.path(), kSpareBytes);
  {
    Db db(dir.path(), spare);
    ASSERT_TRUE(db.status.ok()) << db.status.ToString();
    EXPECT_EQ(spare->wals_from_spares(), 0u);
    // Just short of the trigger: nothing is wanted yet.
    const std::string value(1000, 'v');
    uint64_t written = 0;
    int i = 0;
    while (written + 2 * value.size() < WalSpareFileSystem::kSpareTrigger / 2) {
      ASSERT_TRUE(db.PutSynced("k" + std::to_string(i++), value).ok());
      written += value.size();
    }
    EXPECT_FALSE(spare->WaitForSpare()) << "a spare for a WAL of 0.5 MiB";
    while (written <= WalSpareFileSystem::kSpareTrigger) {
      ASSERT_TRUE(db.PutSynced("k" + std::to_string(i++), value).ok());
      written += value.size();
    }
    ASSERT_TRUE(spare->WaitForSpare());
    EXPECT_EQ(fs::file_size(SparePath(dir.path())), kSpareBytes);
    EXPECT_FALSE(fs::exists(PartialPath(dir.path())));
    // The next WAL (a flush switches to one) is the spare.
    ASSERT_TRUE(db.db->Flush(rocksdb::FlushOptions()).ok());
    EXPECT_EQ(spare->wals_from_spares(), 1u);
    EXPECT_FALSE(spare->spare_ready());
    ASSERT_TRUE(db.PutSynced("after", "the switch").ok());
  }
  // A new process finds no spare (the last was taken) and reads it all.
  auto again = std::make_shared<WalSpareFileSystem>(
      rocksdb::FileSystem::Default(), dir.path(), kSpareBytes);
  Db db(dir.path(), again);
  ASSERT_TRUE(db.status.ok()) << db.status.ToString();
  std::string value;
  ASSERT_TRUE(db.db->Get(rocksdb::ReadOptions(), "after", &value).ok());
  EXPECT_EQ(value, "the switch");
}

TEST(WalSpareTest, ASpareLeftByAnEarlierProcessIsTakenByTheNextOpen) {
  test::TempDir dir;
  const std::string path = dir.Sub("store");
  auto first = OpenRocksStore({.path = path, .wal_spare_bytes = kSpareBytes});
  ASSERT_OK(first.status());
  ASSERT_OK((*first)->Close());
  auto spare = std::make_shared<WalSpareFileSystem>(
      rocksdb::FileSystem::Default(), path, kSpareBytes);
  ASSERT_TRUE(spare->PrepareNow().ok());
  spare.reset();
  auto store = OpenRocksStore({.path = path, .wal_spare_bytes = kSpareBytes});
  ASSERT_OK(store.status());
  auto stats = (*store)->Stats();
  ASSERT_OK(stats.status());
  EXPECT_EQ(stats->engine["wal_files_from_spare"], 1u);
}

TEST(WalSpareTest, ASpareOfAnotherSizeAndAHalfWrittenOneAreRemoved) {
  test::TempDir dir;
  WriteFile(SparePath(dir.path()), 1000);
  WriteFile(PartialPath(dir.path()), 1000);
  WalSpareFileSystem spare(rocksdb::FileSystem::Default(), dir.path(),
                           kSpareBytes);
  EXPECT_FALSE(spare.spare_ready());
  EXPECT_FALSE(fs::exists(SparePath(dir.path())));
  EXPECT_FALSE(fs::exists(PartialPath(dir.path())));
}

// A file of the right size that we did not write: its old bytes would
// sit past the WAL's last record. The check reads the first and the last MiB.
TEST(WalSpareTest, ASpareOfTheRightSizeButNotZerosIsRemoved) {
  constexpr uint64_t kBig = uint64_t{3} << 20;  // three pieces
  for (const uint64_t at : {uint64_t{0}, (uint64_t{1} << 20) - 1, kBig - 1}) {
    test::TempDir dir;
    {
      std::ofstream out(SparePath(dir.path()), std::ios::binary);
      std::string bytes(kBig, '\0');
      bytes[at] = 'x';
      out << bytes;
    }
    WalSpareFileSystem spare(rocksdb::FileSystem::Default(), dir.path(), kBig);
    EXPECT_FALSE(spare.spare_ready()) << "a byte at " << at;
    EXPECT_FALSE(fs::exists(SparePath(dir.path()))) << "a byte at " << at;
  }
  // Zeros at both ends are taken (the middle is not read: a crash cannot
  // leave a spare half-written, each piece is synced before the rename).
  test::TempDir dir;
  {
    std::ofstream out(SparePath(dir.path()), std::ios::binary);
    out << std::string(kBig, '\0');
  }
  WalSpareFileSystem spare(rocksdb::FileSystem::Default(), dir.path(), kBig);
  EXPECT_TRUE(spare.spare_ready());
}

TEST(WalSpareTest, ASpareThatCannotBeWrittenLeavesNothingBehind) {
  test::TempDir dir;
  test::FaultSwitches sw;
  auto faulty = std::make_shared<test::FaultyFs>(&sw);
  WalSpareFileSystem spare(faulty, dir.path(), kSpareBytes);
  sw.no_space = true;
  rocksdb::IOStatus s = spare.PrepareNow();
  EXPECT_TRUE(s.IsNoSpace()) << s.ToString();
  EXPECT_FALSE(spare.spare_ready());
  EXPECT_FALSE(fs::exists(PartialPath(dir.path())));
  sw.no_space = false;
  sw.fail_sync = true;
  s = spare.PrepareNow();
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_FALSE(spare.spare_ready());
  EXPECT_FALSE(fs::exists(SparePath(dir.path())));
  EXPECT_FALSE(fs::exists(PartialPath(dir.path())));
  sw.fail_sync = false;
  ASSERT_TRUE(spare.PrepareNow().ok());
  EXPECT_TRUE(spare.spare_ready());
  EXPECT_EQ(fs::file_size(SparePath(dir.path())), kSpareBytes);
}

TEST(WalSpareTest, AStoreIsCreatedInADirectoryHoldingOnlyASpare) {
  test::TempDir dir;
  const std::string path = dir.Sub("store");
  fs::create_directories(path);
  {
    WalSpareFileSystem spare(rocksdb::FileSystem::Default(), path, kSpareBytes);
    ASSERT_TRUE(spare.PrepareNow().ok());
  }
  auto store = OpenRocksStore({.path = path, .wal_spare_bytes = kSpareBytes});
  ASSERT_OK(store.status());
  auto stats = (*store)->Stats();
  ASSERT_OK(stats.status());
  EXPECT_EQ(stats->engine["wal_files_from_spare"], 1u);
  // Anything else there is still refused.
  test::TempDir other;
  WriteFile(other.Sub("notes.txt"), 10);
  EXPECT_FALSE(OpenRocksStore({.path = other.path()}).ok());
}

}  // namespace
}  // namespace cde
