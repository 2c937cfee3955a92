// Power cut: every acknowledged transition is in what an fsync or fdatasync
// covered, for the group-commit writer (also while it writes early what
// comes back as it gathers) and the pipelined one. Sagas advance
// through the writer as fast as it acknowledges them; the file system
// freezes (at a random acknowledgement, at a moment after one, or at the
// first acknowledgement after each WAL switch) and the image a power cut
// would leave (each file cut to its synced bytes, a file whose name no
// directory fsync covered gone; tests/storage/power_cut_fs.h) is opened as
// a store and checked against the acknowledgements given before the file
// system thawed.
// Rounds: CDE_CRASH_ITERATIONS (default 12); the moments replay with
// CDE_TEST_SEED.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "storage/commit_writer.h"
#include "storage/rocks_store.h"
#include "storage/saga_id.h"
#include "tests/storage/power_cut_fs.h"
#include "tests/test_util.h"

namespace cde {
namespace {

int Rounds() { return test::RoundsFromEnv("CDE_CRASH_ITERATIONS", 12); }

using AckedSteps = std::map<std::string, uint64_t>;  // saga id -> last seq

// Sagas that each commit their next step once the last is acknowledged,
// as the engine's do, and remember what was acknowledged. With a
// turnaround, one client thread takes them back one after another, each
// that long, as a loop steps its sagas; else the writer's thread does, at
// once. With `cut`: while armed (from the start), the first
// acknowledgement for which `cut_now(number of acknowledgements so far)`
// holds runs it, on the thread that gives it and before that thread goes
// on, and disarms; Rearm() arms it again. `*told_to` is set to this object
// before the first step is enqueued (the writer's on_group_told calls
// GroupTold through it).
class Sagas {
 public:
  Sagas(CommitWriter* writer, int in_flight,
        std::chrono::microseconds turnaround = {},
        std::function<bool(size_t)> cut_now = nullptr,
        std::function<void()> cut = nullptr,
        std::atomic<Sagas*>* told_to = nullptr)
      : writer_(writer),
        turnaround_(turnaround),
        cut_now_(std::move(cut_now)),
        cut_(std::move(cut)) {
    if (told_to != nullptr) told_to->store(this);
    if (turnaround_.count() > 0) client_ = std::thread([this] { Serve(); });
    for (int i = 0; i < in_flight; ++i) Next(ids_.Next(1000 + i), 1);
  }
  ~Sagas() {
    Stop();
    // Its callbacks (and on_group_told) reach this object: none may run
    // once it is gone, also when a test returns early.
    writer_->Stop();
    if (client_.joinable()) client_.join();
  }

  void Stop() {
    std::lock_guard lock(mu_);
    stopped_ = true;
    returned_cv_.notify_all();
  }
  AckedSteps acked() {
    std::lock_guard lock(mu_);
    return acked_;
  }
  // Whether `n` acknowledgements were given before `deadline`.
  bool WaitForAcks(size_t n, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    return acked_cv_.wait_until(lock, deadline, [&] { return acks_ >= n; });
  }
  // The writer has told a group (CommitWriterOptions::on_group_told).
  void GroupTold() {
    std::lock_guard lock(mu_);
    if (cut_by_ == std::this_thread::get_id()) {
      cut_by_.reset();
      ++cuts_told_;
      acked_cv_.notify_all();
    }
  }
  // Whether, before `deadline`, a cut not waited for yet was made and the
  // writer had told the rest of the group whose acknowledgement made it.
  bool WaitForCut(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    if (!acked_cv_.wait_until(lock, deadline,
                              [&] { return cuts_told_ > cuts_waited_for_; })) {
      return false;
    }
    ++cuts_waited_for_;
    return true;
  }
  void Rearm() {
    std::lock_guard lock(mu_);
    armed_ = true;
  }

 private:
  void Next(const std::string& id, uint64_t seq) {
    writer_->Enqueue(test::SagaStep(id, seq), [this, id, seq](const Status& s) {
      std::string next_id = id;
      uint64_t next_seq = seq + 1;
      {
        std::lock_guard lock(mu_);
        if (!s.ok() || stopped_) return;
        acked_[id] = seq;
        ++acks_;
        if (armed_ && cut_now_ && cut_now_(acks_)) {
          armed_ = false;
          cut_();
          cut_by_ = std::this_thread::get_id();
        }
        acked_cv_.notify_all();
        if (seq == 8) {  // a new saga in its place
          next_id = ids_.Next(2000 + static_cast<int64_t>(acks_));
          next_seq = 1;
        }
        if (client_.joinable()) {
          returned_.emplace_back(next_id, next_seq);
          returned_cv_.notify_all();
          return;
        }
      }
      Next(next_id, next_seq);
    });
  }

  void Serve() {
    for (;;) {
      std::pair<std::string, uint64_t> next;
      {
        std::unique_lock lock(mu_);
        returned_cv_.wait(lock, [&] { return stopped_ || !returned_.empty(); });
        if (stopped_) return;
        next = std::move(returned_.front());
        returned_.pop_front();
      }
      std::this_thread::sleep_for(turnaround_);  // the client's own work
      Next(next.first, next.second);
    }
  }

  CommitWriter* const writer_;
  const std::chrono::microseconds turnaround_;
  const std::function<bool(size_t)> cut_now_;  // called under mu_
  const std::function<void()> cut_;            // called under mu_
  std::thread client_;
  std::condition_variable returned_cv_;
  std::deque<std::pair<std::string, uint64_t>> returned_;  // GUARDED_BY(mu_)
  std::mutex mu_;
  std::condition_variable acked_cv_;
  SagaIdGenerator ids_{7};  // GUARDED_BY(mu_) after construction
  bool stopped_ = false;
  bool armed_ = true;
  std::optional<std::thread::id> cut_by_;  // whose group is being told
  size_t cuts_told_ = 0;
  size_t cuts_waited_for_ = 0;
  AckedSteps acked_;
  size_t acks_ = 0;
};

struct PowerCutRun {
  bool pipeline = false;
  // A disk slower than the sagas' turnaround makes the group-commit writer
  // gather them, writing those back early; 0: this machine's disk, and the
  // sagas come back at once.
  std::chrono::microseconds sync_latency{0};
  std::chrono::microseconds turnaround{0};
  int in_flight = 48;
  uint64_t memtable_bytes = 0;  // StoreOptions::memtable_bytes
  // Groups of at least 32 are synced beside their memtable inserts
  // (storage/wal_progress.h): the run must have made some.
  bool syncs_beside_inserts = false;
  // Smaller synced groups are acknowledged at their sync, before RocksDB's
  // memtable inserts (Store::WriteSynced): the run must have told some.
  bool told_at_sync = false;
};

size_t TablesIn(const std::string& dir) {
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".sst") ++n;
  }
  return n;
}

// Where the power fails, by round (the last only where WALs switch).
enum class CutAt {
  // After the target acknowledgement, from the test's thread, while the
  // writer goes on.
  kAfterTheTargetAck,
  // At the target acknowledgement, on the thread that gives it, before
  // that thread goes on: a sync it still owes is not made.
  kTheTargetAck,
  // At the first acknowledgement after each new WAL is created, the same
  // way, an image each time: a group written across a WAL switch (its
  // early writes in the older WAL, its last write in the newer; RocksDB
  // syncs the older first).
  kEachFirstAckInANewWal,
};

// Images made in a round of kEachFirstAckInANewWal.
constexpr int kWalSwitchCuts = 5;

// The image of a store at `path` holds every step acknowledged in `acked`.
void ExpectHeld(const std::string& path, const AckedSteps& acked,
                const std::string& where) {
  auto image = OpenRocksStore({.path = path});
  ASSERT_OK(image.status()) << where;
  for (const auto& [id, seq] : acked) {
    auto saga = (*image)->GetSaga(id);
    ASSERT_OK(saga.status()) << where << ": lost saga " << id;
    ASSERT_GE(saga->last_seq, seq) << where << ": lost step of " << id;
    auto log = (*image)->ReadLog(id, 1, 100);
    ASSERT_OK(log.status());
    ASSERT_EQ(log->size(), saga->last_seq) << where << ": " << id;
  }
}

void CutPowerAndCheck(const PowerCutRun& run) {
  std::mt19937 rng(test::TestSeed());
  size_t checked = 0;
  size_t image_count = 0;
  uint64_t early_writes = 0;
  size_t tables = 0;    // flushed memtables: each one switched the WAL
  uint64_t beside = 0;  // syncs beside inserts, and resyncs after them
  uint64_t resyncs = 0;
  uint64_t told = 0;  // groups acknowledged at their sync
  for (int round = 0; round < Rounds(); ++round) {
    test::TempDir dir;
    auto fs = std::make_shared<test::PowerCutFs>();
    fs->SetSyncLatency(run.sync_latency);
    auto env = rocksdb::NewCompositeEnv(fs);
    const std::string db = dir.Sub("db");
    StoreOptions options{.path = db};
    options.wal_spare_bytes = 0;  // every WAL written through `fs`
    options.memtable_bytes = run.memtable_bytes;
    auto opened = OpenRocksStoreWithEnv(options, env.get());
    ASSERT_OK(opened.status());
    std::unique_ptr<Store> store = std::move(opened).value();
    std::vector<std::pair<std::string, AckedSteps>> images;  // path, acked
    {
      const size_t target =
          200 + rng() % (run.sync_latency.count() > 0 ? 1000 : 3000);
      const auto cut_at =
          static_cast<CutAt>(round % (run.memtable_bytes > 0 ? 3 : 2));
      std::function<bool(size_t)> cut_now;
      int cuts = 1;
      if (cut_at == CutAt::kTheTargetAck) {
        cut_now = [target](size_t acks) { return acks >= target; };
      } else if (cut_at == CutAt::kEachFirstAckInANewWal) {
        cut_now = [&fs, wals = fs->WalsCreated()](size_t) mutable {
          const uint64_t now = fs->WalsCreated();
          if (now == wals) return false;
          wals = now;
          return true;
        };
        cuts = kWalSwitchCuts;
      }
      std::atomic<Sagas*> told_to{nullptr};
      CommitWriter writer(
          store.get(), {.pipeline = run.pipeline, .on_group_told = [&](size_t) {
                          if (Sagas* sagas = told_to.load()) sagas->GroupTold();
                        }});
      Sagas sagas(
          &writer, run.in_flight, run.turnaround, cut_now,
          [&fs] { fs->Freeze(); }, &told_to);
      // Whatever happens below, thawed before the writer stops: its threads
      // may be waiting on the file system.
      std::unique_ptr<test::PowerCutFs, void (*)(test::PowerCutFs*)> thaw(
          fs.get(), [](test::PowerCutFs* f) { f->Thaw(); });
      // Wait on progress: acknowledgements and cuts, not a time.
      const auto deadline =
          std::chrono::steady_clock::now() + std::chrono::seconds(120);
      for (int cut = 0; cut < cuts; ++cut) {
        if (cut_now) {
          // Frozen at an acknowledgement, the writer still tells the rest
          // of its group (one decision), and an acknowledgement given
          // while frozen rests on syncs ended before: the disk has taken
          // nothing since. So all of them must be in the image.
          ASSERT_TRUE(sagas.WaitForCut(deadline))
              << "round " << round << ": cut " << cut << " not made in time";
        } else {
          ASSERT_TRUE(sagas.WaitForAcks(target, deadline))
              << "round " << round << ": " << target
              << " acknowledgements not given in time";
          fs->Freeze();  // acknowledgements given before: their syncs ended
        }
        images.emplace_back(dir.Sub("image" + std::to_string(cut)),
                            sagas.acked());
        fs->WriteCrashImage(db, images.back().first);
        // Thawed before re-armed: a cut made while still frozen would
        // have its freeze undone by this thaw.
        fs->Thaw();
        if (cut + 1 < cuts) sagas.Rearm();
      }
      sagas.Stop();
      thaw.reset();
      writer.Stop();
      early_writes += writer.stats().early_writes;
    }
    tables += TablesIn(db);
    auto stats = store->Stats();
    ASSERT_OK(stats.status());
    beside += stats->engine["wal_syncs_beside_inserts"];
    resyncs += stats->engine["wal_resyncs"];
    told += stats->engine["writes_durable_before_inserts"];
    ASSERT_OK(store->Close());

    for (size_t i = 0; i < images.size(); ++i) {
      const auto& [path, acked] = images[i];
      ExpectHeld(
          path, acked,
          "round " + std::to_string(round) + ", image " + std::to_string(i));
      if (::testing::Test::HasFatalFailure()) return;
      checked += acked.size();
    }
    image_count += images.size();
  }
  std::printf(
      "power cut: %d rounds, %zu images, %zu acknowledged sagas checked, "
      "%llu early writes, %zu tables flushed, %llu syncs beside inserts "
      "(%llu resynced), %llu groups acknowledged at their sync\n",
      Rounds(), image_count, checked,
      static_cast<unsigned long long>(early_writes), tables,
      static_cast<unsigned long long>(beside),
      static_cast<unsigned long long>(resyncs),
      static_cast<unsigned long long>(told));
  if (run.told_at_sync) {
    EXPECT_GT(told, 0u) << "no group was acknowledged at its sync: the test "
                           "did not reach what it is for";
  }
  if (run.syncs_beside_inserts) {
    EXPECT_GT(beside + resyncs, 0u)
        << "no group was synced beside its inserts: the test did not reach "
           "what it is for";
  }
  if (run.sync_latency.count() > 0 && !run.pipeline) {
    EXPECT_GT(early_writes, 0u) << "the writer never wrote early: the test "
                                   "did not reach what it is for";
  }
  if (run.memtable_bytes > 0) {
    EXPECT_GT(tables, 0u) << "no memtable was flushed: the WAL never switched";
  }
}

TEST(PowerCutTest, EveryAcknowledgedTransitionWasSyncedByTheGroupCommitWriter) {
  CutPowerAndCheck({});
}

// Small groups acknowledged at their WAL's sync, before their inserts, with
// the WAL switching every hundred or so transitions (each new WAL's name is
// synced in its directory before a group in it is acknowledged).
TEST(PowerCutTest, GroupsAcknowledgedAtTheirSyncWereSynced) {
  CutPowerAndCheck({.in_flight = 8, .told_at_sync = true});
  CutPowerAndCheck(
      {.in_flight = 8, .memtable_bytes = 64 << 10, .told_at_sync = true});
}

TEST(PowerCutTest, EveryAcknowledgedTransitionWasSyncedByThePipelinedWriter) {
  CutPowerAndCheck({.pipeline = true});
}

// A group arriving at once is written unsynced and its WAL synced by
// another thread beside the memtable inserts; the memtables of 64 KiB
// switch the WAL under it now and then (a flush of the older WAL's tail
// then starts the sync, which does not cover the record: it is synced
// again). Every acknowledged transition must be in the synced bytes.
TEST(PowerCutTest, GroupsSyncedBesideTheirInsertsAreSyncedBeforeTheAck) {
  CutPowerAndCheck({.in_flight = 64, .syncs_beside_inserts = true});
  CutPowerAndCheck({.in_flight = 64,
                    .memtable_bytes = 64 << 10,
                    .syncs_beside_inserts = true});
}

// On a disk slower than the sagas come back, the group-commit writer waits
// for them and writes those back early, unsynced; the group's sync must
// cover every one before any is acknowledged.
TEST(PowerCutTest, TransitionsWrittenEarlyWhileGatheringAreSyncedBeforeTheAck) {
  CutPowerAndCheck({.sync_latency = std::chrono::microseconds(8000),
                    .turnaround = std::chrono::microseconds(50),
                    .in_flight = 32});
}

// The same with memtables of 64 KiB: the WAL switches every hundred or so
// transitions, so early writes land in a WAL file that the group's sync
// must still cover though a newer one is being written.
TEST(PowerCutTest, EarlyWritesInAnEarlierWalFileAreSyncedBeforeTheAck) {
  CutPowerAndCheck({.sync_latency = std::chrono::microseconds(8000),
                    .turnaround = std::chrono::microseconds(50),
                    .in_flight = 32,
                    .memtable_bytes = 64 << 10});
}

}  // namespace
}  // namespace cde
