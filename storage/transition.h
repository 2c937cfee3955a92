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

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/keys.h"
#include "storage/records.h"

namespace cde {

class Transition {
 public:
  // Writes the saga snapshot and keeps its idx_workflow_state row in step
  // with it (a row only when the state changes). `previous_state` is the
  // state of the snapshot being replaced, or nullopt when the saga is new.
  void PutSaga(const SagaRecord& saga, std::optional<SagaState> previous_state);
  // The same, with the snapshot already encoded (EncodeSagaWith).
  void PutSaga(const SagaHead& head, std::string_view encoded,
               std::optional<SagaState> previous_state);
  // Writes the snapshot of `head` with its body written by `write_body`
  // straight into this transition (AppendSagaWith): no copy of the record.
  void PutSaga(const SagaHead& head,
               const std::function<void(CborWriter&)>& write_body,
               std::optional<SagaState> previous_state);
  void AppendLog(const LogRecord& event);
  // An event's data is `*data`, or, when `write_data` is set, what
  // `write_data(data_context, w)` writes (see LogRowWriter).
  struct LogEvent {
    std::string_view type;
    const nlohmann::json* data = nullptr;
    LogRowWriter::WriteData write_data = nullptr;
    const void* data_context = nullptr;
  };
  // The events of one transition, seqs first_seq, first_seq + 1, ..., as
  // one row keyed by the last one's seq (EncodeLogRow), encoded in place:
  // a row per transition, not per event, is one memtable insert.
  // With `write_patch`, the row also holds the snapshot patch it writes
  // (format 8; LogRowWriter::Patch): for a transition that writes no
  // snapshot.
  void AppendLogEvents(std::string_view saga_id, uint64_t first_seq,
                       int64_t time_ms, std::span<const LogEvent> events,
                       LogRowWriter::WriteData write_patch = nullptr,
                       const void* patch_context = nullptr);
  void PutTimer(const TimerRecord& timer);
  void DeleteTimer(int64_t due_ms, std::string_view saga_id,
                   std::string_view name);
  void PutDlq(const DlqRecord& entry);
  void DeleteDlq(std::string_view saga_id);
  void PutIdempotency(std::string_view key, std::string_view saga_id);
  void PutDefinition(const DefinitionRecord& definition);
  // The `meta` format version row; written once, when a store is created.
  void PutFormatVersion(uint32_t version);
  // An upgrade from format `from` begins: the store says kFormatVersion, and
  // that an upgrade from `from` is under way (Store::format_version()
  // reports `from` until EndFormatUpgrade is written).
  void BeginFormatUpgrade(uint32_t from);
  void EndFormatUpgrade();
  // Removes a saga: its snapshot and its index row (for the state and
  // workflow of `saga`, the stored snapshot), and its log events
  // 1..saga.last_seq. Timer, DLQ and idempotency rows are the caller's.
  void DeleteSaga(const SagaRecord& saga);
  void DeleteIdempotency(std::string_view key);
  // A row of an index format 7 retired (IsRetiredIndex): the upgrade to
  // format 7 empties them.
  void DeleteRetiredIndexRow(Cf cf, std::string_view key);
  // The row of item `index` of the map step at `map_path` (ItemKey), its
  // value already encoded (EncodeItem).
  void PutItem(std::string_view saga_id, std::string_view map_path,
               uint32_t index, std::string_view encoded);
  void DeleteItem(std::string_view saga_id, std::string_view map_path,
                  uint32_t index);
  // An audit record in `meta` (AuditKey(kind, saga_id)), CBOR-encoded.
  void PutAudit(std::string_view kind, std::string_view saga_id,
                const nlohmann::json& record);

  // Test hook: an arbitrary row, e.g. a corrupt record for decoder tests.
  void TEST_PutRaw(Cf cf, std::string_view key, std::string_view value) {
    Put(cf, key, value);
  }

  // Room for `bytes` of rows, so that a transition whose size is about
  // known grows its buffer once.
  void Reserve(size_t bytes) { rep_.reserve(bytes); }

  bool empty() const { return count_ == 0; }
  size_t count() const { return count_; }
  // Bytes of the encoded rows, the measure the commit writer caps groups by.
  size_t ByteSize() const { return rep_.size(); }

  // Calls visit(cf, is_delete, key, value) for each row, in the order added.
  template <typename Visitor>
  void ForEach(Visitor&& visit) const;

 private:
  void Put(Cf cf, std::string_view key, std::string_view value);
  // A put whose key and value are appended to the buffer by the callers.
  template <typename WriteKey, typename WriteValue>
  void PutInPlace(Cf cf, WriteKey&& write_key, WriteValue&& write_value);
  // Fills the 4-byte size at rep_[at] with the bytes written after it.
  void PatchSize(size_t at);
  void PutSagaIndexes(const SagaHead& saga,
                      std::optional<SagaState> previous_state);
  void Delete(Cf cf, std::string_view key);
  void AppendHeader(Cf cf, bool is_delete, size_t key_size);

  // All rows in one buffer, so a transition costs one allocation:
  //   cf(1) op(1) key_size(4) key [value_size(4) value]   (op 1 = put)
  std::string rep_;
  size_t count_ = 0;
};

template <typename Visitor>
void Transition::ForEach(Visitor&& visit) const {
  std::string_view in = rep_;
  while (!in.empty()) {
    const Cf cf = static_cast<Cf>(in[0]);
    const bool is_put = in[1] == 1;
    const uint32_t key_size = GetBigEndian32(in.substr(2));
    const std::string_view key = in.substr(6, key_size);
    in.remove_prefix(6 + key_size);
    std::string_view value;
    if (is_put) {
      const uint32_t value_size = GetBigEndian32(in);
      value = in.substr(4, value_size);
      in.remove_prefix(4 + value_size);
    }
    visit(cf, !is_put, key, value);
  }
}

}  // namespace cde

#endif  // CDE_STORAGE_TRANSITION_H_
