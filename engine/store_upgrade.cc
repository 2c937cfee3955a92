#include "engine/store_upgrade.h"

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "engine/definition_registry.h"
#include "engine/saga.h"

namespace cde {
namespace {

constexpr size_t kPage = 256;

Status WriteSync(Store& store, const Transition& t) {
  const Transition* batch[] = {&t};
  return store.Write(batch, /*sync=*/true);
}

// What format 1 could leave that format 2 never writes.
void FixFormat1(Saga& saga) {
  if (!IsTerminal(saga.state)) return;
  for (StepState& st : saga.steps) {
    if (st.status != StepStatus::kRunning) continue;
    st.status = StepStatus::kCancelled;
    if (st.finished_ms == 0) st.finished_ms = saga.updated_ms;
  }
}

// The stored definitions, each read once: formats 1 and 2 name the step a
// saga waits on by its index, and its definition names it by its path.
class StoredDefinitions {
 public:
  explicit StoredDefinitions(Store& store) : store_(store) {}
  const WorkflowDefinition* Find(const std::string& name, uint32_t version) {
    auto key = std::make_pair(name, version);
    auto it = cache_.find(key);
    if (it == cache_.end()) {
      std::unique_ptr<WorkflowDefinition> def;
      if (auto record = store_.GetDefinition(name, version); record.ok()) {
        if (auto parsed = ParseStoredDefinition(*record); parsed.ok()) {
          def = std::make_unique<WorkflowDefinition>(std::move(parsed).value());
        }
      }
      it = cache_.emplace(key, std::move(def)).first;
    }
    return it->second.get();
  }

 private:
  Store& store_;
  std::map<std::pair<std::string, uint32_t>,
           std::unique_ptr<WorkflowDefinition>>
      cache_;
};

// Before format 3 a step's timer row was named by its kind alone; it is now
// named by its kind and the step's path.
void RenameStepTimers(const Saga& saga, Transition& t) {
  for (const Wait& w : saga.waits) {
    const auto kind = TimerKindOf(w.kind);
    if (!kind || w.path.empty()) continue;
    t.DeleteTimer(w.due_ms, saga.id, TimerKindName(*kind));
    t.PutTimer({w.due_ms, saga.id, TimerRowName(*kind, w.path)});
  }
}

// Format 7 keeps one saga index, idx_workflow_state: the rows of the two
// it retired go, a page per write (read first, then written: no write
// while a view is open).
Status EmptyRetiredIndexes(Store& store, UpgradeReport& report) {
  for (Cf cf : {Cf::kIdxState, Cf::kIdxWorkflow}) {
    for (std::string from;;) {
      std::vector<std::string> keys;
      CDE_RETURN_IF_ERROR(
          store
              .ScanRowsFrom(cf, from,
                            [&](std::string_view key, std::string_view) {
                              keys.emplace_back(key);
                              return keys.size() < kPage;
                            })
              .WithContext("upgrading the store"));
      if (keys.empty()) break;
      Transition t;
      for (const std::string& key : keys) t.DeleteRetiredIndexRow(cf, key);
      const Transition* batch[] = {&t};
      CDE_RETURN_IF_ERROR(store.Write(batch, /*sync=*/false)
                              .WithContext("upgrading the store"));
      report.retired_index_rows += keys.size();
      from = keys.back() + '\0';  // the next key after the last one
    }
  }
  return Status::OK();
}

}  // namespace

Result<UpgradeReport> UpgradeStore(Store& store) {
  UpgradeReport report;
  report.from = store.format_version();
  if (report.from >= kFormatVersion) return report;
  {
    Transition begin;
    begin.BeginFormatUpgrade(report.from);
    CDE_RETURN_IF_ERROR(
        WriteSync(store, begin).WithContext("starting the store's upgrade"));
  }
  // Newest first, a page at a time; each page is one write. Formats 4 to 8
  // only added what older stores never hold (map item rows, an input kept
  // in the log, log rows of several events, snapshot patches) or dropped
  // index rows: a format 3 snapshot is a format 8 one.
  StoredDefinitions definitions(store);
  SagaQuery query;
  query.limit = kPage;
  for (bool more = report.from < 3; more;) {
    auto page = store.ListSagas(query);
    CDE_RETURN_IF_ERROR(page.status().WithContext("upgrading the store"));
    // Rows that do not decode are left as they are: recovery parks such a
    // saga as poison, if active.
    report.left_as_is += page->unreadable.size();
    Transition t;
    for (const SagaRecord& record : page->sagas) {
      auto saga =
          FromRecord(record, definitions.Find(record.workflow, record.version));
      if (!saga.ok()) {
        ++report.left_as_is;  // recovery parks it as poison, if active
        continue;
      }
      FixFormat1(*saga);
      if (report.from < 3) RenameStepTimers(*saga, t);
      t.PutSaga(HeadOf(*saga), EncodeSnapshot(*saga), record.state);
      ++report.rewritten;
    }
    if (!page->sagas.empty()) {
      const Transition* batch[] = {&t};
      CDE_RETURN_IF_ERROR(store.Write(batch, /*sync=*/false)
                              .WithContext("upgrading the store"));
    }
    more = !page->next_cursor.empty();
    query.cursor = page->next_cursor;
  }
  if (report.from < 7) CDE_RETURN_IF_ERROR(EmptyRetiredIndexes(store, report));
  Transition end;
  end.EndFormatUpgrade();
  CDE_RETURN_IF_ERROR(
      WriteSync(store, end).WithContext("finishing the store's upgrade"));
  return report;
}

}  // namespace cde
