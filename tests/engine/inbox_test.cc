// Inbox: items posted from any thread run on the loop thread, in the order
// they were posted, once each; RunPosted runs them early, on the loop
// thread, and their uv_async callback then finds nothing to run again.
#include "engine/inbox.h"

#include <thread>
#include <vector>

#include "tests/engine/uv_loop_test.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using InboxTest = UvLoopTest;

TEST_F(InboxTest, ItemsPostedFromAnotherThreadRunOnTheLoopInOrder) {
  auto inbox = Inbox::Create(&loop_);
  const auto loop_thread = std::this_thread::get_id();
  constexpr int kItems = 500;
  std::vector<int> ran;
  std::thread poster([&] {
    for (int i = 0; i < kItems; ++i) {
      inbox->Post([&, i] {
        EXPECT_EQ(std::this_thread::get_id(), loop_thread);
        ran.push_back(i);
        if (i == kItems - 1) inbox->Close([] {});
      });
    }
  });
  uv_run(&loop_, UV_RUN_DEFAULT);
  poster.join();
  ASSERT_EQ(ran.size(), size_t{kItems});
  for (int i = 0; i < kItems; ++i) EXPECT_EQ(ran[i], i);
}

TEST_F(InboxTest, RunPostedRunsWhatIsPostedOnceAndNotAgainLater) {
  auto inbox = Inbox::Create(&loop_);
  std::vector<std::string> ran;
  inbox->Post([&] {
    ran.push_back("first");
    // Posted while RunPosted runs: left for the next pass, not run by the
    // same call (which would let an item that posts itself loop forever).
    inbox->Post([&] { ran.push_back("posted by first"); });
  });
  inbox->Post([&] { ran.push_back("second"); });
  inbox->RunPosted();
  EXPECT_EQ(ran, (std::vector<std::string>{"first", "second"}));
  inbox->RunPosted();
  EXPECT_EQ(ran,
            (std::vector<std::string>{"first", "second", "posted by first"}));
  // The loop's pass finds nothing left, then the inbox closes.
  uv_run(&loop_, UV_RUN_NOWAIT);
  EXPECT_EQ(ran.size(), 3u);
  inbox->Close([] {});
  inbox->Post([&] { ran.push_back("after close"); });
  inbox->RunPosted();
  EXPECT_EQ(ran.size(), 3u);
}

TEST_F(InboxTest, ARunInsideAnItemRunsWhatWasPostedMeanwhileOnce) {
  // An item whose work commits and so runs the inbox again (a commit's
  // continuation does): the inner run takes what was posted since, the
  // outer run goes on with its own items, and nothing runs twice. Each
  // round reuses the lists of the one before.
  auto inbox = Inbox::Create(&loop_);
  std::vector<std::string> ran;
  for (int round = 0; round < 3; ++round) {
    ran.clear();
    inbox->Post([&] {
      ran.push_back("first");
      inbox->Post([&] { ran.push_back("posted by first"); });
      inbox->RunPosted();
    });
    inbox->Post([&] { ran.push_back("second"); });
    inbox->RunPosted();
    EXPECT_EQ(ran,
              (std::vector<std::string>{"first", "posted by first", "second"}))
        << "round " << round;
    inbox->RunPosted();
    EXPECT_EQ(ran.size(), 3u) << "round " << round;
  }
  inbox->Close([] {});
  uv_run(&loop_, UV_RUN_DEFAULT);
}

}  // namespace
}  // namespace cde
