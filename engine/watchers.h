// Watchers: who follows a saga's commits (MCP waits, subscriptions, tasks)
// and who hears of new definitions (tools/list_changed). One id space for
// both, so Engine::Unwatch takes either.
//
// A watcher may unwatch itself or another while it is called, and may add
// watchers; those added during a notification are first called at the
// next one.
//
// Thread safety: loop thread only.
#ifndef CDE_ENGINE_WATCHERS_H_
#define CDE_ENGINE_WATCHERS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "engine/saga.h"
#include "storage/records.h"

namespace cde {

class Watchers {
 public:
  using OnSaga = std::function<void(const Saga&)>;
  using OnDefinition = std::function<void(const DefinitionRecord&)>;

  uint64_t WatchSaga(const std::string& saga_id, OnSaga on_change);
  uint64_t WatchDefinitions(OnDefinition on_registered);
  // A no-op for an id that is not (or no longer) watching.
  void Unwatch(uint64_t watch_id);

  bool Watched(const std::string& saga_id) const {
    return sagas_.count(saga_id) != 0;
  }
  // Calls every watcher of `saga` (which has just committed).
  void SagaChanged(const Saga& saga);
  void DefinitionRegistered(const DefinitionRecord& record);

 private:
  uint64_t next_id_ = 1;
  // saga id -> watch id -> callback; ordered by watch id: called in the
  // order they watched. Shared, so that a call holds its callback (which
  // may unwatch itself) without copying it.
  std::unordered_map<std::string,
                     std::map<uint64_t, std::shared_ptr<const OnSaga>>>
      sagas_;
  std::unordered_map<uint64_t, std::string> saga_of_;
  std::map<uint64_t, std::shared_ptr<const OnDefinition>> definitions_;
};

}  // namespace cde

#endif  // CDE_ENGINE_WATCHERS_H_
