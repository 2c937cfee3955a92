// StoreImpl: record decoding and queries over any KvEngine.
#include <algorithm>
#include <array>
#include <atomic>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "storage/kv_engine.h"
#include "storage/saga_id.h"
#include "storage/store.h"

namespace cde {

std::string Where(Cf cf, std::string_view key) {
  std::string out = "cf '";
  out += CfName(cf);
  out += "' key '";
  out += PrintableKey(key);
  out += "'";
  return out;
}

namespace {

constexpr std::array<SagaState, 3> kActiveStates = {
    SagaState::kRunning, SagaState::kCompensating, SagaState::kCancelling};

// Ids read from an index prefix per scan: a merge of several prefixes reads
// each a chunk at a time, so a page costs about `limit` keys per prefix at
// most, and memory stays bounded whatever the limit.
constexpr size_t kIndexChunk = 256;

// One prefix of idx_workflow_state (a workflow and a state), its saga ids
// newest first within [lower, upper), read a chunk at a time.
class IndexStream {
 public:
  IndexStream(std::string prefix, std::string lower, std::string upper)
      : prefix_(std::move(prefix)),
        lower_(std::move(lower)),
        upper_(std::move(upper)) {}

  // Reads the next chunk when the one read is used up. After it, empty()
  // means the prefix has no more ids in range.
  Status Fill(KvView& view, size_t chunk) {
    if (next_ < ids_.size() || done_) return Status::OK();
    ids_.clear();
    next_ = 0;
    Status s = view.Scan(Cf::kIdxWorkflowState, {lower_, upper_, true},
                         [&](auto key, auto) {
                           ids_.emplace_back(key.substr(prefix_.size()));
                           return ids_.size() < chunk;
                         });
    CDE_RETURN_IF_ERROR(s);
    if (ids_.size() < chunk) {
      done_ = true;
    } else {
      upper_ = prefix_ + ids_.back();  // the next chunk is older
    }
    return Status::OK();
  }
  bool empty() const { return next_ == ids_.size(); }
  const std::string& front() const { return ids_[next_]; }
  std::string front_key() const { return prefix_ + front(); }
  void Pop() { ++next_; }

 private:
  const std::string prefix_;
  const std::string lower_;
  std::string upper_;  // exclusive; empty = unbounded
  std::vector<std::string> ids_;
  size_t next_ = 0;
  bool done_ = false;
};

// The exclusive upper bound of a newest-first scan: the tightest of the
// prefix end, the `until` time and the cursor.
std::string UpperBound(const SagaQuery& q, const std::string& prefix) {
  std::string upper = PrefixEnd(prefix);  // empty = unbounded
  auto tighten = [&upper](std::string candidate) {
    if (upper.empty() || candidate < upper) upper = std::move(candidate);
  };
  if (q.until_ms) tighten(prefix + SagaIdFloor(*q.until_ms + 1));
  if (!q.cursor.empty()) tighten(prefix + q.cursor);
  return upper;
}

class StoreImpl final : public Store {
 public:
  StoreImpl(std::unique_ptr<KvEngine> kv, uint32_t format_version)
      : kv_(std::move(kv)), format_version_(format_version) {}
  ~StoreImpl() override { Close().IgnoreError(); }

  Status Write(std::span<const Transition* const> batch, bool sync) override {
    return Refusing([&] { return kv_->Write(batch, sync); });
  }
  Status WriteSynced(std::span<const Transition* const> batch,
                     const std::function<void()>& on_durable) override {
    return Refusing([&] { return kv_->WriteSynced(batch, on_durable); });
  }
  Status WriteUnsynced(std::span<const Transition* const> batch) override {
    return Refusing([&] { return kv_->WriteUnsynced(batch); });
  }
  Status SyncWritten() override {
    return Refusing([&] { return kv_->SyncWritten(); });
  }

  Status health() const override {
    std::lock_guard lock(mu_);
    return bg_error_;
  }

  Result<SagaRecord> GetSaga(const std::string& saga_id) override {
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    return GetSagaIn(*view, saga_id);
  }

  Result<std::vector<LogRecord>> ReadLog(const std::string& saga_id,
                                         uint64_t from_seq,
                                         size_t limit) override {
    std::vector<LogRecord> out;
    Status error;
    ScanRange range{LogKey(saga_id, from_seq), PrefixEnd(LogPrefix(saga_id))};
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    // A row is keyed by the seq of its last event, so the first row at or
    // after from_seq is the one that holds it.
    Status s = view->Scan(Cf::kLog, range, [&](auto key, auto value) {
      auto events = DecodeLogRow(value, Where(Cf::kLog, key));
      if (!events.ok()) {
        error = events.status();
        return false;
      }
      for (LogRecord& e : *events) {
        if (out.size() >= limit) return false;
        if (e.seq >= from_seq) out.push_back(std::move(e));
      }
      return out.size() < limit;
    });
    CDE_RETURN_IF_ERROR(s);
    CDE_RETURN_IF_ERROR(error);
    return out;
  }

  Result<std::vector<ItemRecord>> ReadItems(
      const std::string& saga_id) override {
    const std::string prefix = ItemPrefix(saga_id);
    return ScanItems(saga_id, {prefix, PrefixEnd(prefix)},
                     std::numeric_limits<size_t>::max());
  }

  Result<std::vector<ItemRecord>> ReadMapItems(const std::string& saga_id,
                                               const std::string& map_path,
                                               uint32_t from,
                                               size_t limit) override {
    if (limit == 0) return std::vector<ItemRecord>{};
    // The map's rows: saga 00 map_path 00 index; the upper bound is the end
    // of that prefix, so a longer map path never shows up here.
    const std::string first = ItemKey(saga_id, map_path, from);
    const std::string prefix = first.substr(0, first.size() - 4);
    return ScanItems(saga_id, {first, PrefixEnd(prefix)}, limit);
  }

  // The item rows of `saga_id` in `range`, at most `limit`.
  Result<std::vector<ItemRecord>> ScanItems(const std::string& saga_id,
                                            const ScanRange& range,
                                            size_t limit) {
    std::vector<ItemRecord> out;
    Status error;
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    Status s = view->Scan(Cf::kItems, range, [&](auto key, auto value) {
      const auto parts = ParseItemKey(key);
      if (!parts || parts->saga_id != saga_id) {
        error =
            Status::Corruption(Where(Cf::kItems, key) + ": malformed item key");
        return false;
      }
      auto body = DecodeItem(value, Where(Cf::kItems, key));
      if (!body.ok()) {
        error = body.status();
        return false;
      }
      out.push_back({saga_id, std::string(parts->map_path), parts->index,
                     std::move(body).value()});
      return out.size() < limit;
    });
    CDE_RETURN_IF_ERROR(s);
    CDE_RETURN_IF_ERROR(error);
    return out;
  }

  Result<SagaPage> ListSagas(const SagaQuery& q) override {
    if (q.limit == 0) return Status::InvalidArgument("limit must be >= 1");
    if (!q.cursor.empty() && !IsSagaId(q.cursor)) {
      return Status::InvalidArgument("cursor '" + PrintableKey(q.cursor) +
                                     "' is not a saga id");
    }
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    if (!q.state && !q.workflow) return ListAllSagas(*view, q);
    // The prefixes of idx_workflow_state that hold the answer, merged
    // newest first.
    std::vector<std::string> prefixes;
    if (q.workflow && q.state) {
      prefixes.push_back(IdxWorkflowStatePrefix(*q.workflow, *q.state));
    } else if (q.workflow) {
      for (SagaState state : kAllSagaStates) {
        prefixes.push_back(IdxWorkflowStatePrefix(*q.workflow, state));
      }
    } else {
      auto workflows = IndexedWorkflows(*view);
      CDE_RETURN_IF_ERROR(workflows.status());
      for (const std::string& w : *workflows) {
        prefixes.push_back(IdxWorkflowStatePrefix(w, *q.state));
      }
    }
    std::vector<IndexStream> streams;
    for (std::string& prefix : prefixes) {
      std::string lower = prefix;
      if (q.since_ms) lower += SagaIdFloor(*q.since_ms);
      std::string upper = UpperBound(q, prefix);
      streams.emplace_back(std::move(prefix), std::move(lower),
                           std::move(upper));
    }
    // q.limit + 1 would wrap for a limit of SIZE_MAX.
    const size_t chunk = q.limit < kIndexChunk ? q.limit + 1 : kIndexChunk;
    SagaPage page;
    for (;;) {
      IndexStream* newest = nullptr;
      for (IndexStream& stream : streams) {
        CDE_RETURN_IF_ERROR(stream.Fill(*view, chunk));
        if (!stream.empty() &&
            (newest == nullptr || stream.front() > newest->front())) {
          newest = &stream;
        }
      }
      if (newest == nullptr) break;
      if (page.sagas.size() == q.limit) {
        page.next_cursor = page.sagas.back().id;  // there is at least one more
        break;
      }
      auto rec = FollowIndexRow(*view, Cf::kIdxWorkflowState,
                                newest->front_key(), newest->front());
      if (rec.ok()) {
        page.sagas.push_back(std::move(rec).value());
      } else if (rec.status().IsCorruption()) {
        page.unreadable.push_back({newest->front(), rec.status()});
      } else {
        return rec.status();
      }
      newest->Pop();
    }
    return page;
  }

  // No filter: the `sagas` family itself is the creation-time index.
  Result<SagaPage> ListAllSagas(KvView& view, const SagaQuery& q) {
    ScanRange range;
    if (q.since_ms) range.lower = SagaIdFloor(*q.since_ms);
    range.upper = UpperBound(q, "");
    range.reverse = true;
    SagaPage page;
    Status error;
    Status s = view.Scan(Cf::kSagas, range, [&](auto key, auto value) {
      if (page.sagas.size() == q.limit) {
        page.next_cursor = page.sagas.back().id;  // there is at least one more
        return false;
      }
      auto rec = DecodeSaga(value, Where(Cf::kSagas, key));
      Status read = rec.status();
      if (rec.ok()) read = FoldLogTail(view, *rec);
      if (read.ok()) {
        page.sagas.push_back(std::move(rec).value());
      } else if (read.IsCorruption()) {
        page.unreadable.push_back({std::string(key), std::move(read)});
      } else {
        error = std::move(read);
        return false;
      }
      return true;
    });
    CDE_RETURN_IF_ERROR(s);
    CDE_RETURN_IF_ERROR(error);
    return page;
  }

  Result<ActiveSagas> ListActiveSagas() override {
    ActiveSagas out;
    Status error;
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    auto workflows = IndexedWorkflows(*view);
    CDE_RETURN_IF_ERROR(workflows.status());
    for (const std::string& workflow : *workflows) {
      for (SagaState state : kActiveStates) {
        const std::string prefix = IdxWorkflowStatePrefix(workflow, state);
        Status s = view->Scan(
            Cf::kIdxWorkflowState, {prefix, PrefixEnd(prefix)},
            [&](auto key, auto) {
              const std::string id(key.substr(prefix.size()));
              auto rec = FollowIndexRow(*view, Cf::kIdxWorkflowState, key, id);
              if (rec.ok()) {
                out.sagas.push_back(std::move(rec).value());
              } else if (rec.status().IsCorruption()) {
                auto unreadable =
                    Unreadable(*view, id, workflow, state, rec.status());
                if (unreadable.ok()) {
                  out.unreadable.push_back(std::move(unreadable).value());
                } else {
                  error = unreadable.status();
                }
              } else {
                error = rec.status();
              }
              return error.ok();
            });
        CDE_RETURN_IF_ERROR(s);
        CDE_RETURN_IF_ERROR(error);
      }
    }
    std::sort(out.unreadable.begin(), out.unreadable.end(),
              [](const UnreadableSaga& a, const UnreadableSaga& b) {
                return a.id < b.id;
              });
    return out;
  }

  Result<UnreadableSaga> DescribeUnreadable(const std::string& saga_id,
                                            Status error) override {
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    auto workflows = IndexedWorkflows(*view);
    CDE_RETURN_IF_ERROR(workflows.status());
    std::string ignored;
    for (const std::string& workflow : *workflows) {
      for (SagaState state : kActiveStates) {
        Status s = view->Get(
            Cf::kIdxWorkflowState,
            IdxWorkflowStatePrefix(workflow, state).append(saga_id), &ignored);
        if (s.IsNotFound()) continue;
        CDE_RETURN_IF_ERROR(s);
        return Unreadable(*view, saga_id, workflow, state, std::move(error));
      }
    }
    return Status::NotFound("saga '" + PrintableKey(saga_id) +
                            "' is not active");
  }

  Result<DlqRecord> GetDlq(const std::string& saga_id) override {
    std::string value;
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    Status s = view->Get(Cf::kDlq, saga_id, &value);
    if (s.IsNotFound()) {
      return Status::NotFound("saga '" + saga_id + "' is not in the DLQ");
    }
    CDE_RETURN_IF_ERROR(s);
    return DecodeDlq(value, Where(Cf::kDlq, saga_id));
  }

  Result<DlqPage> ListDlq(const DlqQuery& q) override {
    if (q.limit == 0) return Status::InvalidArgument("limit must be >= 1");
    DlqPage page;
    Status error;
    ScanRange range;
    if (!q.cursor.empty()) range.lower = q.cursor + '\0';  // after the cursor
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    Status s = view->Scan(Cf::kDlq, range, [&](auto key, auto value) {
      auto rec = DecodeDlq(value, Where(Cf::kDlq, key));
      if (!rec.ok()) {
        error = rec.status();
        return false;
      }
      if (q.workflow && rec->workflow != *q.workflow) return true;
      if (page.entries.size() == q.limit) {
        page.next_cursor = page.entries.back().saga_id;
        return false;
      }
      page.entries.push_back(std::move(rec).value());
      return true;
    });
    CDE_RETURN_IF_ERROR(s);
    CDE_RETURN_IF_ERROR(error);
    return page;
  }

  Result<std::vector<TimerRecord>> DueTimers(int64_t up_to_ms,
                                             size_t limit) override {
    std::vector<TimerRecord> out;
    Status error;
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    Status s = view->Scan(
        Cf::kTimers, {"", TimerKeyAfter(up_to_ms)}, [&](auto key, auto value) {
          if (out.size() >= limit) return false;
          auto rec = DecodeTimer(value, Where(Cf::kTimers, key));
          if (!rec.ok()) {
            error = rec.status();
            return false;
          }
          out.push_back(std::move(rec).value());
          return true;
        });
    CDE_RETURN_IF_ERROR(s);
    CDE_RETURN_IF_ERROR(error);
    return out;
  }

  Result<std::string> LookupIdempotency(const std::string& key) override {
    std::string value;
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    Status s = view->Get(Cf::kIdempotency, key, &value);
    if (s.IsNotFound()) {
      return Status::NotFound("no saga under idempotency key '" +
                              PrintableKey(key) + "'");
    }
    CDE_RETURN_IF_ERROR(s);
    return DecodeIdempotency(value, Where(Cf::kIdempotency, key));
  }

  Result<DefinitionRecord> GetDefinition(const std::string& name,
                                         uint32_t version) override {
    const std::string key = DefinitionKey(name, version);
    std::string value;
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    Status s = view->Get(Cf::kDefinitions, key, &value);
    if (s.IsNotFound()) {
      return Status::NotFound("workflow '" + name + "' has no version " +
                              std::to_string(version));
    }
    CDE_RETURN_IF_ERROR(s);
    return DecodeDefinition(value, Where(Cf::kDefinitions, key));
  }

  Result<std::vector<DefinitionRecord>> ListDefinitions() override {
    std::vector<DefinitionRecord> out;
    Status error;
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    Status s = view->Scan(Cf::kDefinitions, {}, [&](auto key, auto value) {
      auto rec = DecodeDefinition(value, Where(Cf::kDefinitions, key));
      if (!rec.ok()) {
        error = rec.status();
        return false;
      }
      out.push_back(std::move(rec).value());
      return true;
    });
    CDE_RETURN_IF_ERROR(s);
    CDE_RETURN_IF_ERROR(error);
    return out;
  }

  Result<StoreStats> Stats() override {
    StoreStats stats;
    Status error;
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    Status s = view->Scan(Cf::kIdxWorkflowState, {}, [&](auto key, auto) {
      const size_t sep = key.find('\0');
      auto state = sep == std::string_view::npos || sep + 1 >= key.size()
                       ? std::nullopt
                       : SagaStateFromCode(static_cast<uint8_t>(key[sep + 1]));
      if (!state) {
        error = Status::Corruption(Where(Cf::kIdxWorkflowState, key) +
                                   ": not a workflow, 0x00 and a saga state");
        return false;
      }
      ++stats.sagas_by_state[std::string(SagaStateName(*state))];
      return true;
    });
    CDE_RETURN_IF_ERROR(s);
    CDE_RETURN_IF_ERROR(error);
    CDE_RETURN_IF_ERROR(Count(*view, Cf::kDlq, &stats.dlq_entries));
    CDE_RETURN_IF_ERROR(Count(*view, Cf::kTimers, &stats.timers));
    CDE_RETURN_IF_ERROR(Count(*view, Cf::kDefinitions, &stats.definitions));
    stats.engine = kv_->EngineStats();
    return stats;
  }

  Result<uint64_t> CountDlq() override {
    uint64_t n = 0;
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    CDE_RETURN_IF_ERROR(Count(*view, Cf::kDlq, &n));
    return n;
  }

  Status ScanRowsFrom(Cf cf, std::string_view from,
                      const RowVisitor& visit) override {
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    return view->Scan(cf, {std::string(from), ""}, visit);
  }

  Status Checkpoint(const std::string& dir) override {
    if (closing_.load()) return Closed();
    std::shared_lock open(open_mu_);
    if (closed_) return Closed();
    return kv_->Checkpoint(dir);
  }
  Status CatchUp() override {
    if (closing_.load()) return Closed();
    std::shared_lock open(open_mu_);
    if (closed_) return Closed();
    return kv_->CatchUp();
  }

  uint32_t format_version() const override { return format_version_; }

  Status Close() override {
    closing_ = true;                  // no new call takes open_mu_
    std::unique_lock open(open_mu_);  // waits for the calls under way
    if (closed_) return Status::OK();
    closed_ = true;
    {
      std::lock_guard lock(mu_);
      bg_error_ = Closed();
    }
    return kv_->Close();
  }

 private:
  static Status Closed() {
    return Status::ShutdownInProgress("store is closed");
  }

  // Runs `write` (a write or a sync) unless the store refuses writes, and
  // makes it refuse them from now on if `write` fails: the fate of what that
  // write carried is unknown, so nothing after it may be acknowledged.
  template <typename Write>
  Status Refusing(const Write& write) {
    if (closing_.load()) return Closed();
    std::shared_lock open(open_mu_);
    {
      std::lock_guard lock(mu_);
      if (!bg_error_.ok()) return bg_error_;
    }
    Status s = write();
    if (!s.ok()) {
      std::lock_guard lock(mu_);
      if (bg_error_.ok()) {
        bg_error_ = s.WithContext(
            "store refuses writes until reopened after a failed write");
      }
    }
    return s;
  }

  // A view of kv_ that holds the store open: Close waits until it is gone,
  // and after Close there is none (status() says so).
  class OpenView {
   public:
    explicit OpenView(const StoreImpl& store) {
      if (store.closing_.load()) return;
      open_ = std::shared_lock(store.open_mu_);
      if (!store.closed_) view_ = store.kv_->NewView();
    }
    Status status() const { return view_ ? Status::OK() : Closed(); }
    KvView* operator->() const { return view_.get(); }
    KvView& operator*() const { return *view_; }

   private:
    std::shared_lock<std::shared_mutex> open_;
    std::unique_ptr<KvView> view_;
  };
  OpenView View() const { return OpenView(*this); }

  Result<SagaRecord> GetSagaIn(KvView& view, const std::string& saga_id) {
    std::string value;
    Status s = view.Get(Cf::kSagas, saga_id, &value);
    if (s.IsNotFound()) {
      return Status::NotFound("no saga '" + PrintableKey(saga_id) + "'");
    }
    CDE_RETURN_IF_ERROR(s);
    auto rec = DecodeSaga(value, Where(Cf::kSagas, saga_id));
    CDE_RETURN_IF_ERROR(rec.status());
    CDE_RETURN_IF_ERROR(FoldLogTail(view, *rec));
    return rec;
  }

  // A snapshot is not rewritten by every transition (format 8): those that
  // wrote none left a patch of it in their log row, each row after the
  // snapshot's last_seq. Applied in order, they give the saga as of its
  // newest row. Only a snapshot marked patchable can have any (the others,
  // of sagas that waited or ended, cost no look at the log).
  static Status FoldLogTail(KvView& view, SagaRecord& rec) {
    if (!rec.patchable) return Status::OK();
    Status error;
    Status s = view.Scan(
        Cf::kLog,
        {LogKey(rec.id, rec.last_seq + 1), PrefixEnd(LogPrefix(rec.id))},
        [&](auto key, auto value) {
          const std::string where = Where(Cf::kLog, key);
          auto row = DecodeLogRowWithPatch(value, where);
          if (!row.ok()) {
            error = row.status();
          } else if (row->events.front().saga_id != rec.id ||
                     LogKeySeq(key) != row->events.back().seq) {
            error = Status::Corruption(
                where + ": holds events of saga '" +
                PrintableKey(row->events.front().saga_id) + "' up to seq " +
                std::to_string(row->events.back().seq) + ", not its key's");
          } else if (row->events.front().seq != rec.last_seq + 1) {
            error = Status::Corruption(where + ": begins at seq " +
                                       std::to_string(row->events.front().seq) +
                                       ", but saga '" + PrintableKey(rec.id) +
                                       "' is at seq " +
                                       std::to_string(rec.last_seq));
          } else if (!row->snapshot_patch) {
            error = Status::Corruption(
                where + ": follows the snapshot of saga '" +
                PrintableKey(rec.id) + "' (last_seq " +
                std::to_string(rec.last_seq) + ") but holds no patch of it");
          } else {
            error = ApplySnapshotPatch(*row->snapshot_patch,
                                       row->events.back().seq, &rec, where);
          }
          return error.ok();
        });
    CDE_RETURN_IF_ERROR(s);
    return error;
  }

  // The workflows idx_workflow_state holds sagas of, in byte order: one
  // seek per workflow, each past the previous one's keys.
  Result<std::vector<std::string>> IndexedWorkflows(KvView& view) {
    std::vector<std::string> out;
    Status error;
    for (std::string lower;;) {
      bool found = false;
      Status s =
          view.Scan(Cf::kIdxWorkflowState, {lower, ""}, [&](auto key, auto) {
            const size_t sep = key.find('\0');
            if (sep == std::string_view::npos) {
              error = Status::Corruption(Where(Cf::kIdxWorkflowState, key) +
                                         ": no 0x00 after the workflow");
              return false;
            }
            out.emplace_back(key.substr(0, sep));
            found = true;
            return false;
          });
      CDE_RETURN_IF_ERROR(s);
      CDE_RETURN_IF_ERROR(error);
      if (!found) return out;
      lower = PrefixEnd(out.back() + '\0');
    }
  }

  // Reads the snapshot an index row names. A row whose saga is missing is
  // corruption: rows and snapshots are only ever written together.
  Result<SagaRecord> FollowIndexRow(KvView& view, Cf index,
                                    std::string_view key,
                                    std::string_view saga_id) {
    auto rec = GetSagaIn(view, std::string(saga_id));
    if (rec.status().IsNotFound()) {
      return Status::Corruption(Where(index, key) + ": points at saga '" +
                                PrintableKey(saga_id) +
                                "' which has no snapshot");
    }
    return rec;
  }

  // What is left to know of saga `id`, whose rows failed with `error`: its
  // snapshot as stored, as much of it as decodes, and its newest log seq
  // (from the keys, which a broken row does not hide).
  static Result<UnreadableSaga> Unreadable(KvView& view, const std::string& id,
                                           const std::string& workflow,
                                           SagaState state, Status error) {
    UnreadableSaga u{.id = id,
                     .workflow = workflow,
                     .state = state,
                     .error = std::move(error)};
    Status s = view.Get(Cf::kSagas, id, &u.snapshot);
    if (!s.ok() && !s.IsNotFound()) return s;
    if (s.ok()) {
      auto head = DecodeSaga(u.snapshot, Where(Cf::kSagas, id));
      if (head.ok()) {
        u.head = std::move(head).value();
        u.last_seq = u.head->last_seq;
      }
    }
    const std::string prefix = LogPrefix(id);
    s = view.Scan(Cf::kLog, {prefix, PrefixEnd(prefix), /*reverse=*/true},
                  [&](auto key, auto) {
                    if (auto seq = LogKeySeq(key)) {
                      u.last_seq = std::max(u.last_seq, *seq);
                    }
                    return false;  // the newest key is the first
                  });
    CDE_RETURN_IF_ERROR(s);
    return u;
  }

  static Status Count(KvView& view, Cf cf, uint64_t* n) {
    return view.Scan(cf, {}, [n](auto, auto) {
      ++*n;
      return true;
    });
  }

  std::unique_ptr<KvEngine> kv_;
  const uint32_t format_version_;
  // Held shared by every call that reaches kv_, and exclusively by Close:
  // a call runs wholly before the close, or fails with ShutdownInProgress.
  // Calls that see `closing_` do not take it, so readers cannot keep Close
  // waiting.
  mutable std::shared_mutex open_mu_;
  std::atomic<bool> closing_{false};
  bool closed_ = false;  // GUARDED_BY(open_mu_)
  mutable std::mutex mu_;
  Status bg_error_;  // GUARDED_BY(mu_)
};

}  // namespace

std::unique_ptr<Store> NewStoreOverKv(std::unique_ptr<KvEngine> kv,
                                      uint32_t format_version) {
  return std::make_unique<StoreImpl>(std::move(kv), format_version);
}

std::unique_ptr<Store> NewMemoryStore() {
  return NewStoreOverKv(NewMemoryKv());
}

}  // namespace cde
