// StoreImpl: record decoding and queries over any KvEngine.
#include <atomic>
#include <limits>
#include <mutex>
#include <shared_mutex>

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

// Picks the index that answers `query` and the key prefix within it. Without
// a filter the `sagas` column family itself is the creation-time index.
struct IndexChoice {
  Cf cf;
  std::string prefix;
};

IndexChoice ChooseIndex(const SagaQuery& q) {
  if (q.state && q.workflow) {
    return {Cf::kIdxWorkflowState,
            IdxWorkflowStatePrefix(*q.workflow, *q.state)};
  }
  if (q.state) return {Cf::kIdxState, IdxStatePrefix(*q.state)};
  if (q.workflow) return {Cf::kIdxWorkflow, IdxWorkflowPrefix(*q.workflow)};
  return {Cf::kSagas, ""};
}

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
    if (closing_.load()) return Closed();
    std::shared_lock open(open_mu_);
    {
      std::lock_guard lock(mu_);
      if (!bg_error_.ok()) return bg_error_;
    }
    Status s = kv_->Write(batch, sync);
    if (!s.ok()) {
      std::lock_guard lock(mu_);
      if (bg_error_.ok()) {
        bg_error_ = s.WithContext(
            "store refuses writes until reopened after a failed write");
      }
    }
    return s;
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
    const IndexChoice index = ChooseIndex(q);
    ScanRange range;
    range.lower = index.prefix;
    if (q.since_ms) range.lower += SagaIdFloor(*q.since_ms);
    range.upper = UpperBound(q, index.prefix);
    range.reverse = true;

    SagaPage page;
    Status error;
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    Status s = view->Scan(index.cf, range, [&](auto key, auto value) {
      if (page.sagas.size() == q.limit) {
        page.next_cursor = page.sagas.back().id;  // there is at least one more
        return false;
      }
      auto rec = index.cf == Cf::kSagas
                     ? DecodeSaga(value, Where(Cf::kSagas, key))
                     : FollowIndexRow(*view, index.cf, key,
                                      key.substr(index.prefix.size()));
      if (!rec.ok()) {
        error = rec.status();
        return false;
      }
      page.sagas.push_back(std::move(rec).value());
      return true;
    });
    CDE_RETURN_IF_ERROR(s);
    CDE_RETURN_IF_ERROR(error);
    return page;
  }

  Result<std::vector<SagaRecord>> ListActiveSagas() override {
    std::vector<SagaRecord> out;
    Status error;
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    for (SagaState state : kActiveStates) {
      const std::string prefix = IdxStatePrefix(state);
      Status s = view->Scan(
          Cf::kIdxState, {prefix, PrefixEnd(prefix)}, [&](auto key, auto) {
            auto rec = FollowIndexRow(*view, Cf::kIdxState, key,
                                      key.substr(prefix.size()));
            if (!rec.ok()) {
              error = rec.status();
              return false;
            }
            out.push_back(std::move(rec).value());
            return true;
          });
      CDE_RETURN_IF_ERROR(s);
      CDE_RETURN_IF_ERROR(error);
    }
    return out;
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
    Status s = view->Scan(Cf::kIdxState, {}, [&](auto key, auto) {
      auto state = key.empty()
                       ? std::nullopt
                       : SagaStateFromCode(static_cast<uint8_t>(key[0]));
      if (!state) {
        error = Status::Corruption(Where(Cf::kIdxState, key) +
                                   ": unknown saga state code");
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

  Status ScanRows(Cf cf, const RowVisitor& visit) override {
    OpenView view = View();
    CDE_RETURN_IF_ERROR(view.status());
    return view->Scan(cf, {}, visit);
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
    return DecodeSaga(value, Where(Cf::kSagas, saga_id));
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
