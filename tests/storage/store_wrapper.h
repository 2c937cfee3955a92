// StoreWrapper forwards every call to another Store, so a test overrides
// only what it needs (as LevelDB's EnvWrapper does for Env).
#ifndef CDE_TESTS_STORAGE_STORE_WRAPPER_H_
#define CDE_TESTS_STORAGE_STORE_WRAPPER_H_

#include "storage/store.h"

namespace cde::test {

class StoreWrapper : public Store {
 public:
  explicit StoreWrapper(Store* target) : target_(target) {}

  Status Write(std::span<const Transition* const> b, bool sync) override {
    return target_->Write(b, sync);
  }
  Status WriteUnsynced(std::span<const Transition* const> b) override {
    return target_->WriteUnsynced(b);
  }
  Status SyncWritten() override { return target_->SyncWritten(); }
  Status health() const override { return target_->health(); }
  Result<SagaRecord> GetSaga(const std::string& id) override {
    return target_->GetSaga(id);
  }
  Result<std::vector<ItemRecord>> ReadItems(
      const std::string& saga_id) override {
    return target_->ReadItems(saga_id);
  }
  Result<std::vector<ItemRecord>> ReadMapItems(const std::string& saga_id,
                                               const std::string& map_path,
                                               uint32_t from,
                                               size_t limit) override {
    return target_->ReadMapItems(saga_id, map_path, from, limit);
  }
  Result<std::vector<LogRecord>> ReadLog(const std::string& id, uint64_t from,
                                         size_t limit) override {
    return target_->ReadLog(id, from, limit);
  }
  Result<SagaPage> ListSagas(const SagaQuery& q) override {
    return target_->ListSagas(q);
  }
  Result<ActiveSagas> ListActiveSagas() override {
    return target_->ListActiveSagas();
  }
  Result<UnreadableSaga> DescribeUnreadable(const std::string& id,
                                            Status error) override {
    return target_->DescribeUnreadable(id, std::move(error));
  }
  Result<DlqRecord> GetDlq(const std::string& id) override {
    return target_->GetDlq(id);
  }
  Result<DlqPage> ListDlq(const DlqQuery& q) override {
    return target_->ListDlq(q);
  }
  Result<std::vector<TimerRecord>> DueTimers(int64_t t, size_t n) override {
    return target_->DueTimers(t, n);
  }
  Result<std::string> LookupIdempotency(const std::string& key) override {
    return target_->LookupIdempotency(key);
  }
  Result<DefinitionRecord> GetDefinition(const std::string& name,
                                         uint32_t version) override {
    return target_->GetDefinition(name, version);
  }
  Result<std::vector<DefinitionRecord>> ListDefinitions() override {
    return target_->ListDefinitions();
  }
  Result<StoreStats> Stats() override { return target_->Stats(); }
  Result<uint64_t> CountDlq() override { return target_->CountDlq(); }
  Status ScanRowsFrom(Cf cf, std::string_view from,
                      const RowVisitor& visit) override {
    return target_->ScanRowsFrom(cf, from, visit);
  }
  Status Checkpoint(const std::string& dir) override {
    return target_->Checkpoint(dir);
  }
  Status CatchUp() override { return target_->CatchUp(); }
  Status Close() override { return target_->Close(); }
  uint32_t format_version() const override { return target_->format_version(); }

 protected:
  Store* target_;
};

}  // namespace cde::test

#endif  // CDE_TESTS_STORAGE_STORE_WRAPPER_H_
