#include "engine/store_upgrade.h"

#include <vector>

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
  // Newest first, a page at a time; each page is one write.
  SagaQuery query;
  query.limit = kPage;
  for (;;) {
    auto page = store.ListSagas(query);
    CDE_RETURN_IF_ERROR(page.status().WithContext("upgrading the store"));
    Transition t;
    for (const SagaRecord& record : page->sagas) {
      auto saga = FromRecord(record);
      if (!saga.ok()) {
        ++report.left_as_is;  // recovery parks it as poison, if active
        continue;
      }
      FixFormat1(*saga);
      t.PutSaga(HeadOf(*saga), EncodeSnapshot(*saga), record.state);
      ++report.rewritten;
    }
    if (!page->sagas.empty()) {
      const Transition* batch[] = {&t};
      CDE_RETURN_IF_ERROR(store.Write(batch, /*sync=*/false)
                              .WithContext("upgrading the store"));
    }
    if (page->next_cursor.empty()) break;
    query.cursor = page->next_cursor;
  }
  Transition end;
  end.EndFormatUpgrade();
  CDE_RETURN_IF_ERROR(
      WriteSync(store, end).WithContext("finishing the store's upgrade"));
  return report;
}

}  // namespace cde
