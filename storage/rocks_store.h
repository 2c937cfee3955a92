// Private to storage/ and its tests: opening the RocksDB store over a given
// rocksdb::Env, so tests can inject faults (failed syncs, a full disk).
#ifndef CDE_STORAGE_ROCKS_STORE_H_
#define CDE_STORAGE_ROCKS_STORE_H_

#include <memory>

#include "storage/store.h"

namespace rocksdb {
class Env;
}

namespace cde {

// As OpenRocksStore, with every file operation going through `env` (which
// must outlive the store). nullptr means rocksdb::Env::Default().
Result<std::unique_ptr<Store>> OpenRocksStoreWithEnv(
    const StoreOptions& options, rocksdb::Env* env);

}  // namespace cde

#endif  // CDE_STORAGE_ROCKS_STORE_H_
