#include "engine/watchers.h"

#include <array>
#include <span>
#include <vector>

namespace cde {
namespace {

// Calls each of `callbacks` that is still there when its turn comes, by
// id: a callback may erase itself or others (or add some) meanwhile. Most
// sagas have one watcher or none: their ids need no list of their own.
template <typename Map, typename Arg>
void CallEach(const Map* callbacks, const std::function<const Map*()>& now,
              const Arg& arg) {
  constexpr size_t kInline = 4;
  std::array<uint64_t, kInline> inline_ids;
  std::vector<uint64_t> more;
  std::span<const uint64_t> ids;
  if (callbacks->size() <= kInline) {
    size_t n = 0;
    for (const auto& [id, fn] : *callbacks) inline_ids[n++] = id;
    ids = {inline_ids.data(), n};
  } else {
    more.reserve(callbacks->size());
    for (const auto& [id, fn] : *callbacks) more.push_back(id);
    ids = more;
  }
  for (uint64_t id : ids) {
    const Map* current = now();
    if (current == nullptr) return;
    auto it = current->find(id);
    if (it == current->end()) continue;
    auto fn = it->second;  // it may unwatch itself while it runs
    (*fn)(arg);
  }
}

}  // namespace

uint64_t Watchers::WatchSaga(const std::string& saga_id, OnSaga on_change) {
  const uint64_t id = next_id_++;
  sagas_[saga_id][id] = std::make_shared<const OnSaga>(std::move(on_change));
  saga_of_[id] = saga_id;
  return id;
}

uint64_t Watchers::WatchDefinitions(OnDefinition on_registered) {
  const uint64_t id = next_id_++;
  definitions_[id] =
      std::make_shared<const OnDefinition>(std::move(on_registered));
  return id;
}

void Watchers::Unwatch(uint64_t watch_id) {
  if (definitions_.erase(watch_id) > 0) return;
  auto it = saga_of_.find(watch_id);
  if (it == saga_of_.end()) return;
  auto w = sagas_.find(it->second);
  if (w != sagas_.end()) {
    w->second.erase(watch_id);
    if (w->second.empty()) sagas_.erase(w);
  }
  saga_of_.erase(it);
}

void Watchers::SagaChanged(const Saga& saga) {
  auto w = sagas_.find(saga.id);
  if (w == sagas_.end()) return;
  using Map = std::map<uint64_t, std::shared_ptr<const OnSaga>>;
  CallEach<Map, Saga>(
      &w->second,
      [this, &saga]() -> const Map* {
        auto it = sagas_.find(saga.id);
        return it == sagas_.end() ? nullptr : &it->second;
      },
      saga);
}

void Watchers::DefinitionRegistered(const DefinitionRecord& record) {
  using Map = std::map<uint64_t, std::shared_ptr<const OnDefinition>>;
  CallEach<Map, DefinitionRecord>(
      &definitions_, [this]() -> const Map* { return &definitions_; }, record);
}

}  // namespace cde
