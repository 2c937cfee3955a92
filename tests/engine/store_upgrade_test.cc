// A store written by the build before format 2 (tests/fixtures/store-v1,
// made by tests/fixtures/make_store_v1.py with that build) opens in this
// one: its snapshots are rewritten in the new step words and with waits
// naming their step by path, timer rows are renamed, its saga in flight
// finishes, and an upgrade cut short resumes.
#include "engine/store_upgrade.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/saga.h"
#include "storage/keys.h"
#include "tests/engine/engine_harness.h"

namespace cde {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The fixture's sagas by what they show: completed, parked_step_failed,
// compensated, parked_compensation_failed, cancelled_while_sleeping,
// sleeping.
json FixtureSagas() {
  std::ifstream in(std::string(CDE_FIXTURES_DIR) + "/store-v1.sagas.json");
  return json::parse(in);
}

class StoreUpgradeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::copy(std::string(CDE_FIXTURES_DIR) + "/store-v1", store_dir_,
             fs::copy_options::recursive);
  }

  // The saga as the engine reads it.
  Saga Read(Store& store, const std::string& id) {
    auto record = store.GetSaga(id);
    EXPECT_OK(record.status());
    auto saga = FromRecord(*record);
    EXPECT_OK(saga.status());
    return saga.ok() ? *saga : Saga{};
  }

  // Every stored step status is a format-2 word, and no step of a
  // finished saga is running.
  void ExpectFormat2Rows(Store& store) {
    const std::set<std::string> words = {"pending", "running", "succeeded",
                                         "failed", "cancelled"};
    size_t sagas = 0;
    ASSERT_OK(store.ScanRows(Cf::kSagas, [&](auto key, auto value) {
      auto record = DecodeSaga(value, std::string(key));
      EXPECT_OK(record.status());
      if (!record.ok()) return true;
      ++sagas;
      for (const json& st : record->body["steps"]) {
        const std::string status = st["status"].get<std::string>();
        EXPECT_EQ(words.count(status), 1u) << key << ": " << status;
        if (IsTerminal(record->state)) {
          EXPECT_NE(status, "running") << key;
        }
      }
      return true;
    }));
    EXPECT_EQ(sagas, FixtureSagas().size());
  }

  // Format 3: the sleeping saga waits on its step by path, and its timer
  // row is named by kind and path (the kind alone before).
  void ExpectFormat3Waits(Store& store) {
    const std::string id = FixtureSagas()["sleeping"].get<std::string>();
    const Saga sleeping = Read(store, id);
    ASSERT_EQ(sleeping.waits.size(), 1u);
    const Wait& w = sleeping.waits[0];
    EXPECT_EQ(w.kind, Wait::Kind::kSleep);
    EXPECT_EQ(w.path, "pause");
    std::vector<std::string> names;
    ASSERT_OK(store.ScanRows(Cf::kTimers, [&](auto, auto value) {
      auto timer = DecodeTimer(value, "timer");
      EXPECT_OK(timer.status());
      if (timer.ok() && timer->saga_id == id) {
        names.push_back(timer->name);
        EXPECT_EQ(timer->due_ms, w.due_ms);
      }
      return true;
    }));
    EXPECT_EQ(names, std::vector<std::string>{"sleep:pause"});
  }

  // Format 7: the retired indexes are empty, and idx_workflow_state holds
  // one row per saga, which the listings by state and by workflow read.
  void ExpectOnlyTheOneIndex(Store& store, size_t sagas) {
    for (Cf cf : {Cf::kIdxState, Cf::kIdxWorkflow}) {
      size_t rows = 0;
      ASSERT_OK(store.ScanRows(cf, [&](auto, auto) {
        ++rows;
        return true;
      }));
      EXPECT_EQ(rows, 0u) << CfName(cf);
    }
    size_t rows = 0;
    ASSERT_OK(store.ScanRows(Cf::kIdxWorkflowState, [&](auto, auto) {
      ++rows;
      return true;
    }));
    EXPECT_EQ(rows, sagas);
    size_t by_state = 0;
    for (SagaState state : kAllSagaStates) {
      auto page = store.ListSagas({.state = state, .limit = 1000});
      ASSERT_OK(page.status());
      by_state += page->sagas.size();
    }
    EXPECT_EQ(by_state, sagas);
  }

  // Upgrades the fixture to this build's format, then says `version` in its
  // format row: a store of that version whose records hold nothing the
  // versions since added.
  void UpgradeAndSayFormat(Store& store, uint32_t version) {
    ASSERT_OK(UpgradeStore(store).status());
    Transition back;
    back.PutFormatVersion(version);
    const Transition* batch[] = {&back};
    ASSERT_OK(store.Write(batch, true));
  }

  test::TempDir dir_;
  const std::string store_dir_ = dir_.Sub("store");
};

TEST_F(StoreUpgradeTest, AFormat1StoreIsRewrittenInTheNewStepWordsOnOpen) {
  const json ids = FixtureSagas();
  {
    auto before = OpenRocksStore({.path = store_dir_});
    ASSERT_OK(before.status());
    EXPECT_EQ((*before)->format_version(), 1u);
  }
  test::EngineHarness h;
  ASSERT_OK(h.Open(store_dir_));
  Store& store = h.engine().store();
  ExpectFormat2Rows(store);

  Saga compensated = Read(store, ids["compensated"].get<std::string>());
  ASSERT_EQ(compensated.steps.size(), 3u);
  EXPECT_EQ(compensated.steps[0].status, StepStatus::kSucceeded);
  EXPECT_EQ(compensated.steps[0].compensation, CompensationStatus::kSucceeded);
  EXPECT_EQ(compensated.steps[1].status, StepStatus::kSucceeded);
  EXPECT_EQ(compensated.steps[1].compensation, CompensationStatus::kNotDefined);
  EXPECT_EQ(compensated.steps[2].status, StepStatus::kFailed);
  EXPECT_EQ(compensated.steps[2].compensation, CompensationStatus::kNone);

  Saga bad_undo =
      Read(store, ids["parked_compensation_failed"].get<std::string>());
  EXPECT_EQ(bad_undo.state, SagaState::kParked);
  EXPECT_EQ(bad_undo.steps[0].status, StepStatus::kSucceeded);
  EXPECT_EQ(bad_undo.steps[0].compensation, CompensationStatus::kFailed);

  // The case the split was made for: cancelled while 'pause' slept.
  Saga cancelled =
      Read(store, ids["cancelled_while_sleeping"].get<std::string>());
  EXPECT_EQ(cancelled.state, SagaState::kCancelled);
  EXPECT_EQ(cancelled.steps[0].status, StepStatus::kSucceeded);
  EXPECT_EQ(cancelled.steps[0].compensation, CompensationStatus::kNotDefined);
  EXPECT_EQ(cancelled.steps[1].status, StepStatus::kCancelled);
  EXPECT_EQ(cancelled.steps[2].status, StepStatus::kPending);

  // The saga that slept through the upgrade wakes and completes.
  const std::string sleeping = ids["sleeping"].get<std::string>();
  ASSERT_TRUE(h.RunUntil([&] {
    return store.GetSaga(sleeping).ok() &&
           store.GetSaga(sleeping)->state == SagaState::kCompleted;
  })) << SagaStateName(store.GetSaga(sleeping)->state);
  ASSERT_OK(h.Close());

  auto after = OpenRocksStore({.path = store_dir_});
  ASSERT_OK(after.status());
  EXPECT_EQ((*after)->format_version(), kFormatVersion);
  ExpectOnlyTheOneIndex(**after, ids.size());
  size_t meta_rows = 0;
  ASSERT_OK((*after)->ScanRows(Cf::kMeta, [&](auto key, auto) {
    EXPECT_NE(key, kFormatUpgradeKey);
    ++meta_rows;
    return true;
  }));
  EXPECT_GE(meta_rows, 1u);
}

TEST_F(StoreUpgradeTest, AnUpgradeCutShortResumesOnTheNextOpen) {
  {
    // Killed right after the upgrade began: the store says format 2 (older
    // builds refuse it) with the marker, and no snapshot rewritten yet.
    auto store = OpenRocksStore({.path = store_dir_});
    ASSERT_OK(store.status());
    Transition begin;
    begin.BeginFormatUpgrade(1);
    const Transition* batch[] = {&begin};
    ASSERT_OK((*store)->Write(batch, true));
  }
  {
    auto store = OpenRocksStore({.path = store_dir_});
    ASSERT_OK(store.status());
    EXPECT_EQ((*store)->format_version(), 1u);  // still to upgrade
    auto report = UpgradeStore(**store);
    ASSERT_OK(report.status());
    EXPECT_EQ(report->from, 1u);
    EXPECT_EQ(report->rewritten, FixtureSagas().size());
    EXPECT_EQ(report->left_as_is, 0u);
    ExpectFormat2Rows(**store);
    ExpectFormat3Waits(**store);
  }
  auto store = OpenRocksStore({.path = store_dir_});
  ASSERT_OK(store.status());
  EXPECT_EQ((*store)->format_version(), kFormatVersion);
  auto again = UpgradeStore(**store);  // nothing left to do
  ASSERT_OK(again.status());
  EXPECT_EQ(again->rewritten, 0u);
}

// cde-admin reads a store without a server, read-only: a format-1 store it
// cannot upgrade still reads in the new words.
TEST_F(StoreUpgradeTest, AReadOnlyOpenReadsFormat1InTheNewWords) {
  auto store =
      OpenRocksStore({.path = store_dir_, .mode = OpenMode::kReadOnly});
  ASSERT_OK(store.status());
  EXPECT_EQ((*store)->format_version(), 1u);
  Saga compensated =
      Read(**store, FixtureSagas()["compensated"].get<std::string>());
  ASSERT_EQ(compensated.steps.size(), 3u);
  EXPECT_EQ(compensated.steps[0].status, StepStatus::kSucceeded);
  EXPECT_EQ(compensated.steps[0].compensation, CompensationStatus::kSucceeded);
  // It has no `items` family (format 4 brought it): read as empty.
  auto items =
      (*store)->ReadItems(FixtureSagas()["compensated"].get<std::string>());
  ASSERT_OK(items.status());
  EXPECT_TRUE(items->empty());
}

// Format 4 only added the items family: a format 3 store's snapshots are
// kept byte for byte.
TEST_F(StoreUpgradeTest, AFormat3StoreMovesToFormat4WithoutRewriting) {
  std::map<std::string, std::string> before;
  {
    auto store = OpenRocksStore({.path = store_dir_});
    ASSERT_OK(store.status());
    ASSERT_NO_FATAL_FAILURE(UpgradeAndSayFormat(**store, 3));
    ASSERT_OK((*store)->ScanRows(Cf::kSagas, [&](auto key, auto value) {
      before.emplace(std::string(key), std::string(value));
      return true;
    }));
  }
  {
    auto store = OpenRocksStore({.path = store_dir_});
    ASSERT_OK(store.status());
    EXPECT_EQ((*store)->format_version(), 3u);
    auto report = UpgradeStore(**store);
    ASSERT_OK(report.status());
    EXPECT_EQ(report->from, 3u);
    EXPECT_EQ(report->rewritten, 0u);
  }
  auto store = OpenRocksStore({.path = store_dir_});
  ASSERT_OK(store.status());
  EXPECT_EQ((*store)->format_version(), kFormatVersion);
  std::map<std::string, std::string> after;
  ASSERT_OK((*store)->ScanRows(Cf::kSagas, [&](auto key, auto value) {
    after.emplace(std::string(key), std::string(value));
    return true;
  }));
  EXPECT_EQ(after, before);
}

// Format 7 keeps one saga index: a format 6 store's idx_state and
// idx_workflow rows (more than a page of them) are deleted, its snapshots
// kept, and every listing answers as before.
TEST_F(StoreUpgradeTest, AFormat6StoreLosesItsRetiredIndexRowsAndListsTheSame) {
  std::map<SagaState, std::vector<std::string>> listed;
  size_t sagas = 0;
  {
    auto store = OpenRocksStore({.path = store_dir_});
    ASSERT_OK(store.status());
    ASSERT_NO_FATAL_FAILURE(UpgradeAndSayFormat(**store, 6));
    Transition t;  // the rows format 6 kept beside idx_workflow_state
    ASSERT_OK((*store)->ScanRows(Cf::kSagas, [&](auto key, auto value) {
      auto saga = DecodeSaga(value, std::string(key));
      EXPECT_OK(saga.status());
      if (!saga.ok()) return false;
      t.TEST_PutRaw(Cf::kIdxState, IdxStatePrefix(saga->state) + saga->id, "");
      t.TEST_PutRaw(Cf::kIdxWorkflow,
                    IdxWorkflowPrefix(saga->workflow) + saga->id, "");
      ++sagas;
      return true;
    }));
    for (int i = 0; i < 600; ++i) {
      t.TEST_PutRaw(Cf::kIdxState,
                    IdxStatePrefix(SagaState::kCompleted) + "old-" +
                        std::to_string(1000 + i),
                    "");
    }
    const Transition* batch[] = {&t};
    ASSERT_OK((*store)->Write(batch, true));
    for (SagaState state : kAllSagaStates) {
      auto page = (*store)->ListSagas({.state = state, .limit = 1000});
      ASSERT_OK(page.status());
      for (const SagaRecord& s : page->sagas) listed[state].push_back(s.id);
    }
  }
  ASSERT_EQ(sagas, FixtureSagas().size());
  auto store = OpenRocksStore({.path = store_dir_});
  ASSERT_OK(store.status());
  EXPECT_EQ((*store)->format_version(), 6u);
  auto report = UpgradeStore(**store);
  ASSERT_OK(report.status());
  EXPECT_EQ(report->from, 6u);
  EXPECT_EQ(report->rewritten, 0u);
  EXPECT_EQ(report->retired_index_rows, 2 * sagas + 600);
  ExpectOnlyTheOneIndex(**store, sagas);
  for (SagaState state : kAllSagaStates) {
    auto page = (*store)->ListSagas({.state = state, .limit = 1000});
    ASSERT_OK(page.status());
    std::vector<std::string> ids;
    for (const SagaRecord& s : page->sagas) ids.push_back(s.id);
    EXPECT_EQ(ids, listed[state]) << SagaStateName(state);
  }
}

// Format 6 only adds log rows of several events: a format 5 store's rows
// of one event each read on, beside the rows this build appends after them.
TEST_F(StoreUpgradeTest, AFormat5LogReadsOnWithRowsOfSeveralEventsAfterIt) {
  const std::string id = FixtureSagas()["completed"].get<std::string>();
  uint64_t last_seq = 0;
  {
    auto store = OpenRocksStore({.path = store_dir_});
    ASSERT_OK(store.status());
    ASSERT_NO_FATAL_FAILURE(UpgradeAndSayFormat(**store, 5));
    auto saga = (*store)->GetSaga(id);
    ASSERT_OK(saga.status());
    last_seq = saga->last_seq;
    ASSERT_GT(last_seq, 1u);
  }
  auto store = OpenRocksStore({.path = store_dir_});
  ASSERT_OK(store.status());
  auto report = UpgradeStore(**store);
  ASSERT_OK(report.status());
  EXPECT_EQ(report->from, 5u);
  EXPECT_EQ(report->rewritten, 0u);

  const json data = {{"note", "appended by format 6"}};
  const Transition::LogEvent events[] = {{"note", &data}, {"note", &data}};
  Transition t;
  t.AppendLogEvents(id, last_seq + 1, 1, events);
  const Transition* batch[] = {&t};
  ASSERT_OK((*store)->Write(batch, true));
  auto log = (*store)->ReadLog(id, 1, 1000);
  ASSERT_OK(log.status());
  ASSERT_EQ(log->size(), last_seq + 2);
  for (uint64_t i = 0; i < log->size(); ++i) {
    EXPECT_EQ((*log)[i].seq, i + 1);
  }
  EXPECT_EQ(log->back().data, data);
  auto from_last_old = (*store)->ReadLog(id, last_seq, 2);
  ASSERT_OK(from_last_old.status());
  ASSERT_EQ(from_last_old->size(), 2u);
  EXPECT_EQ(from_last_old->front().seq, last_seq);
  EXPECT_EQ(from_last_old->back().seq, last_seq + 1);
}

}  // namespace
}  // namespace cde
