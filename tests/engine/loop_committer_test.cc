// LoopCommitter: continuations run on the loop thread, after their commit,
// once each, even when many completions coalesce into one uv_async wakeup;
// and the loop closes cleanly afterwards.
#include "engine/loop_committer.h"

#include <thread>

#include "tests/engine/uv_loop_test.h"
#include "tests/test_util.h"

namespace cde {
namespace {

class LoopCommitterTest : public UvLoopTest {
 protected:
  std::unique_ptr<Store> store_ = NewMemoryStore();
};

TEST_F(LoopCommitterTest, ContinuationsRunOnTheLoopThreadAfterTheCommit) {
  CommitWriter writer(store_.get(), {});
  LoopCommitter committer(&loop_, &writer);
  const auto loop_thread = std::this_thread::get_id();
  constexpr int kCommits = 1000;
  int ran = 0;
  bool all_visible = true;
  for (int i = 0; i < kCommits; ++i) {
    Transition t;
    const std::string key = "k" + std::to_string(i);
    t.PutIdempotency(key, "saga-" + std::to_string(i));
    committer.Commit(std::move(t), [&, key](const Status& s) {
      EXPECT_OK(s);
      EXPECT_EQ(std::this_thread::get_id(), loop_thread);
      // The commit has landed before the continuation runs.
      all_visible = all_visible && store_->LookupIdempotency(key).ok();
      if (++ran == kCommits) {
        committer.Close([] {});
      }
    });
  }
  EXPECT_EQ(committer.in_flight(), size_t{kCommits});
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(ran, kCommits);
  EXPECT_TRUE(all_visible);
  EXPECT_EQ(committer.in_flight(), 0u);
  // Under this load the writer groups commits: far fewer writes than commits.
  EXPECT_LT(writer.stats().groups, uint64_t{kCommits});
}

TEST_F(LoopCommitterTest, FailedCommitReachesItsContinuation) {
  CommitWriter writer(store_.get(), {});
  writer.Stop();  // every later commit fails with ShutdownInProgress
  LoopCommitter committer(&loop_, &writer);
  Status seen;
  committer.Commit(Transition(), [&](const Status& s) {
    seen = s;
    committer.Close([] {});
  });
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(seen.code(), Status::Code::kShutdownInProgress);
}

}  // namespace
}  // namespace cde
