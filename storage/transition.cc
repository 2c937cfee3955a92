#include "storage/transition.h"

#include <cassert>

namespace cde {

void Transition::AppendHeader(Cf cf, bool is_delete, size_t key_size) {
  rep_.push_back(static_cast<char>(cf));
  rep_.push_back(is_delete ? 0 : 1);
  PutBigEndian32(&rep_, static_cast<uint32_t>(key_size));
  ++count_;
}

template <typename WriteKey, typename WriteValue>
void Transition::PutInPlace(Cf cf, WriteKey&& write_key,
                            WriteValue&& write_value) {
  rep_.push_back(static_cast<char>(cf));
  rep_.push_back(1);
  const size_t key_size_at = rep_.size();
  rep_.append(4, '\0');
  write_key(&rep_);
  PatchSize(key_size_at);
  const size_t value_size_at = rep_.size();
  rep_.append(4, '\0');
  write_value(&rep_);
  PatchSize(value_size_at);
  ++count_;
}

void Transition::PatchSize(size_t at) {
  const auto size = static_cast<uint32_t>(rep_.size() - at - 4);
  for (int i = 0; i < 4; ++i) {
    rep_[at + i] = static_cast<char>((size >> (24 - 8 * i)) & 0xff);
  }
}

void Transition::Put(Cf cf, std::string_view key, std::string_view value) {
  PutInPlace(
      cf, [key](std::string* out) { out->append(key); },
      [value](std::string* out) { out->append(value); });
}

void Transition::Delete(Cf cf, std::string_view key) {
  AppendHeader(cf, true, key.size());
  rep_.append(key);
}

void Transition::PutSaga(const SagaRecord& saga,
                         std::optional<SagaState> previous_state) {
  PutSaga(HeadOf(saga), EncodeSaga(saga), previous_state);
}

void Transition::PutSaga(const SagaHead& saga, std::string_view encoded,
                         std::optional<SagaState> previous_state) {
  Put(Cf::kSagas, saga.id, encoded);
  PutSagaIndexes(saga, previous_state);
}

void Transition::PutSaga(const SagaHead& saga,
                         const std::function<void(CborWriter&)>& write_body,
                         std::optional<SagaState> previous_state) {
  PutInPlace(
      Cf::kSagas, [&](std::string* out) { out->append(saga.id); },
      [&](std::string* out) { AppendSagaWith(out, saga, write_body); });
  PutSagaIndexes(saga, previous_state);
}

void Transition::PutSagaIndexes(const SagaHead& saga,
                                std::optional<SagaState> previous_state) {
  if (previous_state == saga.state) return;
  if (previous_state) {
    Delete(
        Cf::kIdxWorkflowState,
        IdxWorkflowStatePrefix(saga.workflow, *previous_state).append(saga.id));
  }
  Put(Cf::kIdxWorkflowState,
      IdxWorkflowStatePrefix(saga.workflow, saga.state).append(saga.id), "");
}

void Transition::AppendLog(const LogRecord& event) {
  const LogEvent one{event.type, &event.data};
  AppendLogEvents(event.saga_id, event.seq, event.time_ms, {&one, 1});
}

void Transition::AppendLogEvents(std::string_view saga_id, uint64_t first_seq,
                                 int64_t time_ms,
                                 std::span<const LogEvent> events,
                                 LogRowWriter::WriteData write_patch,
                                 const void* patch_context) {
  assert((!events.empty() || write_patch == nullptr) &&
         "a snapshot patch needs a log row to hold it");
  if (events.empty()) return;
  const uint64_t last_seq = first_seq + events.size() - 1;
  PutInPlace(
      Cf::kLog, [&](std::string* out) { AppendLogKey(out, saga_id, last_seq); },
      [&](std::string* out) {
        LogRowWriter row(out, events.size(), write_patch != nullptr);
        uint64_t seq = first_seq;
        for (const LogEvent& e : events) {
          if (e.write_data != nullptr) {
            row.Add(saga_id, seq++, time_ms, e.type, e.write_data,
                    e.data_context);
          } else {
            row.Add(saga_id, seq++, time_ms, e.type, *e.data);
          }
        }
        if (write_patch != nullptr) row.Patch(write_patch, patch_context);
      });
}

void Transition::PutTimer(const TimerRecord& timer) {
  Put(Cf::kTimers, TimerKey(timer.due_ms, timer.saga_id, timer.name),
      EncodeTimer(timer));
}

void Transition::DeleteTimer(int64_t due_ms, std::string_view saga_id,
                             std::string_view name) {
  Delete(Cf::kTimers, TimerKey(due_ms, saga_id, name));
}

void Transition::PutDlq(const DlqRecord& entry) {
  Put(Cf::kDlq, entry.saga_id, EncodeDlq(entry));
}

void Transition::DeleteDlq(std::string_view saga_id) {
  Delete(Cf::kDlq, saga_id);
}

void Transition::PutIdempotency(std::string_view key,
                                std::string_view saga_id) {
  Put(Cf::kIdempotency, key, EncodeIdempotency(saga_id));
}

void Transition::PutDefinition(const DefinitionRecord& definition) {
  Put(Cf::kDefinitions, DefinitionKey(definition.name, definition.version),
      EncodeDefinition(definition));
}

void Transition::PutFormatVersion(uint32_t version) {
  Put(Cf::kMeta, kFormatVersionKey, EncodeFormatVersion(version));
}

void Transition::BeginFormatUpgrade(uint32_t from) {
  PutFormatVersion(kFormatVersion);
  Put(Cf::kMeta, kFormatUpgradeKey, EncodeFormatVersion(from));
}

void Transition::EndFormatUpgrade() { Delete(Cf::kMeta, kFormatUpgradeKey); }

void Transition::DeleteSaga(const SagaRecord& saga) {
  Delete(Cf::kSagas, saga.id);
  Delete(Cf::kIdxWorkflowState,
         IdxWorkflowStatePrefix(saga.workflow, saga.state) + saga.id);
  for (uint64_t seq = 1; seq <= saga.last_seq; ++seq) {
    Delete(Cf::kLog, LogKey(saga.id, seq));
  }
}

void Transition::DeleteRetiredIndexRow(Cf cf, std::string_view key) {
  assert(IsRetiredIndex(cf) && "only the rows of a retired index");
  Delete(cf, key);
}

void Transition::DeleteIdempotency(std::string_view key) {
  Delete(Cf::kIdempotency, key);
}

void Transition::PutItem(std::string_view saga_id, std::string_view map_path,
                         uint32_t index, std::string_view encoded) {
  Put(Cf::kItems, ItemKey(saga_id, map_path, index), encoded);
}

void Transition::DeleteItem(std::string_view saga_id, std::string_view map_path,
                            uint32_t index) {
  Delete(Cf::kItems, ItemKey(saga_id, map_path, index));
}

void Transition::PutAudit(std::string_view kind, std::string_view saga_id,
                          const nlohmann::json& record) {
  const std::vector<uint8_t> cbor = nlohmann::json::to_cbor(record);
  Put(Cf::kMeta, AuditKey(kind, saga_id),
      std::string_view(reinterpret_cast<const char*>(cbor.data()),
                       cbor.size()));
}

}  // namespace cde
