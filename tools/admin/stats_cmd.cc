// cde-admin stats
#include <cctype>
#include <filesystem>
#include <limits>
#include <map>

#include "storage/keys.h"
#include "tools/admin/commands.h"
#include "tools/admin/store_access.h"

namespace cde::admin {

using nlohmann::json;

namespace {

uint64_t DiskBytes(const std::string& dir) {
  namespace fs = std::filesystem;
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      const auto n = it->file_size(size_ec);
      if (!size_ec) total += n;
    }
  }
  return total;
}

json ZeroStates() {
  json j = json::object();
  for (SagaState s : kAllSagaStates) j[std::string(SagaStateName(s))] = 0;
  return j;
}

}  // namespace

int RunStats(const Common& common) {
  const int64_t now = NowMs();
  StoreAccess access = OpenForRead(common.data_dir);
  Store& store = *access.store;
  const StoreStats stats = Check(store.Stats());

  json by_state = ZeroStates();
  uint64_t total = 0;
  for (const auto& [name, n] : stats.sagas_by_state) {
    by_state[name] = n;
    total += n;
  }
  // By workflow: the keys of idx_workflow_state (workflow 0x00 state id).
  std::map<std::string, json> by_workflow;
  for (const auto& d : Check(store.ListDefinitions())) {
    by_workflow.emplace(d.name, json{{"total", 0}, {"by_state", ZeroStates()}});
  }
  Check(store.ScanRows(Cf::kIdxWorkflowState, [&](auto key, auto) {
    const size_t sep = key.find('\0');
    if (sep == std::string_view::npos || sep + 1 >= key.size()) return true;
    auto state = SagaStateFromCode(static_cast<uint8_t>(key[sep + 1]));
    if (!state) return true;  // verify reports it
    auto [it, fresh] =
        by_workflow.emplace(std::string(key.substr(0, sep)),
                            json{{"total", 0}, {"by_state", ZeroStates()}});
    json& w = it->second;
    w["total"] = w["total"].get<uint64_t>() + 1;
    json& n = w["by_state"][std::string(SagaStateName(*state))];
    n = n.get<uint64_t>() + 1;
    return true;
  }));
  // Timers: the earliest, and how many are overdue (keys sort by due time).
  uint64_t overdue = 0;
  // (max - 1: the key bound after the largest due time would wrap around.)
  const auto next =
      Check(store.DueTimers(std::numeric_limits<int64_t>::max() - 1, 1));
  const auto due = Check(store.DueTimers(now, stats.timers));
  overdue = due.size();

  json doc = {
      {"data_dir", common.data_dir},
      {"access", access.ModeName()},
      {"server_pid",
       access.server_pid ? json(*access.server_pid) : json(nullptr)},
      {"sagas", {{"total", total}, {"by_state", by_state}}},
      {"workflows", by_workflow},
      {"definitions", stats.definitions},
      {"dlq_entries", stats.dlq_entries},
      {"timers",
       {{"total", stats.timers},
        {"overdue", overdue},
        {"next_due_ms", next.empty() ? json(nullptr) : json(next[0].due_ms)},
        {"next_due_at",
         next.empty() ? json(nullptr) : json(FormatTime(next[0].due_ms))}}},
      {"store",
       {{"disk_bytes", DiskBytes(common.data_dir)},
        {"rocksdb", stats.engine}}}};
  if (common.json) {
    PrintJson(doc);
    return kExitOk;
  }

  std::printf("%-12s %s (%s%s)\n", "store", common.data_dir.c_str(),
              access.mode == OpenMode::kSecondary
                  ? "live: read as a secondary of the server"
                  : "offline: read-only",
              access.server_pid && *access.server_pid > 0
                  ? (", pid " + std::to_string(*access.server_pid)).c_str()
                  : "");
  std::printf("%-12s %s on disk\n", "size",
              FormatBytes(doc["store"]["disk_bytes"].get<uint64_t>()).c_str());
  std::printf("%-12s %llu\n", "sagas", static_cast<unsigned long long>(total));
  std::printf("%-12s %llu\n", "dlq",
              static_cast<unsigned long long>(stats.dlq_entries));
  std::string timers = std::to_string(stats.timers);
  if (!next.empty()) {
    timers += ", next due " + FormatTime(next[0].due_ms);
    if (overdue != 0) timers += ", " + std::to_string(overdue) + " overdue";
  }
  std::printf("%-12s %s\n", "timers", timers.c_str());
  std::printf("%-12s %llu\n", "definitions",
              static_cast<unsigned long long>(stats.definitions));

  std::printf("\n");
  std::vector<std::string> headers = {"WORKFLOW"};
  for (SagaState s : kAllSagaStates) {
    std::string h(SagaStateName(s));
    for (char& c : h) c = static_cast<char>(std::toupper(c));
    headers.push_back(h);
  }
  headers.push_back("TOTAL");
  Table t(headers);
  auto row = [&](const std::string& name, const json& states, uint64_t n) {
    std::vector<Cell> cells = {name};
    for (SagaState s : kAllSagaStates) {
      const uint64_t v = states[std::string(SagaStateName(s))].get<uint64_t>();
      cells.emplace_back(std::to_string(v),
                         v == 0 ? Colour::kDim : StateColour(s));
    }
    cells.emplace_back(std::to_string(n), Colour::kBold);
    t.AddRow(std::move(cells));
  };
  for (const auto& [name, w] : by_workflow) {
    row(name, w["by_state"], w["total"].get<uint64_t>());
  }
  row("(all)", by_state, total);
  t.Print();

  std::printf("\n");
  Table r({"ROCKSDB", "VALUE"});
  for (const auto& [name, v] : stats.engine) {
    r.AddRow(
        {name, name.ends_with("_bytes") ? FormatBytes(v) : std::to_string(v)});
  }
  r.Print();
  return kExitOk;
}

}  // namespace cde::admin
