// A Transition is everything one saga state change writes: its log event,
// the new snapshot, the index rows that follow the snapshot's state, and any
// timer, DLQ or idempotency rows. The store applies a transition atomically
// (one RocksDB WriteBatch across column families), so a reader or a restart
// after a crash sees all of it or none of it.
//
// Records are encoded when added, on the caller's thread, so the commit
// writer only copies bytes. Not thread-safe; build on one thread, then hand
// it over.
#ifndef CDE_STORAGE_TRANSITION_H_
#define CDE_STORAGE_TRANSITION_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/keys.h"
#include "storage/records.h"

namespace cde {

struct Mutation {
  Cf cf;
  bool is_delete = false;
  std::string key;
  std::string value;
};

class Transition {
 public:
  // Writes the saga snapshot and keeps idx_state, idx_workflow and
  // idx_workflow_state in step with it. `previous_state` is the state of the
  // snapshot being replaced, or nullopt when the saga is new.
  void PutSaga(const SagaRecord& saga, std::optional<SagaState> previous_state);
  void AppendLog(const LogRecord& event);
  void PutTimer(const TimerRecord& timer);
  void DeleteTimer(int64_t due_ms, std::string_view saga_id,
                   std::string_view name);
  void PutDlq(const DlqRecord& entry);
  void DeleteDlq(std::string_view saga_id);
  void PutIdempotency(std::string_view key, std::string_view saga_id);
  void PutDefinition(const DefinitionRecord& definition);
  // The `meta` format version row; written once, when a store is created.
  void PutFormatVersion(uint32_t version);

  // Test hook: an arbitrary row, e.g. a corrupt record for decoder tests.
  void TEST_PutRaw(Cf cf, std::string key, std::string value) {
    Put(cf, std::move(key), std::move(value));
  }

  bool empty() const { return mutations_.empty(); }
  // Bytes of keys and values, the measure the commit writer caps batches by.
  size_t ByteSize() const { return byte_size_; }
  const std::vector<Mutation>& mutations() const { return mutations_; }

 private:
  void Put(Cf cf, std::string key, std::string value);
  void Delete(Cf cf, std::string key);

  std::vector<Mutation> mutations_;
  size_t byte_size_ = 0;
};

}  // namespace cde

#endif  // CDE_STORAGE_TRANSITION_H_
