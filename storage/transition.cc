#include "storage/transition.h"

namespace cde {

void Transition::Put(Cf cf, std::string key, std::string value) {
  byte_size_ += key.size() + value.size();
  mutations_.push_back({cf, false, std::move(key), std::move(value)});
}

void Transition::Delete(Cf cf, std::string key) {
  byte_size_ += key.size();
  mutations_.push_back({cf, true, std::move(key), {}});
}

void Transition::PutSaga(const SagaRecord& saga,
                         std::optional<SagaState> previous_state) {
  Put(Cf::kSagas, saga.id, EncodeSaga(saga));
  if (previous_state == saga.state) return;
  if (previous_state) {
    Delete(Cf::kIdxState, IdxStatePrefix(*previous_state) + saga.id);
    Delete(Cf::kIdxWorkflowState,
           IdxWorkflowStatePrefix(saga.workflow, *previous_state) + saga.id);
  } else {
    Put(Cf::kIdxWorkflow, IdxWorkflowPrefix(saga.workflow) + saga.id, {});
  }
  Put(Cf::kIdxState, IdxStatePrefix(saga.state) + saga.id, {});
  Put(Cf::kIdxWorkflowState,
      IdxWorkflowStatePrefix(saga.workflow, saga.state) + saga.id, {});
}

void Transition::AppendLog(const LogRecord& event) {
  Put(Cf::kLog, LogKey(event.saga_id, event.seq), EncodeLog(event));
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
  Delete(Cf::kDlq, std::string(saga_id));
}

void Transition::PutIdempotency(std::string_view key,
                                std::string_view saga_id) {
  Put(Cf::kIdempotency, std::string(key), EncodeIdempotency(saga_id));
}

void Transition::PutDefinition(const DefinitionRecord& definition) {
  Put(Cf::kDefinitions, DefinitionKey(definition.name, definition.version),
      EncodeDefinition(definition));
}

void Transition::PutFormatVersion(uint32_t version) {
  Put(Cf::kMeta, std::string(kFormatVersionKey), EncodeFormatVersion(version));
}

}  // namespace cde
