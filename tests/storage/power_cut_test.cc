// Power cut: every acknowledged transition is in what an fsync or fdatasync
// covered, for the group-commit writer and the pipelined one. Sagas advance
// through the writer as fast as it acknowledges them; at a random moment
// the file system freezes and the image a power cut would leave (each file
// cut to its synced bytes, tests/storage/power_cut_fs.h) is opened as a
// store and checked against the acknowledgements given before the freeze.
// Rounds: CDE_CRASH_ITERATIONS (default 12); the moments replay with
// CDE_TEST_SEED.
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>

#include "storage/commit_writer.h"
#include "storage/rocks_store.h"
#include "storage/saga_id.h"
#include "tests/storage/power_cut_fs.h"
#include "tests/test_util.h"

namespace cde {
namespace {

int Rounds() { return test::RoundsFromEnv("CDE_CRASH_ITERATIONS", 12); }

// Sagas that each commit their next step once the last is acknowledged,
// as the engine's do, and remember what was acknowledged.
class Sagas {
 public:
  Sagas(CommitWriter* writer, int in_flight) : writer_(writer) {
    for (int i = 0; i < in_flight; ++i) Next(ids_.Next(1000 + i), 1);
  }
  ~Sagas() { Stop(); }

  void Stop() {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  std::map<std::string, uint64_t> acked() {
    std::lock_guard lock(mu_);
    return acked_;
  }
  // Whether `n` acknowledgements were given before `deadline`.
  bool WaitForAcks(size_t n, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    return acked_cv_.wait_until(lock, deadline, [&] { return acks_ >= n; });
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
        acked_cv_.notify_all();
        if (seq == 8) {  // a new saga in its place
          next_id = ids_.Next(2000 + static_cast<int64_t>(acks_));
          next_seq = 1;
        }
      }
      Next(next_id, next_seq);
    });
  }

  CommitWriter* const writer_;
  std::mutex mu_;
  std::condition_variable acked_cv_;
  SagaIdGenerator ids_{7};  // GUARDED_BY(mu_) after construction
  bool stopped_ = false;
  std::map<std::string, uint64_t> acked_;
  size_t acks_ = 0;
};

void CutPowerAndCheck(bool pipeline) {
  std::mt19937 rng(test::TestSeed());
  size_t checked = 0;
  for (int round = 0; round < Rounds(); ++round) {
    test::TempDir dir;
    auto fs = std::make_shared<test::PowerCutFs>();
    auto env = rocksdb::NewCompositeEnv(fs);
    const std::string db = dir.Sub("db");
    StoreOptions options{.path = db};
    options.wal_spare_bytes = 0;  // every WAL written through `fs`
    auto opened = OpenRocksStoreWithEnv(options, env.get());
    ASSERT_OK(opened.status());
    std::unique_ptr<Store> store = std::move(opened).value();
    std::map<std::string, uint64_t> acked;
    {
      CommitWriter writer(store.get(), {.pipeline = pipeline});
      Sagas sagas(&writer, 48);
      // Wait on progress: a number of acknowledgements, not a time.
      const size_t target = 200 + rng() % 3000;
      ASSERT_TRUE(sagas.WaitForAcks(
          target, std::chrono::steady_clock::now() + std::chrono::seconds(120)))
          << "round " << round << ": " << target
          << " acknowledgements not given in time";
      // Acknowledgements given before the freeze: their syncs have ended.
      acked = sagas.acked();
      fs->Freeze();
      fs->WriteCrashImage(db, dir.Sub("image"));
      sagas.Stop();
      fs->Thaw();
      writer.Stop();
    }
    ASSERT_OK(store->Close());

    auto image = OpenRocksStore({.path = dir.Sub("image")});
    ASSERT_OK(image.status());
    for (const auto& [id, seq] : acked) {
      auto saga = (*image)->GetSaga(id);
      ASSERT_OK(saga.status()) << "round " << round << ": lost saga " << id;
      ASSERT_GE(saga->last_seq, seq)
          << "round " << round << ": lost step of " << id;
      auto log = (*image)->ReadLog(id, 1, 100);
      ASSERT_OK(log.status());
      ASSERT_EQ(log->size(), saga->last_seq) << id;
    }
    checked += acked.size();
  }
  std::printf("power cut: %d rounds, %zu acknowledged sagas checked\n",
              Rounds(), checked);
}

TEST(PowerCutTest, EveryAcknowledgedTransitionWasSyncedByTheGroupCommitWriter) {
  CutPowerAndCheck(/*pipeline=*/false);
}

TEST(PowerCutTest, EveryAcknowledgedTransitionWasSyncedByThePipelinedWriter) {
  CutPowerAndCheck(/*pipeline=*/true);
}

}  // namespace
}  // namespace cde
