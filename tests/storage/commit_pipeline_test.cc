// The pipelined commit writer (CommitWriterOptions::pipeline): a waiter is
// completed only after a sync that began once its group was written; groups
// are written in the order they were queued; the groups queued while a sync
// is under way are written meanwhile and synced by the next one; a failed
// sync fails its groups and everything after it; Stop syncs what is queued.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "storage/commit_writer.h"
#include "tests/storage/store_wrapper.h"
#include "tests/test_util.h"

namespace cde {
namespace {

// Records every unsynced write and every sync over a memory store: which
// write each idempotency key came in, how far the completed syncs reach, and
// whether an acknowledged key was durable by then. Can hold syncs at a gate
// and fail them, refusing everything after a failure as StoreImpl does.
class SyncLedger : public test::StoreWrapper {
 public:
  explicit SyncLedger(Store* target) : StoreWrapper(target) {}

  Status Write(std::span<const Transition* const>, bool) override {
    return Status::InvalidArgument("a pipelined writer writes unsynced");
  }

  Status WriteUnsynced(std::span<const Transition* const> batch) override {
    {
      std::lock_guard lock(mu_);
      if (!refusal_.ok()) return refusal_;
    }
    CDE_RETURN_IF_ERROR(StoreWrapper::WriteUnsynced(batch));
    std::lock_guard lock(mu_);
    ++writes_;
    for (const Transition* t : batch) {
      t->ForEach([&](Cf cf, bool, std::string_view key, std::string_view) {
        if (cf != Cf::kIdempotency) return;
        write_of_[std::string(key)] = writes_;
        order_.emplace_back(key);
      });
    }
    written_ += batch.size();
    changed_.notify_all();
    return Status::OK();
  }

  Status SyncWritten() override {
    std::unique_lock lock(mu_);
    const uint64_t covers = writes_;
    ++syncs_begun_;
    max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
    changed_.notify_all();
    gate_.wait(lock, [this] { return syncs_begun_ <= syncs_allowed_; });
    --in_flight_;
    if (refusal_.ok() && fail_next_) {
      refusal_ = Status::IOError("injected sync failure");
      return refusal_;
    }
    if (!refusal_.ok()) return refusal_;
    synced_ = std::max(synced_, covers);
    return Status::OK();
  }

  // Whether `key`'s write was covered by a sync that has completed.
  bool Durable(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = write_of_.find(key);
    return it != write_of_.end() && it->second <= synced_;
  }

  // Syncs beyond the first `n` wait at the gate until allowed.
  void AllowSyncs(uint64_t n) {
    std::lock_guard lock(mu_);
    syncs_allowed_ = n;
    gate_.notify_all();
  }
  void FailNextSync() {
    std::lock_guard lock(mu_);
    fail_next_ = true;
  }
  // Whether `syncs_begun` syncs have begun and `transitions_written` have
  // been written within a minute.
  bool WaitFor(uint64_t syncs_begun, size_t transitions_written) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, std::chrono::minutes(1), [&] {
      return syncs_begun_ >= syncs_begun && written_ >= transitions_written;
    });
  }
  std::vector<std::string> order() {
    std::lock_guard lock(mu_);
    return order_;
  }
  uint64_t syncs_begun() {
    std::lock_guard lock(mu_);
    return syncs_begun_;
  }
  int max_in_flight() {
    std::lock_guard lock(mu_);
    return max_in_flight_;
  }

 private:
  std::mutex mu_;
  std::condition_variable gate_, changed_;
  uint64_t writes_ = 0, synced_ = 0, syncs_begun_ = 0;
  uint64_t syncs_allowed_ = UINT64_MAX;
  size_t written_ = 0;
  int in_flight_ = 0, max_in_flight_ = 0;
  bool fail_next_ = false;
  Status refusal_;
  std::map<std::string, uint64_t> write_of_;
  std::vector<std::string> order_;
};

// Opens the ledger's gate when it goes out of scope: declared after a
// writer, it lets a test that fails with a sync held still stop the writer.
class GateOpener {
 public:
  explicit GateOpener(SyncLedger& ledger) : ledger_(ledger) {}
  ~GateOpener() { ledger_.AllowSyncs(UINT64_MAX); }
  GateOpener(const GateOpener&) = delete;
  GateOpener& operator=(const GateOpener&) = delete;

 private:
  SyncLedger& ledger_;
};

Transition Key(int i) {
  Transition t;
  t.PutIdempotency("key-" + std::to_string(100000 + i), "saga");
  return t;
}

class CommitPipelineTest : public ::testing::Test {
 protected:
  // Enqueues keys [first, first + n); each future says whether the key was
  // durable when its waiter was completed, and with what status.
  struct Ack {
    Status status;
    bool durable = false;
  };
  std::vector<std::future<Ack>> Enqueue(CommitWriter& w, int first, int n) {
    std::vector<std::future<Ack>> out;
    for (int i = first; i < first + n; ++i) {
      auto p = std::make_shared<std::promise<Ack>>();
      out.push_back(p->get_future());
      const std::string key = "key-" + std::to_string(100000 + i);
      w.Enqueue(Key(i), [this, p, key](const Status& s) {
        p->set_value({s, ledger_.Durable(key)});
      });
    }
    return out;
  }

  std::unique_ptr<Store> memory_ = NewMemoryStore();
  SyncLedger ledger_{memory_.get()};
};

TEST_F(CommitPipelineTest, AWaiterIsCompletedOnlyOnceASyncCoversItsWrite) {
  CommitWriter writer(&ledger_, {.pipeline = true});
  constexpr int kThreads = 4, kEach = 2000;
  std::vector<std::thread> threads;
  std::mutex mu;
  int acked = 0, early = 0;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread waits for its previous commit, as a saga does.
      for (int i = 0; i < kEach; ++i) {
        Ack ack = Enqueue(writer, t * kEach + i, 1)[0].get();
        std::lock_guard lock(mu);
        acked += ack.status.ok();
        early += !ack.durable;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(acked, kThreads * kEach);
  EXPECT_EQ(early, 0) << "waiters completed before a sync covered them";
  EXPECT_EQ(ledger_.max_in_flight(), 1) << "one sync at a time";
}

TEST_F(CommitPipelineTest, GroupsAreWrittenInTheOrderTheyWereQueued) {
  CommitWriter writer(&ledger_, {.pipeline = true});
  auto acks = Enqueue(writer, 0, 3000);
  for (auto& a : acks) EXPECT_OK(a.get().status);
  std::vector<std::string> order = ledger_.order();
  ASSERT_EQ(order.size(), 3000u);
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
}

TEST_F(CommitPipelineTest, GroupsQueuedDuringASyncAreWrittenBeforeItEnds) {
  ledger_.AllowSyncs(1);  // the second sync waits at the gate
  CommitWriter writer(&ledger_, {.pipeline = true});
  GateOpener opener(ledger_);
  auto first = Enqueue(writer, 0, 1);
  ASSERT_TRUE(first[0].get().durable);  // the first sync passes the gate
  auto second = Enqueue(writer, 1, 1);
  ASSERT_TRUE(ledger_.WaitFor(/*syncs_begun=*/2, /*transitions_written=*/2));
  // The second sync is held: what is queued now is written meanwhile.
  auto rest = Enqueue(writer, 2, 40);
  ASSERT_TRUE(ledger_.WaitFor(2, 42));
  EXPECT_EQ(second[0].wait_for(std::chrono::milliseconds(0)),
            std::future_status::timeout);
  ledger_.AllowSyncs(UINT64_MAX);
  EXPECT_TRUE(second[0].get().durable);
  for (auto& a : rest) {
    Ack ack = a.get();
    EXPECT_OK(ack.status);
    EXPECT_TRUE(ack.durable);
  }
  // One sync for the 40 written, or two if the writer's last group reached
  // the syncer just after that sync began.
  EXPECT_LE(ledger_.syncs_begun(), 4u);
}

TEST_F(CommitPipelineTest, AFailedSyncFailsItsGroupsAndEveryGroupAfterIt) {
  ledger_.AllowSyncs(0);  // hold the first sync
  CommitWriter writer(&ledger_, {.pipeline = true});
  GateOpener opener(ledger_);
  auto first = Enqueue(writer, 0, 1);
  ASSERT_TRUE(ledger_.WaitFor(1, 1));
  auto written_behind = Enqueue(writer, 1, 20);
  ASSERT_TRUE(ledger_.WaitFor(1, 21));
  ledger_.FailNextSync();
  ledger_.AllowSyncs(UINT64_MAX);
  EXPECT_TRUE(first[0].get().status.IsIOError());
  for (auto& a : written_behind) {
    Ack ack = a.get();
    EXPECT_TRUE(ack.status.IsIOError()) << ack.status.ToString();
    EXPECT_FALSE(ack.durable);
  }
  EXPECT_TRUE(Enqueue(writer, 21, 1)[0].get().status.IsIOError());
}

TEST_F(CommitPipelineTest, StopSyncsWhatIsQueuedThenRefuses) {
  ledger_.AllowSyncs(0);
  CommitWriter writer(&ledger_, {.pipeline = true});
  GateOpener opener(ledger_);
  auto first = Enqueue(writer, 0, 1);
  ASSERT_TRUE(ledger_.WaitFor(1, 1));
  auto rest = Enqueue(writer, 1, 30);
  std::thread stopper([&] { writer.Stop(); });
  ledger_.AllowSyncs(UINT64_MAX);
  stopper.join();
  EXPECT_TRUE(first[0].get().durable);
  for (auto& a : rest) {
    Ack ack = a.get();
    EXPECT_OK(ack.status);
    EXPECT_TRUE(ack.durable);
  }
  EXPECT_EQ(Enqueue(writer, 31, 1)[0].get().status.code(),
            Status::Code::kShutdownInProgress);
}

}  // namespace
}  // namespace cde
