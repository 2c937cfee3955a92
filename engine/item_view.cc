#include "engine/item_view.h"

#include <algorithm>
#include <iterator>
#include <utility>
#include <vector>

#include "engine/definition_registry.h"
#include "engine/transitions.h"

namespace cde {
namespace {

using nlohmann::json;

// The path of the first run of map step `map` inside other map steps'
// steps ("orders[0].lines"): how a client names one.
std::string FirstRun(const WorkflowDefinition& def, int map) {
  const size_t outer = EnclosingMaps(def, map).size();
  return InstancePath(def, {map, 0, std::vector<uint32_t>(outer - 1)});
}

// The map instance `path` names ("fan", "orders[2].lines" for a map step
// inside another map step's steps), or the only map step outside map steps.
Result<StepInstance> FindMapStep(const WorkflowDefinition& def,
                                 const std::string& path) {
  std::vector<int> maps;
  for (size_t i = 0; i < def.steps.size(); ++i) {
    if (def.steps[i].kind == StepKind::kMap) {
      maps.push_back(static_cast<int>(i));
    }
  }
  std::string names;
  for (int m : maps) {
    const StepSpec& spec = def.steps[static_cast<size_t>(m)];
    names += (names.empty() ? "" : ", ") + spec.path;
    // A map step inside another one runs once per item: one run is named.
    if (spec.in_map >= 0) {
      names += " as " + FirstRun(def, m);
    }
  }
  if (path.empty()) {
    std::vector<int> outside;
    std::copy_if(
        maps.begin(), maps.end(), std::back_inserter(outside),
        [&](int m) { return def.steps[static_cast<size_t>(m)].in_map < 0; });
    if (outside.size() == 1) return StepInstance{outside.front()};
    return Status::InvalidArgument(
        maps.empty() ? "workflow " + def.name + " has no map step"
                     : "map_step: workflow " + def.name +
                           " has several map steps; name one of " + names);
  }
  const StepInstance at = InstanceAt(def, path);
  if (at.step >= 0 &&
      def.steps[static_cast<size_t>(at.step)].kind == StepKind::kMap) {
    if (def.steps[static_cast<size_t>(at.step)].in_map < 0 || at.item >= 0) {
      return at;
    }
    return Status::InvalidArgument(
        "map_step: '" + path + "' runs once per item of map step '" +
        def.steps[static_cast<size_t>(
                      def.steps[static_cast<size_t>(at.step)].in_map)]
            .path +
        "': name one run of it, as " + FirstRun(def, at.step));
  }
  return Status::InvalidArgument(
      "map_step: '" + path + "' is not a map step of workflow " + def.name +
      (maps.empty() ? " (it has none)" : " (its map steps: " + names + ")"));
}

json ItemJson(const WorkflowDefinition& def, const std::string& map_path,
              const ItemRef& ref, const ItemState& item) {
  json out = ItemToJson(item);
  json& steps = out["steps"];
  // The steps inside a map step of the item run per item of it: their
  // states are in that map's item rows, not here.
  json own = json::array();
  for (size_t i = 0; i < steps.size(); ++i) {
    const int at = ref.map + 1 + static_cast<int>(i);
    if (static_cast<size_t>(at) >= def.steps.size()) break;
    if (def.steps[static_cast<size_t>(at)].in_map != ref.map) continue;
    steps[i]["name"] = def.steps[static_cast<size_t>(at)].name;
    steps[i]["path"] = InstancePath(def, {at, ref.index, ref.outer});
    own.push_back(std::move(steps[i]));
  }
  steps = std::move(own);
  out["index"] = ref.index;
  out["path"] = map_path + "[" + std::to_string(ref.index) + "]";
  return out;
}

// The progress of map instance `map` (nullptr: not begun, or its item
// never started): in the saga, or for a map step inside another map step's
// steps, in the row of the item it runs for.
Result<std::optional<MapProgress>> ProgressOf(Store& store,
                                              const WorkflowDefinition& def,
                                              const Saga& saga,
                                              const StepInstance& map) {
  const StepSpec& spec = def.steps[static_cast<size_t>(map.step)];
  if (spec.in_map < 0) {
    if (static_cast<size_t>(map.step) >= saga.steps.size()) {
      return std::optional<MapProgress>();
    }
    return std::optional<MapProgress>(
        saga.steps[static_cast<size_t>(map.step)].map);
  }
  const StepInstance outer_map = MapStepInstance({spec.in_map, map.outer});
  auto rows = store.ReadMapItems(saga.id, InstancePath(def, outer_map),
                                 static_cast<uint32_t>(map.item), 1);
  if (!rows.ok()) return rows.status();
  if (rows->empty() || rows->front().index != map.item) {
    return std::optional<MapProgress>();
  }
  auto item = ItemFromRow(def, spec.in_map, rows->front());
  if (!item.ok()) return item.status();
  return std::optional<MapProgress>(
      item->steps[static_cast<size_t>(map.step - spec.in_map - 1)].map);
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
  page.map_step = InstancePath(*def, *map);
  auto progress = ProgressOf(store, *def, *saga, *map);
  if (!progress.ok()) return progress.status();
  if (progress->has_value()) {
    page.total = (*progress)->items;
    page.started = (*progress)->started;
  }
  ItemRef ref{map->step, 0, map->outer};
  if (map->item >= 0) ref.outer.push_back(static_cast<uint32_t>(map->item));
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
      auto item = ItemFromRow(*def, map->step, row);
      if (!item.ok()) return item.status();
      if (query.status && item->status != *query.status) continue;
      if (page.items.size() == query.limit) {
        page.next_index = row.index;
        return page;
      }
      ref.index = row.index;
      page.items.push_back(ItemJson(*def, page.map_step, ref, *item));
    }
    if (rows->size() < chunk) break;
    from = static_cast<uint64_t>(rows->back().index) + 1;
  }
  return page;
}

}  // namespace cde
