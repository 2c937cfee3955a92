// Group commit: waiters queued behind a write in flight share the next
// write; the byte cap bounds a group; Stop writes what is queued; a failed
// write fails its whole group.
#include "storage/commit_writer.h"

#include <future>
#include <latch>

#include "tests/storage/store_wrapper.h"
#include "tests/test_util.h"

namespace cde {
namespace {

// Holds the first Write until Release(), so a test can queue work behind a
// write in flight deterministically; counts writes and their sizes.
class GatedStore : public test::StoreWrapper {
 public:
  explicit GatedStore(Store* target) : StoreWrapper(target) {}

  Status Write(std::span<const Transition* const> b, bool sync) override {
    {
      std::unique_lock lock(mu_);
      group_sizes_.push_back(b.size());
      syncs_.push_back(sync);
      entered_.notify_all();
      if (group_sizes_.size() == 1) {
        gate_.wait(lock, [this] { return released_; });
      }
      if (fail_) return Status::IOError("injected write failure");
    }
    return StoreWrapper::Write(b, sync);
  }

  void WaitForFirstWrite() {
    std::unique_lock lock(mu_);
    entered_.wait(lock, [this] { return !group_sizes_.empty(); });
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    gate_.notify_all();
  }
  void FailWrites() {
    std::lock_guard lock(mu_);
    fail_ = true;
  }
  std::vector<size_t> group_sizes() {
    std::lock_guard lock(mu_);
    return group_sizes_;
  }
  std::vector<bool> syncs() {
    std::lock_guard lock(mu_);
    return syncs_;
  }

 private:
  std::mutex mu_;
  std::condition_variable gate_, entered_;
  bool released_ = false;
  bool fail_ = false;
  std::vector<size_t> group_sizes_;
  std::vector<bool> syncs_;
};

Transition Row(int i, size_t value_bytes = 10) {
  Transition t;
  t.PutIdempotency("key-" + std::to_string(i), std::string(value_bytes, 'v'));
  return t;
}

class CommitWriterTest : public ::testing::Test {
 protected:
  // Enqueues `n` rows; returns futures of their statuses.
  std::vector<std::future<Status>> EnqueueRows(CommitWriter& w, int first,
                                               int n, size_t bytes = 10) {
    std::vector<std::future<Status>> out;
    for (int i = first; i < first + n; ++i) {
      auto p = std::make_shared<std::promise<Status>>();
      out.push_back(p->get_future());
      w.Enqueue(Row(i, bytes), [p](const Status& s) { p->set_value(s); });
    }
    return out;
  }

  std::unique_ptr<Store> memory_ = NewMemoryStore();
  GatedStore gated_{memory_.get()};
};

TEST_F(CommitWriterTest, WaitersQueuedBehindAWriteShareTheNextWrite) {
  CommitWriter writer(&gated_, {});
  auto first = EnqueueRows(writer, 0, 1);
  gated_.WaitForFirstWrite();
  auto rest = EnqueueRows(writer, 1, 99);
  gated_.Release();
  EXPECT_OK(first[0].get());
  for (auto& f : rest) EXPECT_OK(f.get());
  EXPECT_EQ(gated_.group_sizes(), (std::vector<size_t>{1, 99}));
  EXPECT_EQ(writer.stats().largest_group, 99u);
  EXPECT_EQ(writer.stats().transitions, 100u);
  EXPECT_OK(memory_->LookupIdempotency("key-99").status());
}

TEST_F(CommitWriterTest, WritesAreSyncedByDefaultAndUnsyncedWhenAsked) {
  {
    CommitWriter writer(&gated_, {});
    gated_.Release();
    EXPECT_OK(EnqueueRows(writer, 0, 1)[0].get());
  }
  {
    CommitWriter writer(&gated_, {.sync = false});
    EXPECT_OK(EnqueueRows(writer, 1, 1)[0].get());
  }
  EXPECT_EQ(gated_.syncs(), (std::vector<bool>{true, false}));
}

TEST_F(CommitWriterTest, ByteCapBoundsAGroupWithoutSplittingTransitions) {
  // Each row is ~1,000 bytes; the cap admits three per group.
  CommitWriter writer(&gated_, {.max_batch_bytes = 3100});
  auto first = EnqueueRows(writer, 0, 1, 1000);
  gated_.WaitForFirstWrite();
  auto rest = EnqueueRows(writer, 1, 10, 1000);
  gated_.Release();
  for (auto& f : rest) EXPECT_OK(f.get());
  EXPECT_EQ(gated_.group_sizes(), (std::vector<size_t>{1, 3, 3, 3, 1}));
}

TEST_F(CommitWriterTest, OversizedTransitionIsWrittenAlone) {
  CommitWriter writer(&gated_, {.max_batch_bytes = 100});
  gated_.Release();
  EXPECT_OK(EnqueueRows(writer, 0, 1, 5000)[0].get());
}

TEST_F(CommitWriterTest, StopWritesWhatIsQueuedThenRefuses) {
  CommitWriter writer(&gated_, {});
  auto first = EnqueueRows(writer, 0, 1);
  gated_.WaitForFirstWrite();
  auto rest = EnqueueRows(writer, 1, 5);
  std::thread stopper([&] { writer.Stop(); });
  gated_.Release();
  stopper.join();
  for (auto& f : rest) EXPECT_OK(f.get());
  auto late = EnqueueRows(writer, 6, 1);
  EXPECT_EQ(late[0].get().code(), Status::Code::kShutdownInProgress);
  EXPECT_OK(memory_->LookupIdempotency("key-5").status());
}

TEST_F(CommitWriterTest, FailedWriteFailsEveryWaiterOfItsGroup) {
  CommitWriter writer(&gated_, {});
  auto first = EnqueueRows(writer, 0, 1);
  gated_.WaitForFirstWrite();
  auto rest = EnqueueRows(writer, 1, 20);
  gated_.FailWrites();
  gated_.Release();
  EXPECT_TRUE(first[0].get().IsIOError());
  for (auto& f : rest) EXPECT_TRUE(f.get().IsIOError());
  EXPECT_TRUE(memory_->LookupIdempotency("key-3").status().IsNotFound());
}

TEST_F(CommitWriterTest, ManyThreadsEnqueueingAllGetAcknowledged) {
  CommitWriter writer(&gated_, {});
  gated_.Release();
  constexpr int kThreads = 8, kEach = 500;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::promise<Status> p;
        writer.Enqueue(Row(t * kEach + i),
                       [&p](const Status& s) { p.set_value(s); });
        if (p.get_future().get().ok()) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
  auto stats = writer.stats();
  EXPECT_EQ(stats.transitions, uint64_t{kThreads * kEach});
  EXPECT_EQ(stats.queued, 0u);
}

}  // namespace
}  // namespace cde
