// Store: the saga store, the only way the engine reaches durable state.
//
// Two implementations share this interface and one conformance suite:
// OpenRocksStore (RocksDB under a data dir; what the server runs) and
// NewMemoryStore (a process-local map, for fast engine tests). RocksDB types
// never appear here.
//
// Thread safety: every method may be called from any thread. Reads see a
// consistent point in time per call. Writes normally arrive through the
// CommitWriter (commit_writer.h), which groups them.
//
// Errors: a write that fails leaves the store refusing every later write
// with the same Status (health() turns non-OK) until it is reopened, because
// after a failed synced write nobody knows what reached the disk.
#ifndef CDE_STORAGE_STORE_H_
#define CDE_STORAGE_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/records.h"
#include "storage/status.h"
#include "storage/transition.h"

namespace cde {

enum class OpenMode {
  kReadWrite,  // the single writer (the server, or cde-admin offline)
  kReadOnly,   // a frozen view; fails if the data dir is not a store
  kSecondary,  // follows a running writer; CatchUp() reads its latest writes
};

struct StoreOptions {
  std::string path = "./cde-data";
  OpenMode mode = OpenMode::kReadWrite;
  // kSecondary only: a private directory for the secondary's own files.
  // Default: a fresh directory under the system temp dir.
  std::string secondary_path;
  // kReadWrite only: the size of the file of zeros kept beside the store for
  // its next write-ahead log, so that the WAL's synced writes land on blocks
  // the file already has (cheaper to fdatasync); 0 = none, every WAL grows
  // as it is written. Written once the WAL in use has taken 1 MiB.
  uint64_t wal_spare_bytes = uint64_t{32} << 20;
  // Write the spare during Open when there is none, so that the WAL Open
  // starts is one already (benchmarks; otherwise a new store's first WAL
  // grows as it is written).
  bool wal_spare_at_open = false;
  // kReadWrite only: the size of each column family's memtable (RocksDB's
  // write_buffer_size); 0: RocksDB's own (64 MiB). Tests make it small so
  // that memtables, and with them the WAL files, switch often.
  uint64_t memtable_bytes = 0;
};

struct SagaQuery {
  std::optional<SagaState> state;
  std::optional<std::string> workflow;
  std::optional<int64_t> since_ms;  // created at or after
  std::optional<int64_t> until_ms;  // created at or before
  size_t limit = 100;
  std::string cursor;  // next_cursor of the previous page; empty = first page
};

struct SagaPage {
  std::vector<SagaRecord> sagas;  // newest first
  std::string next_cursor;        // empty when this is the last page
  // Sagas in this page's range whose rows do not decode (Corruption: the
  // snapshot, a patch after it, an index row without a snapshot), passed
  // over so that one broken saga does not hide the others. Not counted
  // against the limit.
  struct Unreadable {
    std::string id;
    Status error;
  };
  std::vector<Unreadable> unreadable;
};

// A saga the state index lists as active whose rows do not read: its
// snapshot is missing or does not decode, or a row of its log after the
// snapshot does not (format 8's patches). What the index row and the log's
// keys still say of it, so that the engine can set it aside (park it) and
// start, rather than refuse to start over one saga.
struct UnreadableSaga {
  std::string id;
  std::string workflow;                   // from its index row
  SagaState state = SagaState::kRunning;  // likewise
  Status error;          // Corruption naming the row that does not read
  std::string snapshot;  // the snapshot row as stored; "" when there is none
  // The snapshot without the log rows after it, when that much decodes.
  std::optional<SagaRecord> head;
  uint64_t last_seq = 0;  // the newest seq among its log's keys; 0: none
};

struct ActiveSagas {
  std::vector<SagaRecord> sagas;
  std::vector<UnreadableSaga> unreadable;  // in id order
};

struct DlqQuery {
  std::optional<std::string> workflow;
  size_t limit = 100;
  std::string cursor;
};

struct DlqPage {
  std::vector<DlqRecord> entries;  // oldest saga first
  std::string next_cursor;
};

struct StoreStats {
  std::map<std::string, uint64_t> sagas_by_state;  // state name -> count
  uint64_t dlq_entries = 0;
  uint64_t timers = 0;
  uint64_t definitions = 0;
  // Engine figures: live data size, SST files, WAL size (RocksDB only).
  std::map<std::string, uint64_t> engine;
};

class Store {
 public:
  Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  virtual ~Store() = default;

  // Applies every transition of `batch` in one atomic write. With `sync`, the
  // write is on stable storage when this returns OK.
  virtual Status Write(std::span<const Transition* const> batch, bool sync) = 0;
  // A synced Write that may tell its caller the batch is durable before it
  // returns: `on_durable` runs at most once, on the calling thread, inside
  // the write, once an fdatasync covers the batch (and everything before
  // it) and the WAL's name is synced in its directory; what the write does
  // after that (RocksDB's memtable inserts) cannot lose it. Like the
  // writer's other callbacks it must be quick and must not call into the
  // store. Reads see the batch once the write returns: a read begun on
  // another thread after `on_durable` has run waits for that. A Write that
  // fails after `on_durable` ran has still made the batch durable (the
  // store refuses later writes as after any failed write). The default
  // never calls it.
  virtual Status WriteSynced(std::span<const Transition* const> batch,
                             const std::function<void()>& /*on_durable*/) {
    return Write(batch, /*sync=*/true);
  }
  // Writes made before their sync, for a writer that overlaps a group's
  // fdatasync with the next group's write (CommitWriterOptions::pipeline)
  // or writes a group piece by piece as it gathers (CommitWriter).
  // WriteUnsynced applies `batch` atomically without syncing it, and no read
  // of this store sees it yet; SyncWritten makes every write that returned
  // before it was called durable and then visible to reads. A failed
  // SyncWritten makes the store refuse later writes and syncs, as a failed
  // Write does. A synced Write also makes every write that returned before
  // it durable (RocksDB syncs every WAL file not yet synced, those of
  // earlier memtables included) and visible; once a store has taken an
  // unsynced write, reads see a Write without `sync` when a later sync
  // covers it. The defaults suit a store without a pipeline: the write is
  // synced at once.
  virtual Status WriteUnsynced(std::span<const Transition* const> batch) {
    return Write(batch, /*sync=*/true);
  }
  virtual Status SyncWritten() { return health(); }
  // OK, or the error that made the store refuse writes.
  virtual Status health() const = 0;

  // NotFound if there is no such saga.
  virtual Result<SagaRecord> GetSaga(const std::string& saga_id) = 0;
  // Events with seq >= from_seq, in seq order, at most `limit`.
  virtual Result<std::vector<LogRecord>> ReadLog(const std::string& saga_id,
                                                 uint64_t from_seq,
                                                 size_t limit) = 0;
  // The item rows of a saga's map steps, by map path then index.
  virtual Result<std::vector<ItemRecord>> ReadItems(
      const std::string& saga_id) = 0;
  // The item rows of the map step at `map_path` (an instance path) from
  // index `from` on, in index order, at most `limit`: a page of a large
  // map costs the page, not the map.
  virtual Result<std::vector<ItemRecord>> ReadMapItems(
      const std::string& saga_id, const std::string& map_path, uint32_t from,
      size_t limit) = 0;
  virtual Result<SagaPage> ListSagas(const SagaQuery& query) = 0;
  // Snapshots of every running, compensating or cancelling saga: what the
  // engine resumes after a restart. Reads the state index, and the log only
  // after patchable snapshots. A saga whose rows do not decode is listed
  // apart (`unreadable`), with the Corruption; the call fails only when the
  // index itself cannot be read, or on an I/O error.
  virtual Result<ActiveSagas> ListActiveSagas() = 0;
  // Saga `saga_id`, whose rows failed to read with `error`, as
  // ListActiveSagas lists such a saga; NotFound when no active state index
  // row names it (it has ended, or was parked).
  virtual Result<UnreadableSaga> DescribeUnreadable(const std::string& saga_id,
                                                    Status error) = 0;

  virtual Result<DlqRecord> GetDlq(const std::string& saga_id) = 0;
  virtual Result<DlqPage> ListDlq(const DlqQuery& query) = 0;

  // Timers due at or before `up_to_ms`, earliest first, at most `limit`.
  virtual Result<std::vector<TimerRecord>> DueTimers(int64_t up_to_ms,
                                                     size_t limit) = 0;
  // The saga started under idempotency key `key`; NotFound if none.
  virtual Result<std::string> LookupIdempotency(const std::string& key) = 0;

  virtual Result<DefinitionRecord> GetDefinition(const std::string& name,
                                                 uint32_t version) = 0;
  // Every version of every definition, by name then version.
  virtual Result<std::vector<DefinitionRecord>> ListDefinitions() = 0;

  // Counts every saga by state: a scan of the whole state index.
  virtual Result<StoreStats> Stats() = 0;
  // The number of DLQ entries: a scan of the DLQ alone.
  virtual Result<uint64_t> CountDlq() = 0;

  // Every row of column family `cf` (from key `from` on, when given),
  // undecoded, in key order; `visit` returns false to stop. For tools that
  // check the store itself (cde-admin verify), which must see the rows the
  // typed reads refuse or skip. One call reads one consistent view; read-only
  // and secondary stores change only on CatchUp(), so calls between two
  // catch-ups agree with each other. NotSupported unless the implementation
  // provides it.
  using RowVisitor =
      std::function<bool(std::string_view key, std::string_view value)>;
  Status ScanRows(Cf cf, const RowVisitor& visit) {
    return ScanRowsFrom(cf, "", visit);
  }
  virtual Status ScanRowsFrom(Cf cf, std::string_view from,
                              const RowVisitor& visit) {
    (void)cf;
    (void)from;
    (void)visit;
    return Status::NotSupported("this store cannot list raw rows");
  }

  // Writes a consistent copy of the store to `dir` (which must not exist)
  // that OpenRocksStore can open. NotSupported for the memory store.
  virtual Status Checkpoint(const std::string& dir) = 0;
  // kSecondary: catch up with the primary's latest writes. Otherwise a no-op.
  virtual Status CatchUp() = 0;
  // Flushes memtables so the next open replays no WAL, then closes. Later
  // calls fail with ShutdownInProgress.
  virtual Status Close() = 0;
  // The format the store's records are in, as opened: kFormatVersion, or an
  // older version whose upgrade is the engine's to do (and which a
  // read-only user reads as it is). An upgrade that was interrupted reports
  // the version it upgrades from.
  virtual uint32_t format_version() const = 0;
};

// Opens (or, in kReadWrite mode, creates) the RocksDB store at options.path.
// Fails with NotSupported if the store's format version is newer than this
// build's, and with InvalidArgument if the directory is not a store.
Result<std::unique_ptr<Store>> OpenRocksStore(const StoreOptions& options);

std::unique_ptr<Store> NewMemoryStore();

}  // namespace cde

#endif  // CDE_STORAGE_STORE_H_
