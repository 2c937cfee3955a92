// cde-admin verify: checks that the rows of every column family agree with
// each other (docs/cde-admin.md lists the checks and problem kinds).
//
// It reads raw rows (Store::ScanRows) so that a record that fails to decode
// is a problem to report, not an error that stops the check. One pass per
// column family; what it keeps in memory is a few facts per saga.
#include <map>
#include <set>

#include "engine/saga.h"
#include "storage/keys.h"
#include "tools/admin/commands.h"
#include "tools/admin/store_access.h"

namespace cde::admin {

using nlohmann::json;

namespace {

struct Problem {
  std::string kind;
  Cf cf;
  std::string key;  // raw
  std::string saga_id;
  std::string message;
  json rows;  // index problems: {"missing": [...], "unexpected": [...]}
};

struct SagaFacts {
  bool decoded = false;  // the snapshot record decoded
  bool body_ok = false;  // and so did its engine body
  SagaState state = SagaState::kRunning;
  std::string workflow;
  uint32_t version = 0;
  uint64_t last_seq = 0;
  std::string idempotency_key;
  std::vector<Wait> waits;
  bool log_seen = false;
  std::vector<std::pair<Cf, std::string>> index_rows;      // found, raw keys
  std::set<std::pair<int64_t, std::string>> timers_found;  // due, row name
  // One of its timer rows does not decode (reported as such, not missing).
  bool timer_undecodable = false;
  bool idempotency_found = false;
  bool dlq_found = false;
};

// Where a row lives, for decoder messages (as storage says it).
std::string Where(Cf cf, std::string_view key) {
  return "cf '" + std::string(CfName(cf)) + "' key '" + PrintableKey(key) + "'";
}

// The timer rows a saga's waits call for, as (due, row name): a running
// saga's sleeps and backoffs, a parked one's automatic replay. Stores before
// format 3 named a row by its kind alone.
std::set<std::pair<int64_t, std::string>> ExpectedTimers(const SagaFacts& f,
                                                         bool legacy_names) {
  std::set<std::pair<int64_t, std::string>> out;
  if (!f.body_ok) return out;
  for (const Wait& w : f.waits) {
    const bool wanted =
        f.state == SagaState::kParked
            ? w.kind == Wait::Kind::kRedrive
            : IsActive(f.state) && (w.kind == Wait::Kind::kBackoff ||
                                    w.kind == Wait::Kind::kSleep);
    if (!wanted) continue;
    const TimerKind kind = *TimerKindOf(w.kind);
    out.insert({w.due_ms, legacy_names ? std::string(TimerKindName(kind))
                                       : TimerRowName(kind, w.path)});
  }
  return out;
}

class Verifier {
 public:
  explicit Verifier(Store& store)
      : store_(store),
        progress_(kCfCount),
        legacy_timer_names_(store.format_version() < 3) {}

  void Run() {
    Meta();
    DefinitionRows();
    Sagas();
    FoldPatches();
    Log();
    Index(Cf::kIdxState);
    Index(Cf::kIdxWorkflow);
    Index(Cf::kIdxWorkflowState);
    CheckIndexes();
    Timers();
    Idempotency();
    Dlq();
    Items();
    progress_.Done();
  }

  const std::vector<Problem>& problems() const { return problems_; }
  const std::map<std::string, uint64_t>& rows() const { return rows_; }
  // Column families in the order they were checked.
  const std::vector<std::string>& order() const { return order_; }

 private:
  void Add(std::string kind, Cf cf, std::string_view key, std::string saga_id,
           std::string message, json rows = nullptr) {
    problems_.push_back({std::move(kind), cf, std::string(key),
                         std::move(saga_id), std::move(message),
                         std::move(rows)});
  }

  // Scans `cf`, counting rows and drawing progress.
  template <typename F>
  void Scan(Cf cf, F&& visit) {
    const std::string name(CfName(cf));
    order_.push_back(name);
    uint64_t& n = rows_[name];
    Check(
        store_.ScanRows(cf, [&](std::string_view key, std::string_view value) {
          ++n;
          if (n % 1024 == 1) progress_.Update(phase_, name, n);
          visit(key, value);
          return true;
        }));
    ++phase_;
  }

  SagaFacts* Find(std::string_view id) {
    auto it = sagas_.find(std::string(id));
    return it == sagas_.end() ? nullptr : &it->second;
  }

  void Meta() {
    bool found = false;
    Scan(Cf::kMeta, [&](auto key, auto value) {
      if (key != kFormatVersionKey) return;
      found = true;
      auto v = DecodeFormatVersion(value, Where(Cf::kMeta, key));
      if (!v.ok()) Add("undecodable", Cf::kMeta, key, "", v.status().message());
    });
    if (!found) {
      Add("format_version_missing", Cf::kMeta, kFormatVersionKey, "",
          "the store has no format version row");
    }
  }

  void DefinitionRows() {
    Scan(Cf::kDefinitions, [&](auto key, auto value) {
      auto d = DecodeDefinition(value, Where(Cf::kDefinitions, key));
      if (!d.ok()) {
        Add("undecodable", Cf::kDefinitions, key, "", d.status().message());
        return;
      }
      if (DefinitionKey(d->name, d->version) != key) {
        Add("key_mismatch", Cf::kDefinitions, key, "",
            "the record is " + d->name + "@" + std::to_string(d->version) +
                ", which belongs under another key");
      }
      definitions_.emplace(d->name, d->version);
    });
  }

  void Sagas() {
    Scan(Cf::kSagas, [&](auto key, auto value) {
      SagaFacts& f = sagas_[std::string(key)];
      auto rec = DecodeSaga(value, Where(Cf::kSagas, key));
      if (!rec.ok()) {
        Add("undecodable", Cf::kSagas, key, std::string(key),
            rec.status().message());
        return;
      }
      f.decoded = true;
      f.state = rec->state;
      f.workflow = rec->workflow;
      f.version = rec->version;
      f.last_seq = rec->last_seq;
      f.idempotency_key = rec->idempotency_key;
      if (!f.idempotency_key.empty()) {
        by_idempotency_key_[f.idempotency_key] = std::string(key);
      }
      if (rec->id != key) {
        Add("key_mismatch", Cf::kSagas, key, std::string(key),
            "the snapshot is of saga '" + PrintableKey(rec->id) + "'");
      }
      auto saga = FromRecord(*rec);
      if (!saga.ok()) {
        Add("bad_body", Cf::kSagas, key, std::string(key),
            saga.status().message());
      } else {
        f.body_ok = true;
        f.waits = saga->waits;
      }
      if (!definitions_.contains(std::make_pair(rec->workflow, rec->version))) {
        Add("definition_missing", Cf::kSagas, key, std::string(key),
            "runs " + rec->workflow + "@" + std::to_string(rec->version) +
                ", which is not registered");
      }
    });
  }

  // A snapshot is not rewritten by every transition (store format 8): the
  // log rows after it hold patches of it. What the checks below compare is
  // the saga after them, as every reader sees it.
  void FoldPatches() {
    for (auto& [id, f] : sagas_) {
      if (!f.decoded) continue;
      auto rec = store_.GetSaga(id);
      if (!rec.ok()) {
        Add("bad_patch", Cf::kLog, LogPrefix(id), id, rec.status().message());
        continue;
      }
      if (rec->last_seq == f.last_seq) continue;  // no patch after it
      f.last_seq = rec->last_seq;
      if (auto saga = FromRecord(*rec); saga.ok()) {
        f.waits = saga->waits;
      } else {
        f.body_ok = false;
        Add("bad_body", Cf::kLog, LogPrefix(id), id,
            "as patched by its log: " + saga.status().message());
      }
    }
  }

  void Log() {
    std::string current;  // the saga whose events are being read
    bool have_current = false;
    uint64_t last = 0;      // the previous seq of `current`
    uint64_t orphaned = 0;  // events of `current` without a snapshot
    auto finish = [&] {
      if (!have_current) return;
      SagaFacts* f = Find(current);
      if (f == nullptr) {
        Add("log_orphan", Cf::kLog, LogPrefix(current), current,
            std::to_string(orphaned) + " log event(s) of saga '" +
                PrintableKey(current) + "', which has no snapshot");
      } else if (f->decoded && last != f->last_seq) {
        Add("log_mismatch", Cf::kSagas, current, current,
            "the snapshot's last_seq is " + std::to_string(f->last_seq) +
                " but its log ends at seq " + std::to_string(last));
      }
    };
    Scan(Cf::kLog, [&](auto key, auto value) {
      const auto seq = LogKeySeq(key);
      if (!seq) {
        Add("bad_key", Cf::kLog, key, "", "not a saga id, 0x00, seq(8)");
        return;
      }
      const std::string_view id = key.substr(0, key.size() - 9);
      if (!have_current || id != current) {
        finish();
        current = std::string(id);
        have_current = true;
        last = 0;
        orphaned = 0;
        if (SagaFacts* f = Find(current)) f->log_seen = true;
      }
      // A row holds one event, or all of one transition's, and is keyed by
      // the seq of its last.
      auto events = DecodeLogRow(value, Where(Cf::kLog, key));
      const uint64_t first = events.ok() ? events->front().seq : *seq;
      orphaned += events.ok() ? events->size() : 1;
      if (first != last + 1) {
        Add("log_gap", Cf::kLog, key, current,
            last == 0
                ? "the log starts at seq " + std::to_string(first) + ", not 1"
                : "seq " + std::to_string(first) + " follows seq " +
                      std::to_string(last));
      }
      last = *seq;
      if (!events.ok()) {
        Add("undecodable", Cf::kLog, key, current, events.status().message());
      } else if (const LogRecord& end = events->back();
                 end.saga_id != id || end.seq != *seq) {
        Add("key_mismatch", Cf::kLog, key, current,
            (events->size() == 1 ? "the event is seq "
                                 : "the row's last event is seq ") +
                std::to_string(end.seq) + " of saga '" +
                PrintableKey(end.saga_id) + "'");
      }
    });
    finish();
    for (const auto& [id, f] : sagas_) {
      if (f.decoded && !f.log_seen && f.last_seq != 0) {
        Add("log_missing", Cf::kSagas, id, id,
            "the snapshot's last_seq is " + std::to_string(f.last_seq) +
                " but the saga has no log");
      }
    }
  }

  // Each item row: a well-formed key, a record that decodes, a saga that
  // has a snapshot.
  void Items() {
    Scan(Cf::kItems, [&](auto key, auto value) {
      const auto parts = ParseItemKey(key);
      if (!parts) {
        Add("bad_key", Cf::kItems, key, "",
            "not a saga id, 0x00, map path, 0x00, index(4)");
        return;
      }
      const std::string id(parts->saga_id);
      if (auto body = DecodeItem(value, Where(Cf::kItems, key)); !body.ok()) {
        Add("undecodable", Cf::kItems, key, id, body.status().message());
      }
      if (Find(id) == nullptr) {
        Add("item_orphan", Cf::kItems, key, id,
            "an item of saga '" + PrintableKey(id) +
                "', which has no snapshot");
      }
    });
  }

  // The saga id an index key names, or "" if the key is malformed.
  static std::string IndexedSaga(Cf cf, std::string_view key) {
    if (cf == Cf::kIdxState) {
      if (key.size() < 2 || !SagaStateFromCode(static_cast<uint8_t>(key[0]))) {
        return "";
      }
      return std::string(key.substr(1));
    }
    const size_t sep = key.find('\0');
    if (sep == std::string_view::npos) return "";
    size_t start = sep + 1;
    if (cf == Cf::kIdxWorkflowState) {
      if (start >= key.size() ||
          !SagaStateFromCode(static_cast<uint8_t>(key[start]))) {
        return "";
      }
      ++start;
    }
    if (start >= key.size()) return "";
    return std::string(key.substr(start));
  }

  void Index(Cf cf) {
    Scan(cf, [&](auto key, auto) {
      const std::string id = IndexedSaga(cf, key);
      if (id.empty()) {
        Add("bad_key", cf, key, "", "not a well-formed index key");
        return;
      }
      SagaFacts* f = Find(id);
      if (f == nullptr) {
        Add("index_dangling", cf, key, id,
            "points at saga '" + PrintableKey(id) + "', which has no snapshot");
        return;
      }
      f->index_rows.emplace_back(cf, std::string(key));
    });
    // A retired index (format 7 on) is expected empty: said only when it
    // is not, so that its stray rows show.
    const std::string name(CfName(cf));
    if (IsRetiredIndex(cf) && store_.format_version() >= 7 &&
        rows_[name] == 0) {
      rows_.erase(name);
      order_.pop_back();
    }
  }

  // Every decoded snapshot has exactly the index rows of its state and
  // workflow: one problem per saga that does not, listing the rows. Before
  // format 7 (a store not yet upgraded) those are three, from 7 on one.
  void CheckIndexes() {
    const bool retired_indexes_kept = store_.format_version() < 7;
    for (const auto& [id, f] : sagas_) {
      if (!f.decoded) continue;
      std::set<std::pair<Cf, std::string>> expected = {
          {Cf::kIdxWorkflowState,
           IdxWorkflowStatePrefix(f.workflow, f.state) + id}};
      if (retired_indexes_kept) {
        expected.insert({Cf::kIdxState, IdxStatePrefix(f.state) + id});
        expected.insert({Cf::kIdxWorkflow, IdxWorkflowPrefix(f.workflow) + id});
      }
      const std::set<std::pair<Cf, std::string>> found(f.index_rows.begin(),
                                                       f.index_rows.end());
      if (found == expected) continue;
      json missing = json::array(), unexpected = json::array();
      std::string message;
      auto row = [](const std::pair<Cf, std::string>& r) {
        return json{{"cf", CfName(r.first)}, {"key", PrintableKey(r.second)}};
      };
      for (const auto& r : expected) {
        if (found.contains(r)) continue;
        missing.push_back(row(r));
        message += (message.empty() ? "" : "; ") + std::string("no ") +
                   std::string(CfName(r.first)) + " row '" +
                   PrintableKey(r.second) + "'";
      }
      for (const auto& r : found) {
        if (expected.contains(r)) continue;
        unexpected.push_back(row(r));
        message += (message.empty() ? "" : "; ") + std::string("stray ") +
                   std::string(CfName(r.first)) + " row '" +
                   PrintableKey(r.second) + "'";
      }
      message = "snapshot is " + std::string(SagaStateName(f.state)) + " " +
                f.workflow + ": " + message;
      Add(unexpected.empty() ? "index_missing" : "index_mismatch", Cf::kSagas,
          id, id, message,
          json{{"missing", missing}, {"unexpected", unexpected}});
    }
  }

  void Timers() {
    Scan(Cf::kTimers, [&](auto key, auto value) {
      auto t = DecodeTimer(value, Where(Cf::kTimers, key));
      if (!t.ok()) {
        // The key still says whose timer it is: no second problem for it.
        const size_t sep = key.find('\0', 8);
        const std::string id = key.size() > 8 && sep != std::string_view::npos
                                   ? std::string(key.substr(8, sep - 8))
                                   : std::string();
        Add("undecodable", Cf::kTimers, key, id, t.status().message());
        if (SagaFacts* f = Find(id)) f->timer_undecodable = true;
        return;
      }
      if (TimerKey(t->due_ms, t->saga_id, t->name) != key) {
        Add("key_mismatch", Cf::kTimers, key, t->saga_id,
            "the record is timer '" + t->name + "' of saga '" +
                PrintableKey(t->saga_id) + "' due " + FormatTime(t->due_ms));
        return;
      }
      SagaFacts* f = Find(t->saga_id);
      const std::string what = "timer '" + t->name + "' due " +
                               FormatTime(t->due_ms) + " of saga '" +
                               PrintableKey(t->saga_id) + "'";
      if (f == nullptr) {
        Add("timer_orphan", Cf::kTimers, key, t->saga_id,
            what + ", which has no snapshot");
        return;
      }
      if (!f->body_ok) return;  // its snapshot is reported already
      const std::pair<int64_t, std::string> row{t->due_ms, t->name};
      if (ExpectedTimers(*f, legacy_timer_names_).count(row) != 0) {
        f->timers_found.insert(row);
        return;
      }
      std::string waits;
      for (const Wait& w : f->waits) {
        if (!waits.empty()) waits += ", ";
        waits += std::string(WaitKindName(w.kind));
        if (!w.path.empty()) waits += " of " + w.path;
        if (w.due_ms != 0) waits += " due " + FormatTime(w.due_ms);
      }
      if (waits.empty()) waits = "nothing";
      Add("timer_orphan", Cf::kTimers, key, t->saga_id,
          what + ", which does not wait for it (it is " +
              std::string(SagaStateName(f->state)) + ", waiting for " + waits +
              ")");
    });
    for (const auto& [id, f] : sagas_) {
      if (f.timer_undecodable) continue;
      for (const auto& [due, name] : ExpectedTimers(f, legacy_timer_names_)) {
        if (f.timers_found.count({due, name}) != 0) continue;
        Add("timer_missing", Cf::kTimers, TimerKey(due, id, name), id,
            "saga waits for its " + name + " timer due " + FormatTime(due) +
                " but there is no such timer row");
      }
    }
  }

  void Idempotency() {
    Scan(Cf::kIdempotency, [&](auto key, auto value) {
      auto id = DecodeIdempotency(value, Where(Cf::kIdempotency, key));
      if (!id.ok()) {
        auto owner = by_idempotency_key_.find(std::string(key));
        const bool known = owner != by_idempotency_key_.end();
        Add("undecodable", Cf::kIdempotency, key,
            known ? owner->second : std::string(), id.status().message());
        if (known) sagas_[owner->second].idempotency_found = true;
        return;
      }
      SagaFacts* f = Find(*id);
      if (f == nullptr) {
        Add("idempotency_orphan", Cf::kIdempotency, key, *id,
            "names saga '" + PrintableKey(*id) + "', which has no snapshot");
        return;
      }
      if (!f->decoded) return;
      if (f->idempotency_key != key) {
        Add("idempotency_orphan", Cf::kIdempotency, key, *id,
            "names saga '" + PrintableKey(*id) + "', which was started " +
                (f->idempotency_key.empty()
                     ? std::string("without a key")
                     : "with key '" + PrintableKey(f->idempotency_key) + "'"));
        return;
      }
      f->idempotency_found = true;
    });
    for (const auto& [id, f] : sagas_) {
      if (!f.decoded || f.idempotency_key.empty() || f.idempotency_found) {
        continue;
      }
      Add("idempotency_missing", Cf::kIdempotency, f.idempotency_key, id,
          "saga was started with this key but the key has no row");
    }
  }

  void Dlq() {
    Scan(Cf::kDlq, [&](auto key, auto value) {
      auto d = DecodeDlq(value, Where(Cf::kDlq, key));
      if (!d.ok()) {
        Add("undecodable", Cf::kDlq, key, std::string(key),
            d.status().message());
        if (SagaFacts* f = Find(key)) f->dlq_found = true;  // no cascade
        return;
      }
      if (d->saga_id != key) {
        Add("key_mismatch", Cf::kDlq, key, std::string(key),
            "the entry is of saga '" + PrintableKey(d->saga_id) + "'");
      }
      SagaFacts* f = Find(key);
      if (f == nullptr) {
        Add("dlq_orphan", Cf::kDlq, key, std::string(key),
            "DLQ entry of a saga that has no snapshot");
        return;
      }
      f->dlq_found = true;
      if (f->decoded && f->state != SagaState::kParked) {
        Add("dlq_not_parked", Cf::kDlq, key, std::string(key),
            "DLQ entry of a saga that is " +
                std::string(SagaStateName(f->state)) + ", not parked");
      }
    });
    for (const auto& [id, f] : sagas_) {
      if (f.decoded && f.state == SagaState::kParked && !f.dlq_found) {
        Add("dlq_missing", Cf::kDlq, id, id,
            "saga is parked but has no DLQ entry");
      }
    }
  }

  Store& store_;
  Progress progress_;
  // A store before format 3 names a step's timer row by its kind alone.
  const bool legacy_timer_names_;
  size_t phase_ = 0;
  std::set<std::pair<std::string, uint32_t>> definitions_;
  std::map<std::string, SagaFacts> sagas_;
  std::map<std::string, std::string> by_idempotency_key_;  // key -> saga
  std::vector<Problem> problems_;
  std::map<std::string, uint64_t> rows_;
  std::vector<std::string> order_;
};

}  // namespace

int RunVerify(const Common& common) {
  StoreAccess access = OpenForRead(common.data_dir);
  Verifier v(*access.store);
  v.Run();
  const auto& problems = v.problems();
  if (common.json) {
    json list = json::array();
    for (const Problem& p : problems) {
      json j = {{"kind", p.kind},
                {"cf", CfName(p.cf)},
                {"key", PrintableKey(p.key)},
                {"saga_id", p.saga_id.empty() ? json(nullptr)
                                              : json(PrintableKey(p.saga_id))},
                {"message", p.message}};
      if (!p.rows.is_null()) j["rows"] = p.rows;
      list.push_back(std::move(j));
    }
    PrintJson({{"ok", problems.empty()},
               {"access", access.ModeName()},
               {"rows_checked", v.rows()},
               {"problems", list}});
    return problems.empty() ? kExitOk : kExitFailed;
  }
  std::string checked;
  for (const std::string& cf : v.order()) {
    checked += (checked.empty() ? "" : ", ") + std::to_string(v.rows().at(cf)) +
               " " + cf;
  }
  if (problems.empty()) {
    std::printf("%s: checked the rows of %s\n",
                Paint("no problems", Colour::kGreen).c_str(), checked.c_str());
    return kExitOk;
  }
  Table t({"KIND", "CF", "KEY", "PROBLEM"});
  for (const Problem& p : problems) {
    t.AddRow({{p.kind, Colour::kRed},
              std::string(CfName(p.cf)),
              PrintableKey(p.key),
              p.message});
  }
  t.Print();
  std::printf("%s (checked the rows of %s)\n",
              Paint(std::to_string(problems.size()) + " problem" +
                        (problems.size() == 1 ? "" : "s"),
                    Colour::kRed)
                  .c_str(),
              checked.c_str());
  return kExitFailed;
}

}  // namespace cde::admin
