// Dormancy on a ManualClock over a memory store: a saga whose timer row is
// beyond the window stays on disk; once the row comes within the window the
// next scan (every half window) wakes it, once, unless it is in memory or
// the engine is not running sagas; a parked saga's redrive row is reported
// as near instead.
#include "engine/dormancy.h"

#include <gtest/gtest.h>

#include <set>

#include "storage/transition.h"
#include "tests/test_util.h"

namespace cde {
namespace {

constexpr int64_t kStart = 1'000'000;
constexpr int64_t kWindow = 60'000;

class DormancyTest : public ::testing::Test {
 protected:
  DormancyTest() {
    dormancy_ = std::make_unique<Dormancy>(
        clock_, *store_, kWindow,
        Dormancy::Hooks{
            // The reads run at once: the order of events is the same.
            .off_loop =
                [this](std::function<void()> read, std::function<void()> then) {
                  ++trips_;
                  read();
                  if (between_read_and_then_) between_read_and_then_();
                  then();
                },
            .running = [this] { return running_; },
            .in_memory =
                [this](const std::string& id) {
                  return in_memory_.count(id) != 0;
                },
            .wake =
                [this](Saga saga) {
                  woken_.push_back(saga.id);
                  in_memory_.insert(saga.id);
                },
            .poisoned =
                [this](SagaRecord record, const std::string& reason) {
                  poisoned_.push_back({std::move(record), reason});
                },
            .redrive_near =
                [this](const std::string& id, int64_t due) {
                  redrives_.push_back({id, due});
                },
            .stale =
                [this](std::vector<TimerRecord> rows) {
                  for (const TimerRecord& row : rows) {
                    stale_.push_back(row.saga_id + "/" + row.name);
                  }
                }});
  }
  ~DormancyTest() override { dormancy_->Close(nullptr); }

  // A running saga sleeping until `due`, with its timer row.
  void Sleeping(const std::string& id, int64_t due) {
    Saga saga;
    saga.id = id;
    saga.workflow = "w";
    saga.version = 1;
    saga.waits = {{Wait::Kind::kSleep, "nap", false, 1, due}};
    Transition t;
    t.PutSaga(ToRecord(saga), std::nullopt);
    t.PutTimer({due, id, TimerRowName(TimerKind::kSleep, "nap")});
    ASSERT_OK(test::WriteOne(*store_, t));
  }

  ManualClock clock_{kStart};
  std::unique_ptr<Store> store_ = NewMemoryStore();
  std::unique_ptr<Dormancy> dormancy_;
  bool running_ = true;
  int trips_ = 0;
  std::set<std::string> in_memory_;
  std::vector<std::string> woken_;
  std::vector<std::pair<std::string, int64_t>> redrives_;
  std::vector<std::pair<SagaRecord, std::string>> poisoned_;
  std::vector<std::string> stale_;  // "saga/row name"
  // Runs after each trip's reads, before their results reach the loop.
  std::function<void()> between_read_and_then_;
};

TEST_F(DormancyTest, OnlySleepsAndBackoffsAllBeyondTheWindowMayLeaveMemory) {
  const int64_t far = kStart + kWindow + 1;
  auto waiting = [](std::vector<Wait> waits) {
    Saga s;
    s.waits = std::move(waits);
    return s;
  };
  const Wait sleep{Wait::Kind::kSleep, "nap", false, 1, far};
  const Wait backoff{Wait::Kind::kBackoff, "call", false, 1, far};
  EXPECT_TRUE(dormancy_->MayLeaveMemory(waiting({sleep})));
  EXPECT_TRUE(dormancy_->MayLeaveMemory(waiting({backoff})));
  EXPECT_TRUE(dormancy_->MayLeaveMemory(waiting({sleep, backoff})));
  EXPECT_FALSE(dormancy_->MayLeaveMemory(waiting({})));
  EXPECT_FALSE(dormancy_->MayLeaveMemory(
      waiting({{Wait::Kind::kSleep, "nap", false, 1, kStart + kWindow}})));
  // One near timer, or an attempt in flight, keeps it in memory.
  EXPECT_FALSE(dormancy_->MayLeaveMemory(
      waiting({sleep, {Wait::Kind::kBackoff, "call", false, 1, kStart + 10}})));
  EXPECT_FALSE(dormancy_->MayLeaveMemory(
      waiting({sleep, {Wait::Kind::kAttempt, "call", false, 1, 0}})));
  EXPECT_FALSE(dormancy_->MayLeaveMemory(
      waiting({{Wait::Kind::kQueued, "", false, 0, far}})));
  EXPECT_FALSE(dormancy_->MayLeaveMemory(
      waiting({{Wait::Kind::kRedrive, "", false, 0, far}})));
}

TEST_F(DormancyTest,
       ASagaWakesAtTheFirstScanAfterItsTimerComesWithinTheWindow) {
  const int64_t due = kStart + 3 * kWindow;
  Sleeping("far", due);
  dormancy_->Start();
  dormancy_->Scan();
  EXPECT_TRUE(woken_.empty());
  // Scans every half window; the row is within the window from
  // due - kWindow on, and the first scan at or after that wakes it.
  clock_.Advance(2 * kWindow - 1);
  EXPECT_TRUE(woken_.empty());
  clock_.Advance(1);
  EXPECT_EQ(woken_, std::vector<std::string>{"far"});
  EXPECT_LE(clock_.WallMs(), due);
  // In memory now: the next scans leave it be.
  clock_.Advance(kWindow);
  EXPECT_EQ(woken_.size(), 1u);
}

TEST_F(DormancyTest, ASagaInMemoryIsNotReadAgain) {
  Sleeping("near", kStart + 10);
  in_memory_.insert("near");
  dormancy_->Scan();
  EXPECT_TRUE(woken_.empty());
  EXPECT_EQ(trips_, 1);  // the timer rows only, no snapshot read
}

TEST_F(DormancyTest, NothingIsReadOrWokenWhileTheEngineRunsNoSagas) {
  Sleeping("near", kStart + 10);
  running_ = false;
  dormancy_->Scan();
  EXPECT_EQ(trips_, 0);
  EXPECT_TRUE(woken_.empty());
  running_ = true;
  dormancy_->Scan();
  EXPECT_EQ(woken_, std::vector<std::string>{"near"});
}

TEST_F(DormancyTest, ARedriveRowIsReportedNearNotWoken) {
  Transition t;
  t.PutTimer({kStart + 500, "parked",
              std::string(TimerKindName(TimerKind::kRedrive))});
  ASSERT_OK(test::WriteOne(*store_, t));
  dormancy_->Scan();
  EXPECT_TRUE(woken_.empty());
  ASSERT_EQ(redrives_.size(), 1u);
  EXPECT_EQ(redrives_[0].first, "parked");
  EXPECT_EQ(redrives_[0].second, kStart + 500);
}

TEST_F(DormancyTest, ARowWhoseSagaIsGoneIsSkipped) {
  Transition t;
  t.PutTimer({kStart + 500, "gone", TimerRowName(TimerKind::kSleep, "nap")});
  ASSERT_OK(test::WriteOne(*store_, t));
  Sleeping("here", kStart + 600);
  dormancy_->Scan();
  EXPECT_EQ(woken_, std::vector<std::string>{"here"});
  // Its row wakes nothing: the engine is told to delete it.
  EXPECT_EQ(stale_, std::vector<std::string>{"gone/sleep:nap"});
}

// What no scan will ever wake is reported once, to be parked: rows that do
// not decode, a body the engine does not run. A parked saga's leftover row
// wakes nothing.
TEST_F(DormancyTest, ASagaThatCannotBeReadOrRunIsReportedPoisonedNotWoken) {
  Sleeping("torn", kStart + 10);
  Sleeping("odd", kStart + 20);
  Sleeping("fine", kStart + 30);
  Sleeping("parked", kStart + 40);
  Transition t;
  t.TEST_PutRaw(Cf::kSagas, "torn", "garbage");
  auto odd = store_->GetSaga("odd");
  ASSERT_OK(odd.status());
  odd->body = {{"steps", 7}};
  t.PutSaga(*odd, odd->state);
  auto parked = store_->GetSaga("parked");
  ASSERT_OK(parked.status());
  parked->state = SagaState::kParked;
  t.PutSaga(*parked, SagaState::kRunning);
  ASSERT_OK(test::WriteOne(*store_, t));
  dormancy_->Scan();
  EXPECT_EQ(woken_, std::vector<std::string>{"fine"});
  ASSERT_EQ(poisoned_.size(), 2u);
  const auto& [torn, torn_reason] = poisoned_[0];
  EXPECT_EQ(torn.id, "torn");
  EXPECT_EQ(torn.workflow, "w");  // from its index row
  EXPECT_EQ(torn.state, SagaState::kRunning);
  EXPECT_TRUE(torn.body.contains("unreadable")) << torn.body.dump();
  EXPECT_NE(torn_reason.find("cf 'sagas' key 'torn'"), std::string::npos)
      << torn_reason;
  EXPECT_EQ(poisoned_[1].first.id, "odd");
  EXPECT_NE(poisoned_[1].second.find("bad snapshot body"), std::string::npos)
      << poisoned_[1].second;
  // None of their rows will wake anything: all three are to be deleted,
  // the sleeping saga's is not.
  EXPECT_EQ(stale_, (std::vector<std::string>{"torn/sleep:nap", "odd/sleep:nap",
                                              "parked/sleep:nap"}));
}

// A saga with two rows due is read once, and both its rows are stale
// together; a saga back in memory by the time the reads are done (a replay
// meanwhile) keeps its rows.
TEST_F(DormancyTest, ASagaWithTwoRowsIsReadOnceAndAReplayedOneKeepsItsRows) {
  Sleeping("parked", kStart + 10);
  Sleeping("replayed", kStart + 20);
  Transition t;
  t.PutTimer({kStart + 30, "parked", TimerRowName(TimerKind::kBackoff, "b")});
  for (const char* id : {"parked", "replayed"}) {
    auto rec = store_->GetSaga(id);
    ASSERT_OK(rec.status());
    rec->state = SagaState::kParked;
    t.PutSaga(*rec, SagaState::kRunning);
  }
  ASSERT_OK(test::WriteOne(*store_, t));
  // The replay lands between the reads and their results.
  between_read_and_then_ = [this] {
    if (trips_ == 2) in_memory_.insert("replayed");
  };
  dormancy_->Scan();
  EXPECT_EQ(trips_, 2);
  EXPECT_TRUE(woken_.empty());
  EXPECT_EQ(stale_,
            (std::vector<std::string>{"parked/sleep:nap", "parked/backoff:b"}));
}

}  // namespace
}  // namespace cde
