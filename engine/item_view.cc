#include "engine/item_view.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "engine/definition_registry.h"

namespace cde {
namespace {

using nlohmann::json;

// The map step `path` names, or the only one.
Result<int> FindMapStep(const WorkflowDefinition& def,
                        const std::string& path) {
  std::vector<int> maps;
  for (size_t i = 0; i < def.steps.size(); ++i) {
    if (def.steps[i].kind == StepKind::kMap)
      maps.push_back(static_cast<int>(i));
  }
  std::string names;
  for (int m : maps) {
    names +=
        (names.empty() ? "" : ", ") + def.steps[static_cast<size_t>(m)].path;
  }
  if (path.empty()) {
    if (maps.size() == 1) return maps.front();
    return Status::InvalidArgument(
        maps.empty() ? "workflow " + def.name + " has no map step"
                     : "map_step: workflow " + def.name +
                           " has several map steps; name one of " + names);
  }
  for (int m : maps) {
    if (def.steps[static_cast<size_t>(m)].path == path) return m;
  }
  return Status::InvalidArgument(
      "map_step: '" + path + "' is not a map step of workflow " + def.name +
      (maps.empty() ? " (it has none)" : " (its map steps: " + names + ")"));
}

json ItemJson(const WorkflowDefinition& def, int map, uint32_t index,
              const ItemState& item) {
  json out = ItemToJson(item);
  const std::string& map_path = def.steps[static_cast<size_t>(map)].path;
  json& steps = out["steps"];
  for (size_t i = 0; i < steps.size(); ++i) {
    const int at = map + 1 + static_cast<int>(i);
    if (static_cast<size_t>(at) >= def.steps.size()) break;
    steps[i]["name"] = def.steps[static_cast<size_t>(at)].name;
    steps[i]["path"] = InstancePath(def, {at, index});
  }
  out["index"] = index;
  out["path"] = map_path + "[" + std::to_string(index) + "]";
  return out;
}

}  // namespace

Result<ItemPage> ReadItemPage(Store& store, const std::string& saga_id,
                              const ItemQuery& query) {
  auto record = store.GetSaga(saga_id);
  if (!record.ok()) return record.status();
  auto saga = FromRecord(*record);
  if (!saga.ok()) return saga.status();
  // A saga's definition is never removed: without it the store is damaged.
  const std::string runs = "saga " + saga_id + " runs " + record->workflow +
                           "@" + std::to_string(record->version);
  auto stored = store.GetDefinition(record->workflow, record->version);
  if (stored.status().IsNotFound()) {
    return Status::Corruption(runs + ", whose definition is not in the store");
  }
  if (!stored.ok()) return stored.status();
  auto def = ParseStoredDefinition(*stored);
  if (!def.ok()) {
    return Status::Corruption(runs +
                              ", whose stored definition cannot be "
                              "read: " +
                              def.status().message());
  }
  auto map = FindMapStep(*def, query.map_step);
  if (!map.ok()) return map.status();
  ItemPage page;
  page.map_step = def->steps[static_cast<size_t>(*map)].path;
  if (static_cast<size_t>(*map) < saga->steps.size()) {
    const MapProgress& progress = saga->steps[static_cast<size_t>(*map)].map;
    page.total = progress.items;
    page.started = progress.started;
  }
  // A chunk of rows at a time: with a status filter a page may need more
  // rows than it shows. At most kMaxRowsScanned per call, so that a filter
  // that matches little costs a client's call a bounded read: the page may
  // then hold fewer items than asked (even none), and next_index says where
  // to go on.
  const size_t chunk = std::max<size_t>(query.limit + 1, 256);
  size_t scanned = 0;
  for (uint64_t from = query.from_index; from <= UINT32_MAX;) {
    if (scanned >= kMaxRowsScanned) {
      page.next_index = static_cast<uint32_t>(from);
      return page;
    }
    auto rows = store.ReadMapItems(saga_id, page.map_step,
                                   static_cast<uint32_t>(from), chunk);
    if (!rows.ok()) return rows.status();
    scanned += rows->size();
    for (const ItemRecord& row : *rows) {
      auto item = ItemFromRow(*def, *map, row);
      if (!item.ok()) return item.status();
      if (query.status && item->status != *query.status) continue;
      if (page.items.size() == query.limit) {
        page.next_index = row.index;
        return page;
      }
      page.items.push_back(ItemJson(*def, *map, row.index, *item));
    }
    if (rows->size() < chunk) break;
    from = static_cast<uint64_t>(rows->back().index) + 1;
  }
  return page;
}

}  // namespace cde
