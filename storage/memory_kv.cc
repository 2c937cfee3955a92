// MemoryKv: column families as std::maps behind one reader-writer lock. For
// engine tests; nothing here is durable.
#include <array>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "storage/kv_engine.h"

namespace cde {
namespace {

using Table = std::map<std::string, std::string, std::less<>>;
using Tables = std::array<Table, kCfCount>;

class MemoryView final : public KvView {
 public:
  MemoryView(const Tables& tables, std::shared_mutex& mu)
      : tables_(tables), lock_(mu) {}

  Status Get(Cf cf, std::string_view key, std::string* value) override {
    const Table& t = tables_[static_cast<size_t>(cf)];
    auto it = t.find(key);
    if (it == t.end()) return Status::NotFound(Where(cf, key));
    *value = it->second;
    return Status::OK();
  }

  Status Scan(Cf cf, const ScanRange& range,
              const ScanVisitor& visit) override {
    const Table& t = tables_[static_cast<size_t>(cf)];
    auto begin = t.lower_bound(range.lower);
    auto end = range.upper.empty() ? t.end() : t.lower_bound(range.upper);
    if (!range.reverse) {
      for (auto it = begin; it != end; ++it) {
        if (!visit(it->first, it->second)) break;
      }
      return Status::OK();
    }
    for (auto it = end; it != begin;) {
      --it;
      if (!visit(it->first, it->second)) break;
    }
    return Status::OK();
  }

 private:
  const Tables& tables_;
  std::shared_lock<std::shared_mutex> lock_;
};

class MemoryKv final : public KvEngine {
 public:
  std::unique_ptr<KvView> NewView() override {
    return std::make_unique<MemoryView>(tables_, mu_);
  }

  Status Write(std::span<const Transition* const> batch, bool) override {
    std::unique_lock lock(mu_);
    for (const Transition* t : batch) {
      t->ForEach([this](Cf cf, bool is_delete, std::string_view key,
                        std::string_view value) {
        Table& table = tables_[static_cast<size_t>(cf)];
        if (is_delete) {
          if (auto it = table.find(key); it != table.end()) table.erase(it);
        } else {
          table.insert_or_assign(std::string(key), std::string(value));
        }
      });
    }
    return Status::OK();
  }

  // Nothing here is durable: an unsynced write is as visible as any other.
  Status WriteUnsynced(std::span<const Transition* const> batch) override {
    return Write(batch, /*sync=*/false);
  }
  Status SyncWritten() override { return Status::OK(); }

  Status Checkpoint(const std::string&) override {
    return Status::NotSupported("the memory store cannot be checkpointed");
  }
  Status CatchUp() override { return Status::OK(); }
  Status Close() override { return Status::OK(); }
  std::map<std::string, uint64_t> EngineStats() override { return {}; }

 private:
  std::shared_mutex mu_;
  Tables tables_;  // GUARDED_BY(mu_)
};

}  // namespace

std::unique_ptr<KvEngine> NewMemoryKv() { return std::make_unique<MemoryKv>(); }

}  // namespace cde
