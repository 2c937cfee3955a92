// The items of a saga's map step as every surface shows them (MCP
// list_map_items, cde-admin sagas items): a page of them, each with its own
// outcome and its steps' states, read from the item rows.
#ifndef CDE_ENGINE_ITEM_VIEW_H_
#define CDE_ENGINE_ITEM_VIEW_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/definition.h"
#include "engine/saga.h"
#include "storage/status.h"
#include "storage/store.h"

namespace cde {

// The most item rows one ReadItemPage reads (a filtered page of a large
// map may stop short of its limit there, with next_index to go on from).
inline constexpr size_t kMaxRowsScanned = 4096;

struct ItemQuery {
  // The map step's path (get_saga's `path`), or for a map step inside
  // another map step's steps the path of one run of it ("orders[2].lines");
  // "" = the saga's only map step outside map steps.
  std::string map_step;
  std::optional<StepStatus> status;  // only items with this outcome
  uint32_t from_index = 0;           // the first item index to consider
  size_t limit = 100;
};

struct ItemPage {
  std::string map_step;  // the map step's path
  uint32_t total = 0;    // its items (0 before it began)
  uint32_t started = 0;  // items 0..started-1 have started
  // {index, path, status, compensation?, error?, steps: [{path, name,
  // status, attempts, output?, error?, ...}]} in index order. Items not yet
  // started have no state and are not listed.
  nlohmann::json items = nlohmann::json::array();
  // Pass back as from_index for the next page; absent on the last one. A
  // page filtered by status may hold fewer items than its limit, even none,
  // and still have one: kMaxRowsScanned rows were read.
  std::optional<uint32_t> next_index;
};

// A page of the items of saga `saga_id`'s map step, read from `store` (the
// saga, its definition as stored, the page's item rows: a page costs the
// rows it reads, not the whole map). NotFound for an unknown saga;
// InvalidArgument when the map step is not one of its workflow's (or none
// is named and it has none, or several); Corruption when the store is
// damaged. Reads the store: never on the loop thread.
Result<ItemPage> ReadItemPage(Store& store, const std::string& saga_id,
                              const ItemQuery& query);

}  // namespace cde

#endif  // CDE_ENGINE_ITEM_VIEW_H_
