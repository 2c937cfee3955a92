// Group commit: waiters queued behind a write in flight share the next
// write; the byte cap bounds a group; Stop writes what is queued; a failed
// write fails its whole group; released waiters that come back sooner than
// the disk syncs are waited for, and slower ones are not.
#include "storage/commit_writer.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <latch>
#include <thread>

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

// Every synced write, and every sync of unsynced writes, waits off the CPU
// first, as an fdatasync waits for the disk.
class SlowDiskStore : public test::StoreWrapper {
 public:
  SlowDiskStore(Store* target, std::chrono::milliseconds flush)
      : StoreWrapper(target), flush_(flush) {}

  Status Write(std::span<const Transition* const> b, bool sync) override {
    {
      std::lock_guard lock(mu_);
      group_sizes_.push_back(b.size());
    }
    std::this_thread::sleep_for(flush_);
    return StoreWrapper::Write(b, sync);
  }
  Status SyncWritten() override {
    {
      std::lock_guard lock(mu_);
      ++syncs_;
    }
    std::this_thread::sleep_for(flush_);
    return StoreWrapper::SyncWritten();
  }
  std::vector<size_t> group_sizes() {
    std::lock_guard lock(mu_);
    return group_sizes_;
  }
  int syncs() {
    std::lock_guard lock(mu_);
    return syncs_;
  }

 private:
  const std::chrono::milliseconds flush_;
  std::mutex mu_;
  std::vector<size_t> group_sizes_;
  int syncs_ = 0;
};

// `clients` closed-loop clients, served by one thread as a loop serves its
// sagas: each time a client's commit is written, the thread takes
// `turnaround` to come back with that client's next one, until every client
// has made `commits`.
void RunClosedLoop(CommitWriter& writer, int clients, int commits,
                   std::chrono::milliseconds turnaround,
                   const std::function<void()>& on_ack = nullptr) {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<int> returned;  // clients whose commit was written
  int row = 0;
  auto commit = [&](int client) {
    writer.Enqueue(Row(row++), [&, client](const Status& s) {
      ASSERT_OK(s);
      if (on_ack) on_ack();
      std::lock_guard lock(mu);
      returned.push_back(client);
      cv.notify_one();
    });
  };
  std::vector<int> made(static_cast<size_t>(clients), 1);
  for (int c = 0; c < clients; ++c) commit(c);
  for (int written = 0; written < clients * commits; ++written) {
    int client;
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return !returned.empty(); });
      client = returned.front();
      returned.pop_front();
    }
    if (made[static_cast<size_t>(client)] == commits) continue;
    std::this_thread::sleep_for(turnaround);
    ++made[static_cast<size_t>(client)];
    commit(client);
  }
}

// Without the wait, the clients a write released miss the next group, which
// the writer starts with what is queued, and wait a whole write for the one
// after. The clients come back 2 ms apart (one test thread turns them round
// one after another), all four within 8 ms of a 30 ms write: the writer,
// finding none back yet when it looks, waits for them.
TEST_F(CommitWriterTest, ReleasedWaitersBackSoonerThanTheDiskShareOneWrite) {
  SlowDiskStore disk(memory_.get(), std::chrono::milliseconds(30));
  std::atomic<uint64_t> reported_gathered{0};
  CommitWriter writer(&disk,
                      {.on_group_written = [&](size_t, size_t, bool gathered) {
                        if (gathered) ++reported_gathered;
                      }});
  RunClosedLoop(writer, 4, 12, std::chrono::milliseconds(2));
  // Once it has seen them come back, a write holds all four: 12 writes for
  // 12 commits each, give or take the first and the last (without the
  // wait, about 24: groups of one and three in turns).
  const std::vector<size_t> groups = disk.group_sizes();
  EXPECT_LE(groups.size(), 12u + 3u) << ::testing::PrintToString(groups);
  // Each group it waited for is reported with it (the engine's
  // cde_commit_groups_gathered_total).
  EXPECT_GE(writer.stats().gathered, 9u);
  EXPECT_EQ(reported_gathered.load(), writer.stats().gathered);
}

// One client, so every group is one commit: each comes back a turnaround
// after its release (the first of a group is then also the last), and
// each write waits out the disk before its caller is told.
TEST_F(CommitWriterTest, ACycleIsTakenApartIntoTheReturnsAndTheWrite) {
  SlowDiskStore disk(memory_.get(), std::chrono::milliseconds(3));
  CommitWriter writer(&disk, {});
  RunClosedLoop(writer, 1, 4, std::chrono::milliseconds(5));
  const CommitWriterStats stats = writer.stats();
  constexpr uint64_t kMs = 1000 * 1000;
  EXPECT_EQ(stats.groups, 4u);
  // The last release has no commit to come back with.
  EXPECT_EQ(stats.all_returns, 3u);
  EXPECT_EQ(stats.first_returns, 3u);
  EXPECT_EQ(stats.all_return_ns, stats.first_return_ns);
  EXPECT_GE(stats.all_return_ns, 3 * 5 * kMs);
  EXPECT_GE(stats.tell_ns, 4 * 3 * kMs);
  EXPECT_LE(stats.tell_ns, stats.write_ns);
}

TEST_F(CommitWriterTest, WaitersSlowerToComeBackThanTheDiskAreNotWaitedFor) {
  SlowDiskStore disk(memory_.get(), std::chrono::milliseconds(1));
  CommitWriter writer(&disk, {});
  RunClosedLoop(writer, 3, 3, std::chrono::milliseconds(10));
  const CommitWriterStats stats = writer.stats();
  EXPECT_EQ(stats.gathered, 0u);
  EXPECT_EQ(stats.gather_ns, 0u);
  EXPECT_EQ(stats.transitions, 9u);
  // Each write waits out the 1 ms disk, and the clients come back.
  constexpr uint64_t kMs = 1000 * 1000;
  EXPECT_GE(stats.write_ns, stats.groups * kMs);
  ASSERT_GE(stats.first_returns, 1u);
  EXPECT_GT(stats.first_return_ns, 0u);
}

TEST_F(CommitWriterTest, GatheringOffStartsEachGroupWithWhatIsQueued) {
  SlowDiskStore disk(memory_.get(), std::chrono::milliseconds(10));
  CommitWriter writer(&disk, {.gather_returning = false});
  RunClosedLoop(writer, 4, 4, std::chrono::milliseconds(0));
  EXPECT_EQ(writer.stats().gathered, 0u);
  EXPECT_EQ(writer.stats().transitions, 16u);
}

// Counts what a sync has covered: every write before a synced Write or a
// SyncWritten that has returned.
class SyncCoverageStore : public SlowDiskStore {
 public:
  using SlowDiskStore::SlowDiskStore;

  Status Write(std::span<const Transition* const> b, bool sync) override {
    Written(b.size(), /*early=*/false);
    Status s = SlowDiskStore::Write(b, sync);
    if (sync) Synced();
    return s;
  }
  Status WriteUnsynced(std::span<const Transition* const> b) override {
    Written(b.size(), /*early=*/true);
    return SlowDiskStore::WriteUnsynced(b);
  }
  Status SyncWritten() override {
    Status s = SlowDiskStore::SyncWritten();
    Synced();
    return s;
  }
  int64_t durable() {
    std::lock_guard lock(mu_);
    return durable_;
  }
  int64_t unsynced_writes() {
    std::lock_guard lock(mu_);
    return unsynced_writes_;
  }
  int64_t written_early() {
    std::lock_guard lock(mu_);
    return written_early_;
  }

 private:
  void Written(size_t n, bool early) {
    std::lock_guard lock(mu_);
    written_ += static_cast<int64_t>(n);
    if (early) {
      ++unsynced_writes_;
      written_early_ += static_cast<int64_t>(n);
    }
  }
  void Synced() {
    std::lock_guard lock(mu_);
    durable_ = written_;
  }
  std::mutex mu_;
  int64_t written_ = 0, durable_ = 0, unsynced_writes_ = 0, written_early_ = 0;
};

// While it waits for the waiters a write released, the writer writes those
// already back, unsynced, a few at a time, and the group's one sync covers
// them: 16 clients coming back 1 ms apart against a 100 ms disk (room for
// each 1 ms to take 5 on a busy machine) share one sync per round, with an
// early write in it, and no waiter is acknowledged before a sync has
// covered its write.
TEST_F(CommitWriterTest, WhileGatheringTheWriterWritesWhatIsBackAndSyncsOnce) {
  SyncCoverageStore disk(memory_.get(), std::chrono::milliseconds(100));
  CommitWriter writer(&disk, {});
  std::atomic<int64_t> acked{0};
  std::atomic<int64_t> acked_unsynced{0};
  RunClosedLoop(writer, 16, 6, std::chrono::milliseconds(1), [&] {
    if (++acked > disk.durable()) ++acked_unsynced;
  });
  EXPECT_EQ(acked.load(), 96);
  EXPECT_EQ(acked_unsynced.load(), 0);
  const CommitWriterStats stats = writer.stats();
  EXPECT_EQ(stats.transitions, 96u);
  // Six rounds: a group of 16 each, give or take the first two (before the
  // writer has seen the clients come back) and the last.
  EXPECT_LE(disk.syncs() + static_cast<int>(disk.group_sizes().size()), 6 + 4);
  EXPECT_GE(stats.gathered, 3u);
  EXPECT_GE(stats.early_writes, stats.gathered);
  EXPECT_EQ(static_cast<uint64_t>(disk.unsynced_writes()), stats.early_writes);
  // The writer's CPU in them, timed for every other one (the first
  // included), over the transitions those carried.
  EXPECT_GE(stats.early_write_cpu_transitions, 1u);
  EXPECT_LE(stats.early_write_cpu_transitions,
            static_cast<uint64_t>(disk.written_early()));
  EXPECT_GT(stats.early_write_cpu_ns, 0u);
  // The cycle's parts: every group's write waits out the disk; the first
  // client back after a release comes 1 ms or more after it, but in the
  // first two rounds (before the writer gathers) one turned round before
  // the release may come sooner; gathering took time.
  constexpr uint64_t kMs = 1000 * 1000;
  EXPECT_GE(stats.write_ns, stats.groups * 100 * kMs);
  ASSERT_GE(stats.first_returns, 3u);
  EXPECT_GE(stats.first_return_ns, (stats.first_returns - 2) * kMs);
  EXPECT_GT(stats.gather_ns, 0u);
}

// A failed early write fails its whole group, the waiters written early and
// those written after, and every later one: nothing of it is acknowledged.
TEST_F(CommitWriterTest, AFailedEarlyWriteFailsItsWholeGroup) {
  class FailingEarlyWrites : public SlowDiskStore {
   public:
    using SlowDiskStore::SlowDiskStore;
    Status WriteUnsynced(std::span<const Transition* const>) override {
      fail_ = true;
      return Status::IOError("injected early write failure");
    }
    Status Write(std::span<const Transition* const> b, bool sync) override {
      if (fail_) return Status::IOError("refused after a failed write");
      return SlowDiskStore::Write(b, sync);
    }

   private:
    std::atomic<bool> fail_{false};
  };
  FailingEarlyWrites disk(memory_.get(), std::chrono::milliseconds(100));
  // Closed-loop clients until the writer gathers and writes early; from
  // then on every commit fails. (Declared before the writer, which
  // completes what is left into them when it stops.)
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<int, Status>> returned;
  CommitWriter writer(&disk, {});
  int row = 0;
  auto commit = [&](int client) {
    writer.Enqueue(Row(row++), [&, client](const Status& s) {
      std::lock_guard lock(mu);
      returned.emplace_back(client, s);
      cv.notify_one();
    });
  };
  constexpr int kClients = 16;
  for (int c = 0; c < kClients; ++c) commit(c);
  int ok = 0, failed = 0;
  // It gathers from the second or third round on; 20 rounds without an
  // early write mean it never will.
  while (failed < kClients && ok < 20 * kClients) {
    std::pair<int, Status> r;
    {
      std::unique_lock lock(mu);
      ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30),
                              [&] { return !returned.empty(); }));
      r = std::move(returned.front());
      returned.pop_front();
    }
    if (r.second.ok()) {
      ++ok;
      ASSERT_EQ(failed, 0) << "a commit succeeded after one had failed";
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      commit(r.first);
    } else {
      ++failed;
    }
  }
  EXPECT_EQ(failed, kClients);
  EXPECT_GE(ok, kClients);  // at least the first round
  EXPECT_GE(writer.stats().early_writes, 1u);
}

// The pipelined writer's syncer gathers as the group-commit writer does:
// the clients a sync released are written while it waits for them, and one
// sync takes all four (without the wait, about 24 syncs: ones and threes).
TEST_F(CommitWriterTest,
       PipelinedReleasedWaitersBackSoonerThanTheDiskShareOneSync) {
  SlowDiskStore disk(memory_.get(), std::chrono::milliseconds(30));
  CommitWriter writer(&disk, {.pipeline = true});
  RunClosedLoop(writer, 4, 12, std::chrono::milliseconds(2));
  EXPECT_LE(disk.syncs(), 12 + 3);
  EXPECT_GE(writer.stats().gathered, 9u);
  EXPECT_EQ(writer.stats().transitions, 48u);
}

TEST_F(CommitWriterTest, PipelinedWithoutGatheringSyncsWhatIsWritten) {
  SlowDiskStore disk(memory_.get(), std::chrono::milliseconds(30));
  CommitWriter writer(&disk, {.gather_returning = false, .pipeline = true});
  RunClosedLoop(writer, 4, 12, std::chrono::milliseconds(2));
  EXPECT_GT(disk.syncs(), 12 + 3);
  EXPECT_EQ(writer.stats().gathered, 0u);
}

}  // namespace
}  // namespace cde
