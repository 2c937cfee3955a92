// RocksKv: the KvEngine over RocksDB, one column family per Cf, and the
// opener that checks the on-disk format version.
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "storage/kv_engine.h"
#include "storage/rocks_store.h"
#include "storage/sync_thread.h"
#include "storage/wal_progress.h"
#include "storage/wal_spare.h"
#include "storage/wal_tail.h"

namespace cde {
namespace {

namespace fs = std::filesystem;

// A synced write of at least this many transitions syncs its WAL beside its
// memtable inserts (RocksKv::WriteSyncingBesideInserts). Below it the
// inserts take less than handing the sync to another thread costs: at 64
// waiters on a 0.5 ms disk, a group of about 10 at the end of the engine's
// gathering gained nothing, groups of 64 arriving at once 5-8 % more
// commits (docs/benchmarks.md).
constexpr size_t kSyncBesideInsertsFrom = 32;

Status FromRocks(const rocksdb::Status& s, std::string_view context) {
  if (s.ok()) return Status::OK();
  std::string msg(context);
  msg += ": ";
  msg += s.ToString();
  if (s.IsNoSpace()) return Status::NoSpace(msg);
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(msg);
  if (s.IsNotSupported()) return Status::NotSupported(msg);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return Status::Busy(msg);
  if (s.IsShutdownInProgress()) return Status::ShutdownInProgress(msg);
  return Status::IOError(msg);
}

rocksdb::Slice ToSlice(std::string_view v) { return {v.data(), v.size()}; }

// A RocksDB snapshot shared by the views that read it; released when the
// last of them is gone.
using SharedSnapshot = std::shared_ptr<const rocksdb::Snapshot>;

SharedSnapshot Share(rocksdb::DB* db, const rocksdb::Snapshot* snapshot) {
  return SharedSnapshot(
      snapshot, [db](const rocksdb::Snapshot* s) { db->ReleaseSnapshot(s); });
}

class RocksView final : public KvView {
 public:
  // `snapshot`: null reads the latest state (secondary and read-only
  // instances, which change only on CatchUp() and have no snapshots).
  RocksView(rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& h,
            SharedSnapshot snapshot)
      : db_(db), handles_(h), snapshot_(std::move(snapshot)) {
    read_options_.snapshot = snapshot_.get();
  }

  Status Get(Cf cf, std::string_view key, std::string* value) override {
    if (Handle(cf) == nullptr) {  // a family newer than a read-only store
      return Status::NotFound(Where(cf, key));
    }
    rocksdb::Status s =
        db_->Get(read_options_, Handle(cf), ToSlice(key), value);
    return FromRocks(s, Where(cf, key));
  }

  Status Scan(Cf cf, const ScanRange& range,
              const ScanVisitor& visit) override {
    if (Handle(cf) == nullptr) return Status::OK();  // as Get: empty
    rocksdb::ReadOptions ro = read_options_;
    rocksdb::Slice lower = ToSlice(range.lower);
    rocksdb::Slice upper = ToSlice(range.upper);
    ro.iterate_lower_bound = &lower;
    if (!range.upper.empty()) ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, Handle(cf)));
    if (range.reverse) {
      for (it->SeekToLast(); it->Valid(); it->Prev()) {
        if (!visit(it->key().ToStringView(), it->value().ToStringView())) break;
      }
    } else {
      for (it->Seek(lower); it->Valid(); it->Next()) {
        if (!visit(it->key().ToStringView(), it->value().ToStringView())) break;
      }
    }
    std::string context = "scanning cf '";
    context += CfName(cf);
    context += "'";
    return FromRocks(it->status(), context);
  }

 private:
  rocksdb::ColumnFamilyHandle* Handle(Cf cf) const {
    return handles_[static_cast<size_t>(cf)];
  }

  rocksdb::DB* db_;
  const std::vector<rocksdb::ColumnFamilyHandle*>& handles_;
  SharedSnapshot snapshot_;
  rocksdb::ReadOptions read_options_;
};

class RocksKv final : public KvEngine {
 public:
  RocksKv(rocksdb::DB* db, std::vector<rocksdb::ColumnFamilyHandle*> handles,
          std::vector<rocksdb::ColumnFamilyHandle*> foreign, OpenMode mode,
          std::string secondary_path, std::unique_ptr<rocksdb::Env> env,
          std::shared_ptr<WalSpareFileSystem> wal_spare, bool wal_progress)
      : db_(db),
        handles_(std::move(handles)),
        foreign_(std::move(foreign)),
        mode_(mode),
        secondary_path_(std::move(secondary_path)),
        env_(std::move(env)),
        wal_spare_(std::move(wal_spare)) {
    if (wal_progress) {
      wal_syncer_ = std::make_unique<SyncThread>(
          [this] { return FromRocks(db_->SyncWAL(), "syncing the WAL"); });
    }
  }

  ~RocksKv() override { Close().IgnoreError(); }

  std::unique_ptr<KvView> NewView() override {
    if (mode_ != OpenMode::kReadWrite) {
      return std::make_unique<RocksView>(db_, handles_, nullptr);
    }
    SharedSnapshot synced;
    {
      std::unique_lock lock(view_mu_);
      // Whoever was told of a durable write may read it: wait for it to be
      // readable (its own thread, inside the write, cannot).
      published_.wait(lock, [this] {
        return durable_unread_by_ == std::thread::id() ||
               durable_unread_by_ == std::this_thread::get_id();
      });
      synced = synced_view_;
    }
    if (synced == nullptr) synced = Share(db_, db_->GetSnapshot());
    return std::make_unique<RocksView>(db_, handles_, std::move(synced));
  }

  Status Write(std::span<const Transition* const> batch, bool sync) override {
    if (sync && wal_syncer_ != nullptr &&
        batch.size() >= kSyncBesideInsertsFrom) {
      return WriteSyncingBesideInserts(batch);
    }
    return WriteTelling(batch, sync, nullptr);
  }

  // Told at the sync, not after RocksDB's memtable inserts that follow it:
  // the callers of a small group go on while the inserts are made. (A
  // large group's inserts run beside its sync instead.)
  Status WriteSynced(std::span<const Transition* const> batch,
                     const std::function<void()>& on_durable) override {
    if (wal_syncer_ == nullptr || batch.size() >= kSyncBesideInsertsFrom) {
      return Write(batch, /*sync=*/true);
    }
    return WriteTelling(batch, /*sync=*/true, &on_durable);
  }

  // A write; synced, `on_durable` (if not null) runs once its WAL record
  // is durable (WalFlushWatch), and reads begun elsewhere after that wait
  // until the write has returned and its state is shown.
  Status WriteTelling(std::span<const Transition* const> batch, bool sync,
                      const std::function<void()>* on_durable) {
    rocksdb::WriteBatch wb(ReserveFor(batch));
    CDE_RETURN_IF_ERROR(Build(batch, &wb));
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    std::lock_guard write_lock(write_mu_);
    bool told = false;
    WalFlushWatch watch(nullptr, [&] {
      {
        std::lock_guard lock(view_mu_);
        durable_unread_by_ = std::this_thread::get_id();
      }
      told = true;
      durable_before_inserts_.fetch_add(1, std::memory_order_relaxed);
      (*on_durable)();
    });
    rocksdb::Status written;
    if (on_durable != nullptr && sync) {
      WalFlushWatch::Installed installed(&watch);
      written = db_->Write(wo, &wb);
    } else {
      written = db_->Write(wo, &wb);
    }
    Status s = FromRocks(written, "writing to the store");
    if (s.ok() && !sync) return s;
    std::lock_guard lock(view_mu_);
    // Readers follow the synced state once writes are pipelined; this write
    // has synced everything before it, so they may see all of it.
    if (s.ok() && synced_view_ != nullptr) {
      synced_view_ = Share(db_, db_->GetSnapshot());
      ReleaseWritten();
    }
    if (told) {
      durable_unread_by_ = std::thread::id();
      published_.notify_all();
    }
    return s;
  }

  // A synced write of a large group: RocksDB would insert its rows into the
  // memtables only once the WAL's sync has returned; here the WAL flush on
  // this thread starts the sync on wal_syncer_, and the inserts run beside
  // it (wal_progress.h). Readers are kept to the state before the write
  // until the sync covers it, as for WriteUnsynced; if the sync that ran
  // does not cover the write's WAL record, this thread syncs again.
  Status WriteSyncingBesideInserts(std::span<const Transition* const> batch) {
    rocksdb::WriteBatch wb(ReserveFor(batch));
    CDE_RETURN_IF_ERROR(Build(batch, &wb));
    std::lock_guard sync_lock(sync_mu_);
    std::lock_guard write_lock(write_mu_);
    {
      std::lock_guard lock(view_mu_);
      if (synced_view_ == nullptr)
        synced_view_ = Share(db_, db_->GetSnapshot());
    }
    WalFlushWatch watch([this] { wal_syncer_->Start(); });
    rocksdb::Status written;
    {
      WalFlushWatch::Installed installed(&watch);
      written = db_->Write(rocksdb::WriteOptions(), &wb);
    }
    const rocksdb::Snapshot* after =
        written.ok() ? db_->GetSnapshot() : nullptr;
    Status synced = wal_syncer_->Wait();
    if (!written.ok()) return FromRocks(written, "writing to the store");
    if (synced.ok() && watch.CoveredBySync()) {
      syncs_beside_inserts_.fetch_add(1, std::memory_order_relaxed);
    } else if (synced.ok()) {
      resyncs_.fetch_add(1, std::memory_order_relaxed);
      synced = FromRocks(db_->SyncWAL(), "syncing the WAL");
    }
    std::lock_guard lock(view_mu_);
    if (!synced.ok()) {
      db_->ReleaseSnapshot(after);
      return synced;
    }
    synced_view_ = Share(db_, after);
    ReleaseWritten();  // an earlier unsynced write: the sync covered it
    return Status::OK();
  }

  // The state after the write is kept as a snapshot, which SyncWritten
  // shows to readers once the WAL holding it is synced. Writing and taking
  // the snapshot under one lock keeps another write from falling between.
  Status WriteUnsynced(std::span<const Transition* const> batch) override {
    rocksdb::WriteBatch wb(ReserveFor(batch));
    CDE_RETURN_IF_ERROR(Build(batch, &wb));
    std::lock_guard write_lock(write_mu_);
    {
      // Readers follow the synced state from the first unsynced write on,
      // starting with the state before it.
      std::lock_guard lock(view_mu_);
      if (synced_view_ == nullptr)
        synced_view_ = Share(db_, db_->GetSnapshot());
    }
    CDE_RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &wb),
                                  "writing to the store"));
    const rocksdb::Snapshot* written = db_->GetSnapshot();
    std::lock_guard lock(view_mu_);
    ReleaseWritten();
    written_ = written;
    return Status::OK();
  }

  // RocksDB's SyncWAL syncs what earlier writes handed to the WAL file and
  // does not hold up the writes made meanwhile (DB::SyncWAL, RocksDB 7.8).
  // One sync at a time: a caller that finds nothing left to sync must know
  // that the sync which took its write has ended and shown it to readers.
  Status SyncWritten() override {
    std::lock_guard sync_lock(sync_mu_);
    const rocksdb::Snapshot* covered = nullptr;
    {
      std::lock_guard lock(view_mu_);
      std::swap(covered, written_);
    }
    // Nothing written since the last sync, or a synced Write covered it.
    if (covered == nullptr) return Status::OK();
    SharedSnapshot shared = Share(db_, covered);
    CDE_RETURN_IF_ERROR(FromRocks(db_->SyncWAL(), "syncing the WAL"));
    std::lock_guard lock(view_mu_);
    if (synced_view_ == nullptr ||
        synced_view_->GetSequenceNumber() < shared->GetSequenceNumber()) {
      synced_view_ = std::move(shared);
    }
    return Status::OK();
  }

  static size_t ReserveFor(std::span<const Transition* const> batch) {
    size_t bytes = 64;
    for (const Transition* t : batch) bytes += t->ByteSize();
    return bytes;
  }

  Status Build(std::span<const Transition* const> batch,
               rocksdb::WriteBatch* wb) const {
    if (mode_ != OpenMode::kReadWrite) {
      return Status::NotSupported("the store was opened read-only");
    }
    rocksdb::Status s;
    for (const Transition* t : batch) {
      t->ForEach([&](Cf cf, bool is_delete, std::string_view key,
                     std::string_view value) {
        if (!s.ok()) return;
        auto* h = handles_[static_cast<size_t>(cf)];
        s = is_delete ? wb->Delete(h, ToSlice(key))
                      : wb->Put(h, ToSlice(key), ToSlice(value));
      });
    }
    return FromRocks(s, "building write batch");
  }

  // Under view_mu_.
  void ReleaseWritten() {
    if (written_ != nullptr) db_->ReleaseSnapshot(written_);
    written_ = nullptr;
  }

  Status Checkpoint(const std::string& dir) override {
    rocksdb::Checkpoint* raw = nullptr;
    CDE_RETURN_IF_ERROR(
        FromRocks(rocksdb::Checkpoint::Create(db_, &raw), "checkpoint"));
    std::unique_ptr<rocksdb::Checkpoint> cp(raw);
    // log_size_for_flush = 0: always flush, so the copy needs no WAL replay.
    return FromRocks(cp->CreateCheckpoint(dir, /*log_size_for_flush=*/0),
                     "checkpoint to " + dir);
  }

  Status CatchUp() override {
    if (mode_ != OpenMode::kSecondary) return Status::OK();
    return FromRocks(db_->TryCatchUpWithPrimary(), "catching up with primary");
  }

  Status Close() override {
    if (db_ == nullptr) return Status::OK();
    wal_syncer_.reset();  // no write is under way (StoreImpl)
    {
      std::lock_guard lock(view_mu_);  // no view is left (StoreImpl)
      ReleaseWritten();
      synced_view_.reset();
    }
    Status result;
    if (mode_ == OpenMode::kReadWrite) {
      rocksdb::FlushOptions fo;
      fo.wait = true;
      result = FromRocks(db_->Flush(fo, handles_), "flushing memtables");
    }
    for (auto* h : handles_) {
      if (h != nullptr)
        db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    }
    for (auto* h : foreign_)
      db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    handles_.clear();
    foreign_.clear();
    rocksdb::Status cs = db_->Close();
    if (result.ok()) result = FromRocks(cs, "closing the store");
    delete db_;
    db_ = nullptr;
    wal_spare_.reset();
    env_.reset();  // after the database: it writes through it until closed
    if (!secondary_path_.empty()) {
      std::error_code ec;
      fs::remove_all(secondary_path_, ec);
    }
    return result;
  }

  std::map<std::string, uint64_t> EngineStats() override {
    std::map<std::string, uint64_t> out;
    auto sum = [&](const char* property, const char* name) {
      uint64_t total = 0;
      for (auto* h : handles_) {
        uint64_t v = 0;
        if (h != nullptr && db_->GetIntProperty(h, property, &v)) total += v;
      }
      out[name] = total;
    };
    sum("rocksdb.estimate-live-data-size", "live_data_bytes");
    sum("rocksdb.total-sst-files-size", "sst_files_bytes");
    sum("rocksdb.cur-size-all-mem-tables", "memtable_bytes");
    std::vector<rocksdb::LiveFileMetaData> files;
    db_->GetLiveFilesMetaData(&files);
    out["sst_files"] = files.size();
    if (mode_ == OpenMode::kReadWrite) {
      rocksdb::VectorLogPtr wals;
      if (db_->GetSortedWalFiles(wals).ok()) {
        uint64_t wal = 0;
        for (auto& f : wals) wal += f->SizeFileBytes();
        out["wal_bytes"] = wal;
      }
    }
    if (wal_syncer_ != nullptr) {
      out["wal_syncs_beside_inserts"] = syncs_beside_inserts_.load();
      out["wal_resyncs"] = resyncs_.load();
      out["writes_durable_before_inserts"] = durable_before_inserts_.load();
    }
    if (wal_spare_ != nullptr) {
      out["wal_spare_ready"] = wal_spare_->spare_ready() ? 1 : 0;
      out["wal_files_from_spare"] = wal_spare_->wals_from_spares();
    }
    return out;
  }

 private:
  rocksdb::DB* db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // indexed by Cf
  std::vector<rocksdb::ColumnFamilyHandle*> foreign_;  // CFs this build lacks
  OpenMode mode_;
  std::string secondary_path_;  // removed on close
  // Over wal_progress.h (itself over wal_spare.h when a spare is kept) when
  // writing, over wal_tail.h when reading; null: the caller's env.
  std::unique_ptr<rocksdb::Env> env_;
  std::shared_ptr<WalSpareFileSystem> wal_spare_;  // in env_; null: none
  // Syncs the WAL beside a large group's memtable inserts; null unless
  // env_ keeps WAL progress (wal_progress.h), i.e. when writing.
  std::unique_ptr<SyncThread> wal_syncer_;
  std::atomic<uint64_t> syncs_beside_inserts_{0};
  std::atomic<uint64_t> resyncs_{0};  // the sync beside missed the record
  std::atomic<uint64_t> durable_before_inserts_{0};  // told at the sync

  // Pipelined writes (WriteUnsynced, SyncWritten): readers see the state as
  // of the last synced write, never one a crash could still take back.
  std::mutex write_mu_;  // a write and the snapshot taken after it
  std::mutex sync_mu_;   // held through SyncWritten
  std::mutex view_mu_;
  // The thread of a synced write whose callers were told it is durable
  // before it could be read (WriteTelling); readers elsewhere wait on
  // published_ meanwhile. GUARDED_BY(view_mu_)
  std::thread::id durable_unread_by_;
  std::condition_variable published_;
  // What readers see; null until the first unsynced write, and readers
  // then take a snapshot of the latest state. GUARDED_BY(view_mu_)
  SharedSnapshot synced_view_;
  // The state after the last unsynced write that no sync has covered yet.
  const rocksdb::Snapshot* written_ = nullptr;  // GUARDED_BY(view_mu_)
};

rocksdb::Options MakeOptions(rocksdb::Env* env, OpenMode mode) {
  rocksdb::Options o;
  o.create_if_missing = mode == OpenMode::kReadWrite;
  o.create_missing_column_families = mode == OpenMode::kReadWrite;
  o.IncreaseParallelism(2);
  o.keep_log_file_num = 5;
  o.max_total_wal_size = 256 << 20;
  if (mode == OpenMode::kSecondary) o.max_open_files = -1;  // required
  if (env != nullptr) o.env = env;
  return o;
}

// The workflow and state of an idx_workflow_state key: up to and including
// its first 0x00 and one byte more. Keys without the separator, or too
// short, are outside the domain and inserted without a hint.
class WorkflowStatePrefix final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "cde.WorkflowStatePrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return {key.data(), PrefixSize(key)};
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return PrefixSize(key) != 0;
  }

 private:
  // 0 when `key` has no such prefix.
  size_t PrefixSize(const rocksdb::Slice& key) const {
    const void* sep = std::memchr(key.data(), 0, key.size());
    if (sep == nullptr) return 0;
    const size_t size = static_cast<const char*>(sep) - key.data() + 2;
    return size <= key.size() ? size : 0;
  }
};

// Memtable insert hints: the skiplist starts its search where the last row
// with the same prefix went, and recomputes only the levels at which that
// place no longer brackets the new row. For snapshots and log rows the
// prefix is empty, one hint for the family: the rows of the sagas in
// flight all go near its end, around the newest sagas' ids. A hint per
// saga (part 2) went stale between a saga's rows, as the sagas started
// meanwhile were inserted past it, and cost a hash-map entry per saga;
// one per family took 13 % off the commit writer's instructions per
// transition (docs/benchmarks.md, issue 18, part 22). Timers go by due
// time; the state index by workflow and state (the newest saga of each).
void TuneColumnFamily(const std::string& name,
                      rocksdb::ColumnFamilyOptions* cfo) {
  const rocksdb::SliceTransform* hint = nullptr;
  if (name == CfName(Cf::kSagas) || name == CfName(Cf::kLog)) {
    hint = rocksdb::NewCappedPrefixTransform(0);
  } else if (name == CfName(Cf::kTimers)) {
    hint = rocksdb::NewCappedPrefixTransform(8);  // the due time
  } else if (name == CfName(Cf::kIdxWorkflowState)) {
    hint = new WorkflowStatePrefix();
  } else {
    return;
  }
  cfo->memtable_insert_with_hint_prefix_extractor.reset(hint);
}

// Reads the format version record; nullopt when there is none. A store
// newer than this build is refused here, before anything else is checked: it
// may lack nothing we know of and still be unreadable.
Result<std::optional<uint32_t>> ReadFormatVersion(
    rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta,
    const std::string& where) {
  if (meta == nullptr) return std::optional<uint32_t>();
  std::string value;
  rocksdb::Status s =
      db->Get(rocksdb::ReadOptions(), meta, kFormatVersionKey, &value);
  if (s.IsNotFound()) return std::optional<uint32_t>();
  CDE_RETURN_IF_ERROR(FromRocks(s, where));
  auto version =
      DecodeFormatVersion(value, Where(Cf::kMeta, kFormatVersionKey));
  CDE_RETURN_IF_ERROR(version.status().WithContext(where));
  if (*version > kFormatVersion) {
    return Status::NotSupported(
        where + ": store format version " + std::to_string(*version) +
        " is newer than this build, which reads format version " +
        std::to_string(kFormatVersion) + " and older");
  }
  return std::optional<uint32_t>(*version);
}

// The version an interrupted upgrade started from; nullopt when none runs.
Result<std::optional<uint32_t>> ReadFormatUpgrade(
    rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta,
    const std::string& where) {
  std::string value;
  rocksdb::Status s =
      db->Get(rocksdb::ReadOptions(), meta, kFormatUpgradeKey, &value);
  if (s.IsNotFound()) return std::optional<uint32_t>();
  CDE_RETURN_IF_ERROR(FromRocks(s, where));
  auto from = DecodeFormatVersion(value, Where(Cf::kMeta, kFormatUpgradeKey));
  CDE_RETURN_IF_ERROR(from.status().WithContext(where));
  return std::optional<uint32_t>(*from);
}

bool IsEmpty(rocksdb::DB* db,
             const std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
  for (auto* h : handles) {
    if (h == nullptr) continue;
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions(), h));
    it->SeekToFirst();
    if (it->Valid()) return false;
  }
  return true;
}

std::string MakeSecondaryPath() {
  std::string templ = (fs::temp_directory_path() / "cde-secondary-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) return {};
  return templ;
}

// Whether the directory `path` is empty but for a WAL spare (left by an
// open that failed after writing one).
bool HoldsNothingButWalSpares(const std::string& path) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    if (name != WalSpareFileSystem::kSpareName &&
        name != WalSpareFileSystem::kPartialName) {
      return false;
    }
  }
  return !ec;
}

}  // namespace

Result<std::unique_ptr<Store>> OpenRocksStoreWithEnv(
    const StoreOptions& options, rocksdb::Env* env) {
  const std::string& path = options.path;
  const std::string where = "opening store at " + path;
  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  const bool has_current = fs::exists(fs::path(path) / "CURRENT", ec);
  if (exists && !fs::is_directory(path, ec)) {
    return Status::InvalidArgument(where + ": not a directory");
  }
  if (options.mode != OpenMode::kReadWrite && !has_current) {
    return Status::InvalidArgument(where +
                                   ": no store there (no RocksDB "
                                   "CURRENT file)");
  }
  if (exists && !has_current && !HoldsNothingButWalSpares(path)) {
    return Status::InvalidArgument(
        where +
        ": the directory is not empty and holds no store; refusing "
        "to create one among other files");
  }

  rocksdb::Options ro = MakeOptions(env, options.mode);
  if (options.memtable_bytes > 0) {
    ro.write_buffer_size = static_cast<size_t>(options.memtable_bytes);
  }
  // The writer keeps a WAL spare (wal_spare.h); readers read WALs only as
  // far as their last whole record (wal_tail.h), since one may be a spare.
  std::unique_ptr<rocksdb::Env> own_env;
  std::shared_ptr<WalSpareFileSystem> wal_spare;
  const std::string& dir = path;
  std::shared_ptr<rocksdb::FileSystem> base =
      env != nullptr ? env->GetFileSystem() : rocksdb::FileSystem::Default();
  if (options.mode != OpenMode::kReadWrite) {
    own_env = rocksdb::NewCompositeEnv(
        std::make_shared<WalTailFileSystem>(base, dir));
    ro.env = own_env.get();
  } else if (options.wal_spare_bytes > 0) {
    wal_spare = std::make_shared<WalSpareFileSystem>(base, dir,
                                                     options.wal_spare_bytes);
    if (options.wal_spare_at_open) {
      fs::create_directories(path, ec);
      rocksdb::IOStatus prepared = wal_spare->PrepareNow();
      if (!prepared.ok()) {
        return FromRocks(prepared, where + ": writing the WAL spare");
      }
    }
  }
  // Written, every WAL keeps its progress (wal_progress.h), over the spare
  // when there is one.
  const bool wal_progress = options.mode == OpenMode::kReadWrite;
  if (wal_progress) {
    std::shared_ptr<rocksdb::FileSystem> under = base;
    if (wal_spare != nullptr) under = wal_spare;
    own_env = rocksdb::NewCompositeEnv(
        std::make_shared<WalProgressFileSystem>(under, dir));
    ro.env = own_env.get();
  }
  std::vector<std::string> names;
  if (has_current) {
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(ro, path, &names);
    if (!s.ok()) return FromRocks(s, where);
  }
  for (Cf cf : kAllCfs) {
    const std::string name(CfName(cf));
    if (std::find(names.begin(), names.end(), name) == names.end() &&
        options.mode == OpenMode::kReadWrite) {
      names.push_back(name);
    }
  }
  if (std::find(names.begin(), names.end(),
                rocksdb::kDefaultColumnFamilyName) == names.end()) {
    names.push_back(rocksdb::kDefaultColumnFamilyName);
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names) {
    rocksdb::ColumnFamilyOptions cfo(ro);
    TuneColumnFamily(n, &cfo);
    descriptors.emplace_back(n, cfo);
  }

  std::vector<rocksdb::ColumnFamilyHandle*> opened;
  rocksdb::DB* db = nullptr;
  std::string secondary_path;
  rocksdb::Status s;
  switch (options.mode) {
    case OpenMode::kReadWrite:
      s = rocksdb::DB::Open(ro, path, descriptors, &opened, &db);
      break;
    case OpenMode::kReadOnly:
      s = rocksdb::DB::OpenForReadOnly(ro, path, descriptors, &opened, &db);
      break;
    case OpenMode::kSecondary:
      secondary_path = options.secondary_path.empty() ? MakeSecondaryPath()
                                                      : options.secondary_path;
      if (secondary_path.empty()) {
        return Status::IOError(where + ": cannot create a secondary directory");
      }
      s = rocksdb::DB::OpenAsSecondary(ro, path, secondary_path, descriptors,
                                       &opened, &db);
      break;
  }
  if (!s.ok()) {
    if (options.secondary_path.empty() && !secondary_path.empty()) {
      fs::remove_all(secondary_path, ec);
    }
    return FromRocks(s, where);
  }

  // Sort handles into Cf order; keep the rest to destroy on close.
  std::vector<rocksdb::ColumnFamilyHandle*> handles(kCfCount, nullptr);
  std::vector<rocksdb::ColumnFamilyHandle*> foreign;
  for (auto* h : opened) {
    bool ours = false;
    for (Cf cf : kAllCfs) {
      if (h->GetName() == CfName(cf)) {
        handles[static_cast<size_t>(cf)] = h;
        ours = true;
      }
    }
    if (!ours) foreign.push_back(h);
  }
  auto* meta = handles[static_cast<size_t>(Cf::kMeta)];
  auto kv = std::make_unique<RocksKv>(db, handles, foreign, options.mode,
                                      secondary_path, std::move(own_env),
                                      std::move(wal_spare), wal_progress);
  auto version = ReadFormatVersion(db, meta, where);
  CDE_RETURN_IF_ERROR(version.status());
  // Every family of this build, but those a store of an older format has
  // yet to get (read-only users open such stores as they are).
  bool complete = true;
  for (Cf cf : kAllCfs) {
    const bool newer = version->has_value() && FormatOfCf(cf) > **version;
    if (handles[static_cast<size_t>(cf)] == nullptr && !newer) {
      complete = false;
    }
  }
  // A store whose creation was interrupted (killed before its format version
  // was written) has our column families and no rows: treat it as fresh.
  const bool fresh = !has_current || (complete && IsEmpty(db, handles));
  if (!complete || (!version->has_value() && !fresh)) {
    return Status::InvalidArgument(
        where + ": a RocksDB database but not a CDE store (" +
        (complete ? "no format version record" : "column families missing") +
        ")");
  }
  if (!version->has_value()) {
    if (options.mode != OpenMode::kReadWrite) {
      return Status::InvalidArgument(where +
                                     ": an empty store that was never "
                                     "opened for writing");
    }
    // A store created just now: record the format before anything else.
    Transition t;
    t.PutFormatVersion(kFormatVersion);
    const Transition* batch[] = {&t};
    CDE_RETURN_IF_ERROR(kv->Write(batch, /*sync=*/true).WithContext(where));
    return NewStoreOverKv(std::move(kv));
  }
  auto upgrading = ReadFormatUpgrade(db, meta, where);
  CDE_RETURN_IF_ERROR(upgrading.status());
  return NewStoreOverKv(std::move(kv), upgrading->value_or(**version));
}

Result<std::unique_ptr<Store>> OpenRocksStore(const StoreOptions& options) {
  return OpenRocksStoreWithEnv(options, nullptr);
}

}  // namespace cde
