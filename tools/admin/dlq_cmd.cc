// cde-admin dlq list | show ID
#include "storage/saga_id.h"
#include "tools/admin/commands.h"
#include "tools/admin/saga_view.h"
#include "tools/admin/store_access.h"

namespace cde::admin {

using nlohmann::json;

namespace {

json EntryJson(const DlqRecord& d, int64_t now_ms) {
  json j = DlqJson(d);
  j["parked_for_ms"] = now_ms - d.parked_ms;
  return j;
}

}  // namespace

int RunDlqList(const Common& common, const std::string& workflow, size_t limit,
               const std::string& cursor) {
  const int64_t now = NowMs();
  if (limit == 0) Fail(kExitUsage, "--limit: must be at least 1");
  if (!cursor.empty() && !IsSagaId(cursor)) {
    Fail(kExitUsage, "--cursor: '" + cursor +
                         "' is not a cursor printed by a previous page");
  }
  DlqQuery q;
  if (!workflow.empty()) q.workflow = workflow;
  q.limit = limit;
  q.cursor = cursor;
  StoreAccess access = OpenForRead(common.data_dir);
  const DlqPage page = Check(access.store->ListDlq(q));
  if (common.json) {
    json entries = json::array();
    for (const auto& d : page.entries) entries.push_back(EntryJson(d, now));
    PrintJson(
        {{"entries", entries},
         {"next_cursor",
          page.next_cursor.empty() ? json(nullptr) : json(page.next_cursor)}});
    return kExitOk;
  }
  if (page.entries.empty()) {
    std::printf("the dead-letter queue is empty%s\n",
                workflow.empty() ? "" : (" for " + workflow).c_str());
    return kExitOk;
  }
  Table t({"SAGA", "WORKFLOW", "REASON", "STEP", "ATTEMPTS", "PARKED",
           "REPLAYS", "LAST ERROR"});
  for (const auto& d : page.entries) {
    t.AddRow({d.saga_id,
              d.workflow + "@" + std::to_string(d.version),
              {d.reason, Colour::kRed},
              d.step.empty() ? "-" : d.step,
              std::to_string(d.attempts),
              FormatDuration(now - d.parked_ms) + " ago",
              std::to_string(d.replay_count),
              Shorten(d.last_error, 60)});
  }
  t.Print();
  if (!page.next_cursor.empty()) {
    std::printf("more: add --cursor %s for the next page\n",
                page.next_cursor.c_str());
  }
  return kExitOk;
}

int RunDlqShow(const Common& common, const std::string& id) {
  const int64_t now = NowMs();
  StoreAccess access = OpenForRead(common.data_dir);
  auto entry = access.store->GetDlq(id);
  if (entry.status().IsNotFound()) {
    if (access.store->GetSaga(id).status().IsNotFound()) {
      Fail(kExitFailed, "no saga " + id);
    }
    Fail(kExitFailed, "saga " + id + " is not in the dead-letter queue");
  }
  const DlqRecord d = Check(std::move(entry));
  auto rec = access.store->GetSaga(id);
  json saga = nullptr;
  if (rec.ok()) {
    Definitions defs(*access.store);
    saga = SagaSummary(*rec, FromRecord(*rec), defs, now);
  }
  if (common.json) {
    PrintJson({{"entry", EntryJson(d, now)}, {"saga", saga}});
    return kExitOk;
  }
  auto field = [](const char* name, const std::string& value) {
    std::printf("%-12s %s\n", name, value.c_str());
  };
  field("saga", Paint(d.saga_id, Colour::kBold));
  field("workflow", d.workflow + "@" + std::to_string(d.version));
  field("reason", Paint(d.reason, Colour::kRed));
  field("step", d.step.empty() ? "-" : d.step);
  field("attempts", std::to_string(d.attempts));
  field("last error", d.last_error);
  field("parked", FormatTime(d.parked_ms) + " (" +
                      FormatDuration(now - d.parked_ms) + " ago)");
  field("replays", std::to_string(d.replay_count));
  if (saga.is_null()) {
    field("snapshot",
          Paint("missing: " + rec.status().message(), Colour::kRed));
  } else {
    const std::string state = saga["state"].get<std::string>();
    field("state", Paint(state, StateColour(state)) +
                       (state == "parked" ? "" : "  (expected parked)"));
  }
  std::printf("\nthe full timeline: cde-admin sagas show %s\n",
              d.saga_id.c_str());
  return kExitOk;
}

}  // namespace cde::admin
