// KvEngine: the ordered key-value layer under StoreImpl. Private to storage/.
//
// StoreImpl (store_impl.cc) holds all record decoding and query logic once;
// a KvEngine only stores bytes per column family. RocksKv (rocks_kv.cc) and
// MemoryKv (memory_kv.cc) implement it, so the conformance suite that runs
// against both stores exercises the same query code over both byte layers.
#ifndef CDE_STORAGE_KV_ENGINE_H_
#define CDE_STORAGE_KV_ENGINE_H_

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "storage/keys.h"
#include "storage/records.h"
#include "storage/status.h"
#include "storage/transition.h"

namespace cde {

struct ScanRange {
  std::string lower;  // inclusive
  std::string upper;  // exclusive; empty = no upper bound
  bool reverse = false;
};

// Called per key in order; returns false to stop the scan.
using ScanVisitor =
    std::function<bool(std::string_view key, std::string_view value)>;

// A consistent point-in-time view. Do not write to the engine from the
// thread that holds a view (the memory engine would deadlock).
class KvView {
 public:
  virtual ~KvView() = default;
  // NotFound if absent.
  virtual Status Get(Cf cf, std::string_view key, std::string* value) = 0;
  virtual Status Scan(Cf cf, const ScanRange& range,
                      const ScanVisitor& visit) = 0;
};

class KvEngine {
 public:
  virtual ~KvEngine() = default;
  virtual std::unique_ptr<KvView> NewView() = 0;
  // Atomic across column families.
  virtual Status Write(std::span<const Transition* const> batch, bool sync) = 0;
  // Store::WriteSynced. An engine that cannot tell earlier just writes.
  virtual Status WriteSynced(std::span<const Transition* const> batch,
                             const std::function<void()>& /*on_durable*/) {
    return Write(batch, /*sync=*/true);
  }
  // Store::WriteUnsynced and Store::SyncWritten. An engine that is not
  // durable may make the write visible at once.
  virtual Status WriteUnsynced(std::span<const Transition* const> batch) = 0;
  virtual Status SyncWritten() = 0;
  virtual Status Checkpoint(const std::string& dir) = 0;
  virtual Status CatchUp() = 0;
  virtual Status Close() = 0;
  virtual std::map<std::string, uint64_t> EngineStats() = 0;
};

std::unique_ptr<KvEngine> NewMemoryKv();

// Wraps `kv` in the Store interface. `format_version_checked` is done by the
// opener; StoreImpl only serves reads and writes.
// `format_version`: what the opener found (kFormatVersion for a new store).
std::unique_ptr<class Store> NewStoreOverKv(
    std::unique_ptr<KvEngine> kv, uint32_t format_version = kFormatVersion);

// "cf 'sagas' key '01J...'": where a record lives, for error messages.
std::string Where(Cf cf, std::string_view key);

}  // namespace cde

#endif  // CDE_STORAGE_KV_ENGINE_H_
