// The promises cde-torture checks once everything has settled, against the
// store (opened read-only), the endpoint's record of every request, and the
// harness's own ledger of what the server acknowledged.
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>

#include "engine/saga.h"
#include "storage/store.h"
#include "tools/torture/torture.h"

namespace cde::torture {
namespace {

// The saga id an idempotency key ("<saga>/<step>/...") belongs to.
std::string SagaOf(const std::string& key) {
  return key.substr(0, key.find('/'));
}

// The event a saga that ends in state `s` ends its log with.
std::optional<EventKind> TerminalEvent(SagaState s) {
  switch (s) {
    case SagaState::kCompleted:
      return EventKind::kSagaCompleted;
    case SagaState::kCompensated:
      return EventKind::kSagaCompensated;
    case SagaState::kCancelled:
      return EventKind::kSagaCancelled;
    case SagaState::kParked:
      return EventKind::kSagaParked;
    default:
      return std::nullopt;
  }
}

bool Is(const LogRecord& e, EventKind kind) {
  return e.type == EventKindName(kind);
}

// A saga's log: seqs 1..n without gaps, saga_started first, and an ending
// that says the state its snapshot says; completion at most once.
void CheckLog(const std::string& id, const SagaRecord& rec,
              const std::vector<LogRecord>& log, std::vector<Violation>* out) {
  if (log.empty() || !Is(log.front(), EventKind::kSagaStarted)) {
    out->push_back({id, "log does not begin with saga_started"});
  }
  int completions = 0;
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i].seq != i + 1) {
      out->push_back({id, "log seq " + std::to_string(log[i].seq) + " where " +
                              std::to_string(i + 1) + " was due"});
      break;
    }
    completions += Is(log[i], EventKind::kSagaCompleted);
  }
  if (completions > 1) out->push_back({id, "completed more than once"});
  if (rec.last_seq != log.size()) {
    out->push_back({id, "snapshot last_seq " + std::to_string(rec.last_seq) +
                            " but " + std::to_string(log.size()) +
                            " log records"});
  }
  const std::optional<EventKind> want = TerminalEvent(rec.state);
  if (!want) {
    out->push_back({id, "still " + std::string(SagaStateName(rec.state)) +
                            " after settling"});
  } else if (!log.empty() && !Is(log.back(), *want) &&
             !(rec.state == SagaState::kParked &&
               Is(log.back(), EventKind::kSagaPoisoned))) {
    out->push_back({id, "state " + std::string(SagaStateName(rec.state)) +
                            " but the log ends with " + log.back().type});
  }
}

// Compensations ran exactly for the steps that started: nothing left done
// in a compensated saga, a refund only where a booking was made, and a
// refund for every booking a compensated saga undid.
void CheckCompensations(const std::string& id, const Saga& saga,
                        const std::set<std::string>& booked,
                        const std::set<std::string>& refunded,
                        std::vector<Violation>* out) {
  const bool undone =
      saga.state == SagaState::kCompensated ||
      (saga.state == SagaState::kCancelled && saga.compensate_on_cancel);
  for (const StepState& st : saga.steps) {
    if (undone && st.status == StepStatus::kSucceeded &&
        st.compensation != CompensationStatus::kSucceeded &&
        st.compensation != CompensationStatus::kNotDefined) {
      out->push_back({id, "a step is still done in an undone saga"});
    }
  }
  if (refunded.count(id) != 0 && booked.count(id) == 0) {
    out->push_back({id, "refunded a booking that was never made"});
  }
  const bool books = saga.workflow == "t-http" || saga.workflow == "t-fail";
  if (books && saga.steps[0].compensation == CompensationStatus::kSucceeded &&
      refunded.count(id) == 0) {
    out->push_back({id, "its booking was compensated without a refund"});
  }
}

// "<saga>/fan[<i>].book/..." -> i; nested, "<saga>/fan[<r>].rows[<s>]..."
// -> r * kFanOutRowSeats + s; -1 for another key.
int FanOutItem(const std::string& key) {
  const size_t at = key.find("/fan[");
  if (at == std::string::npos) return -1;
  const int outer = std::atoi(key.c_str() + at + 5);
  const size_t row = key.find("].rows[", at);
  if (row == std::string::npos) return outer;
  return outer * kFanOutRowSeats + std::atoi(key.c_str() + row + 7);
}

// The per-item rules of a fan-out saga: a completed one booked every item;
// an undone one refunded every item it booked, and refunded no item whose
// booking neither arrived nor may have (an attempt cut off in flight,
// abandoned or timed out, may have booked without the endpoint answering).
void CheckFanOut(const std::string& id, const Saga& saga,
                 const std::vector<ItemRecord>& items,
                 const std::map<std::string, std::set<int>>& booked_items,
                 const std::map<std::string, std::set<int>>& refunded_items,
                 std::vector<Violation>* out) {
  static const std::set<int> kNone;
  auto find = [&](const std::map<std::string, std::set<int>>& m) {
    auto it = m.find(id);
    return it == m.end() ? kNone : it->second;
  };
  const std::set<int> booked = find(booked_items);
  const std::set<int> refunded = find(refunded_items);
  std::set<int> unknown;  // outcome unknown: may have booked
  for (const ItemRecord& row : items) {
    // Nested, the rows of "fan" are the rows of seats (their booking steps
    // are in the rows of "fan[<r>].rows").
    int item = static_cast<int>(row.index);
    if (row.map_path.starts_with("fan[")) {
      item += std::atoi(row.map_path.c_str() + 4) * kFanOutRowSeats;
    } else if (saga.workflow.starts_with("t-fanout-nested")) {
      continue;
    }
    const nlohmann::json& step = row.body["steps"][0];
    const std::string kind = step.contains("error")
                                 ? step["error"].value("kind", std::string())
                                 : std::string();
    if (kind == kAbandonedErrorKind || kind == "timeout") unknown.insert(item);
  }
  if (saga.state == SagaState::kCompleted &&
      booked.size() != static_cast<size_t>(kFanOutItems)) {
    out->push_back({id, "completed with " + std::to_string(booked.size()) +
                            " of " + std::to_string(kFanOutItems) +
                            " items booked"});
  }
  const bool undone =
      saga.state == SagaState::kCompensated ||
      (saga.state == SagaState::kCancelled && saga.compensate_on_cancel);
  for (int item : booked) {
    if (undone && refunded.count(item) == 0) {
      out->push_back({id, "item " + std::to_string(item) +
                              " was booked and not refunded"});
    }
  }
  for (int item : refunded) {
    if (booked.count(item) == 0 && unknown.count(item) == 0) {
      out->push_back({id, "item " + std::to_string(item) +
                              " was refunded but never booked"});
    }
  }
  if (!undone && !refunded.empty()) {
    out->push_back({id, std::string(SagaStateName(saga.state)) +
                            " but items were refunded"});
  }
}

}  // namespace

std::vector<Violation> CheckInvariants(const Options& options,
                                       const std::string& store_dir,
                                       const Ledger& ledger,
                                       const TestHttpServer& endpoint,
                                       Stats* stats) {
  std::vector<Violation> out;
  // Side effects, by attempt key: a repeat is a duplicate. An attempt runs
  // again only in a new server process, after a fault cut it off, so two
  // deliveries of one key within one process's lifetime are a violation.
  std::map<std::string, std::vector<size_t>> by_key;  // request positions
  std::set<std::string> booked, refunded;
  std::map<std::string, std::set<int>> booked_items, refunded_items;
  const std::vector<TestHttpServer::Request> requests = endpoint.requests();
  for (size_t i = 0; i < requests.size(); ++i) {
    const TestHttpServer::Request& r = requests[i];
    const std::string key = r.header("idempotency-key");
    if (key.empty()) continue;
    by_key[key].push_back(i);
    // A booking answered 503 ("down", an outage) was not made: the step
    // fails, and has nothing to undo.
    if (r.path.starts_with("/book") && (r.status < 200 || r.status > 299)) {
      continue;
    }
    if (r.path.starts_with("/book")) booked.insert(SagaOf(key));
    if (r.path.starts_with("/refund")) refunded.insert(SagaOf(key));
    if (const int item = FanOutItem(key); item >= 0) {
      (r.path.starts_with("/book") ? booked_items : refunded_items)[SagaOf(key)]
          .insert(item);
    }
  }
  const std::vector<size_t>& marks = stats->restart_marks;  // ascending
  for (const auto& [key, at] : by_key) {
    stats->duplicates += at.size() - 1;
    for (size_t j = 1; j < at.size(); ++j) {
      // A restart mark m in (at[j-1], at[j]]: request at[j-1] came from an
      // earlier process than request at[j].
      auto m = std::upper_bound(marks.begin(), marks.end(), at[j - 1]);
      if (m == marks.end() || *m > at[j]) {
        out.push_back({SagaOf(key), "side effect " + key +
                                        " was delivered twice by one server "
                                        "process (requests " +
                                        std::to_string(at[j - 1]) + " and " +
                                        std::to_string(at[j]) + ")"});
      }
    }
  }

  auto opened =
      OpenRocksStore({.path = store_dir, .mode = OpenMode::kReadOnly});
  if (!opened.ok()) {
    out.push_back({"", "store does not open: " + opened.status().ToString()});
    return out;
  }
  Store& store = **opened;
  for (const auto& [id, start] : ledger.starts) {
    auto rec = store.GetSaga(id);
    if (!rec.ok()) {
      out.push_back(
          {id, "acknowledged start lost: " + rec.status().ToString()});
      continue;
    }
    auto log = store.ReadLog(id, 1, 100000);
    if (!log.ok()) {
      out.push_back({id, "log unreadable: " + log.status().ToString()});
      continue;
    }
    CheckLog(id, *rec, *log, &out);
    auto saga = FromRecord(*rec);
    if (!saga.ok()) {
      out.push_back(
          {id, "snapshot does not decode: " + saga.status().ToString()});
      continue;
    }
    CheckCompensations(id, *saga, booked, refunded, &out);
    if (saga->workflow.starts_with("t-fanout")) {
      auto items = store.ReadItems(id);
      if (!items.ok()) {
        out.push_back({id, "items unreadable: " + items.status().ToString()});
        continue;
      }
      CheckFanOut(id, *saga, *items, booked_items, refunded_items, &out);
    }
  }
  for (const auto& [key, id] : ledger.saga_by_key) {
    auto owner = store.LookupIdempotency(key);
    if (!owner.ok() || *owner != id) {
      out.push_back({id, "idempotency key " + key + " does not lead to it"});
    }
  }
  store.Close().IgnoreError();
  opened->reset();

  // The operator's own consistency check must find nothing.
  const std::string cmd = "'" + options.admin + "' verify --data-dir '" +
                          store_dir + "' > '" + options.workdir +
                          "/verify.txt' 2>&1";
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    out.push_back({"", "cde-admin verify reported problems (exit " +
                           std::to_string(WEXITSTATUS(rc)) + "), see " +
                           options.workdir + "/verify.txt"});
  }
  return out;
}

}  // namespace cde::torture
