// WAL progress: how far each write-ahead log has been handed to the OS and
// how far a finished sync covers it, and which WAL bytes a thread's write
// handed over. Private to storage/ (rocks_kv.cc) and its tests.
//
// Why: a synced RocksDB write appends its batch to the WAL, syncs the WAL,
// and only then inserts the batch into the memtables, so a group of many
// transitions pays its inserts after the disk has answered. RocksKv instead
// writes such a group unsynced and starts DB::SyncWAL on another thread as
// soon as the WAL flush on its own thread has handed the record to the OS
// (WalFlushWatch): the fdatasync and the inserts run side by side. SyncWAL
// syncs what was handed over before it began and is safe beside writes
// (RocksDB 7.8, DB::SyncWAL and WritableFileWriter::SyncWithoutFlush).
//
// Whether that sync covered the write is not left to the order of events:
// each WAL counts the bytes handed over and, at the start of every sync,
// notes them as covered once the sync succeeds; the watch keeps, for every
// WAL flushed on its thread, what that WAL had handed over at its last
// flush, and the write is covered once a sync covers all of them. Which
// flush was the record's own is not guessed: RocksDB flushes an older
// WAL's buffer as it switches to a new one (before the record) and flushes
// every WAL again as a synced write syncs them, oldest first (after it).
// A sync that missed the record leaves it uncovered, and the writer syncs
// again.
//
// A smaller group stays a synced RocksDB write, but the watch also hears the
// syncs on its thread: once one covers its record and every WAL's name is
// synced in the directory (WalDirProgress), its caller is told the group is
// durable (Store::WriteSynced) before RocksDB inserts it into the memtables.
#ifndef CDE_STORAGE_WAL_PROGRESS_H_
#define CDE_STORAGE_WAL_PROGRESS_H_

#include <rocksdb/file_system.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace cde {

struct WalFileProgress {
  std::atomic<uint64_t> handed{0};  // bytes appended, now in the OS's hands
  std::atomic<uint64_t> synced{0};  // of those, covered by a finished sync
};

// The WALs' directory: a WAL's own sync does not make its name durable, so
// RocksDB fsyncs the directory after the first synced write to each new
// WAL. Counts the WALs created (new, reused or renamed into place) and, of
// those, how many a finished directory fsync covers (those created before
// it began).
struct WalDirProgress {
  std::atomic<uint64_t> created{0};
  std::atomic<uint64_t> synced{0};

  bool AllSynced() const {
    return synced.load(std::memory_order_acquire) >=
           created.load(std::memory_order_acquire);
  }
};

// Wraps each WAL in `dir` to keep its WalFileProgress and report its
// flushes to the watch installed on the flushing thread.
class WalProgressFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  WalProgressFileSystem(std::shared_ptr<rocksdb::FileSystem> target,
                        std::string dir);

  const char* Name() const override { return "cde.WalProgressFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname,
                                    const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(
      const std::string& fname, const std::string& old_fname,
      const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* r,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name,
                                 const rocksdb::IOOptions& options,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override;

 private:
  // A WAL just created in dir_, wrapped.
  std::unique_ptr<rocksdb::FSWritableFile> Created(
      std::unique_ptr<rocksdb::FSWritableFile> file);

  const std::string dir_;
  const std::shared_ptr<WalDirProgress> dir_progress_;
};

// What one write handed to the WAL, seen from the thread that writes it.
// Install it on that thread (Installed) around the DB::Write: RocksDB
// writes a batch's WAL record on the writing thread when no other thread
// writes at the same time, which RocksKv's write lock ensures.
class WalFlushWatch {
 public:
  // `on_first_flush` runs at the first WAL flush seen, on the writing
  // thread, inside RocksDB's write: it must be quick and must not call
  // into the database. `on_durable`, if given, runs at most once, on the
  // same thread, inside the write, as soon as a sync made on this thread
  // leaves every WAL flushed on it covered (CoveredBySync) and every WAL's
  // name is synced in its directory: once a synced write's record is
  // durable, before RocksDB inserts the batch into the memtables. Same
  // rules.
  explicit WalFlushWatch(std::function<void()> on_first_flush,
                         std::function<void()> on_durable = nullptr);

  // Installs `watch` on the calling thread for this object's lifetime.
  class Installed {
   public:
    explicit Installed(WalFlushWatch* watch);
    ~Installed();
    Installed(const Installed&) = delete;
    Installed& operator=(const Installed&) = delete;

   private:
    WalFlushWatch* previous_;
  };

  bool saw_flush() const { return flushed_count_ > 0; }
  // Whether syncs that have finished cover every WAL byte handed over on
  // the watched thread.
  bool CoveredBySync() const;

  // Called by a WAL of WalProgressFileSystem after each flush.
  static void Flushed(const std::shared_ptr<WalFileProgress>& file);
  // Called by a WAL or the WALs' directory after each successful sync.
  static void Synced(const WalDirProgress& dir);

 private:
  // A WAL flushed on the watched thread and what it had handed over at
  // its last flush there.
  struct Flush {
    std::shared_ptr<WalFileProgress> file;
    uint64_t end = 0;
  };
  // A write flushes its own WAL and, as a synced write syncs them, each
  // older one RocksDB still keeps unsynced: two when the WAL switched
  // under the group's early writes. More than this is counted as never
  // covered (safe, and slower).
  static constexpr size_t kMaxFlushedWals = 4;

  void Saw(const std::shared_ptr<WalFileProgress>& file);

  std::function<void()> on_first_flush_;
  std::function<void()> on_durable_;  // emptied once it has run
  std::array<Flush, kMaxFlushedWals> flushed_;
  size_t flushed_count_ = 0;
  // More WALs flushed than flushed_ holds: never counted as covered (a
  // synced write is then told at its return, a large group synced again).
  bool overflowed_ = false;
};

}  // namespace cde

#endif  // CDE_STORAGE_WAL_PROGRESS_H_
