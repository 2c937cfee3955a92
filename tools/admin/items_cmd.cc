// cde-admin sagas items: the items of a map step, from the engine's item
// read model (engine/item_view.h), as a table or as JSON.
#include <string>

#include "engine/item_view.h"
#include "tools/admin/commands.h"
#include "tools/admin/saga_view.h"
#include "tools/admin/store_access.h"

namespace cde::admin {
namespace {

using nlohmann::json;

// The step of an item an operator looks at: the last one that started (the
// one that failed, for a failed item), else its first.
const json& CurrentStep(const json& item) {
  const json& steps = item["steps"];
  for (size_t i = steps.size(); i-- > 0;) {
    if (steps[i].value("status", "") != "pending") return steps[i];
  }
  return steps[0];
}

std::string ErrorCell(const json& error) {
  if (!error.is_object()) return "";
  return Shorten(error.value("kind", "") + ": " + error.value("message", ""),
                 70);
}

}  // namespace

int RunSagasItems(const Common& common, const std::string& id,
                  const ItemListOptions& options) {
  ItemQuery query{.map_step = options.map_step,
                  .from_index = options.from,
                  .limit = options.limit};
  if (!options.status.empty()) {
    query.status = StepStatusFromName(options.status);
    if (!query.status) {
      std::string names;
      for (std::string_view n : StepStatusNames()) {
        names += (names.empty() ? "" : ", ") + std::string(n);
      }
      Fail(kExitUsage,
           "--status: '" + options.status + "' is not one of " + names);
    }
  }
  StoreAccess access = OpenForRead(common.data_dir);
  auto page = ReadItemPage(*access.store, id, query);
  if (page.status().IsNotFound()) Fail(kExitFailed, "no saga " + id);
  if (page.status().IsInvalidArgument()) {
    Fail(kExitUsage, page.status().message());
  }
  Check(page.status());
  if (common.json) {
    json doc = {{"saga_id", id},
                {"map_step", page->map_step},
                {"total", page->total},
                {"started", page->started},
                {"items", page->items},
                {"next_index",
                 page->next_index ? json(*page->next_index) : json(nullptr)}};
    PrintJson(doc);
    return kExitOk;
  }
  std::printf("saga %s, map step %s: %u items, %u started\n", id.c_str(),
              page->map_step.c_str(), page->total, page->started);
  Table table({"INDEX", "STATUS", "UNDO", "STEP", "ATTEMPTS", "ERROR"});
  for (const json& item : page->items) {
    const json& step = CurrentStep(item);
    const std::string status = item.value("status", "");
    const auto known = StepStatusFromName(status);
    table.AddRow(
        {std::to_string(item["index"].get<uint32_t>()),
         {status, known ? StepColour(*known) : Colour::kNone},
         item.value("compensation", ""),
         step.value("name", ""),
         std::to_string(step.value("attempts", 0u)),
         ErrorCell(item.contains("error") ? item["error"]
                                          : step.value("error", json()))});
  }
  if (table.empty()) {
    std::printf("no items%s\n",
                options.status.empty()
                    ? " have started"
                    : (" with status " + options.status).c_str());
  } else {
    table.Print();
  }
  if (page->next_index) {
    std::printf("more: --from %u\n", *page->next_index);
  }
  return kExitOk;
}

}  // namespace cde::admin
