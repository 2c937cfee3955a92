#include "engine/dormancy.h"

#include <algorithm>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/kinds.h"
#include "engine/log.h"

namespace cde {

// Rows read per scan. More than fall due in one window on any machine we
// know of; the rest come with the next scan.
constexpr size_t kMaxTimersPerScan = 1'000'000;

Dormancy::Dormancy(Clock& clock, Store& store, int64_t window_ms, Hooks hooks)
    : clock_(clock),
      store_(store),
      window_ms_(window_ms),
      hooks_(std::move(hooks)),
      period_(clock_.NewTimer([this] { Scan(); })) {}

bool Dormancy::BeyondWindow(int64_t due_ms) const {
  return due_ms > clock_.WallMs() + window_ms_;
}

bool Dormancy::MayLeaveMemory(const Saga& saga) const {
  if (saga.waits.empty()) return false;
  // Its map items live in memory beside it, and are not read back here.
  for (const StepState& st : saga.steps) {
    if (st.map.began) return false;
  }
  for (const Wait& w : saga.waits) {
    const bool far =
        (w.kind == Wait::Kind::kSleep || w.kind == Wait::Kind::kBackoff) &&
        BeyondWindow(w.due_ms);
    if (!far) return false;
  }
  return true;
}

void Dormancy::Start() {
  const int64_t period = std::max<int64_t>(1, window_ms_ / 2);
  period_->Start(period, period);
}

void Dormancy::Scan() {
  if (scanning_ || !hooks_.running()) return;
  scanning_ = true;
  const int64_t horizon = clock_.WallMs() + window_ms_;
  // The timer rows due within the window, then (second trip off the loop)
  // the snapshots of the sagas among them that are not in memory.
  auto timers = std::make_shared<Result<std::vector<TimerRecord>>>(
      std::vector<TimerRecord>());
  hooks_.off_loop(
      [this, horizon, timers] {
        *timers = store_.DueTimers(horizon, kMaxTimersPerScan);
      },
      [this, timers] {
        std::vector<TimerRecord> missing;
        if (timers->ok()) {
          for (TimerRecord& t : **timers) {
            const auto timer = ParseTimerRowName(t.name);
            if (timer && timer->kind == TimerKind::kRedrive) {
              hooks_.redrive_near(t.saga_id, t.due_ms);
            } else if (!hooks_.in_memory(t.saga_id)) {
              missing.push_back(std::move(t));
            }
          }
        }
        WakeMissing(std::move(missing));
      });
}

void Dormancy::WakeMissing(std::vector<TimerRecord> rows) {
  if (rows.empty() || !hooks_.running()) {
    scanning_ = false;
    return;
  }
  struct Read {
    std::vector<Saga> sagas;
    // Sagas that no scan will ever wake: rows that do not decode, or a body
    // the engine cannot run. The record to park each with, and why.
    std::vector<std::pair<SagaRecord, std::string>> poisoned;
    std::vector<TimerRecord> stale;  // rows that wake nothing
  };
  auto read = std::make_shared<Read>();
  hooks_.off_loop(
      [this, rows = std::move(rows), read]() mutable {
        // A saga with several rows due is read once, in the order of its
        // first row's due time.
        std::vector<std::string> ids;
        std::unordered_map<std::string, std::vector<TimerRecord*>> rows_of;
        for (TimerRecord& t : rows) {
          auto& of = rows_of[t.saga_id];
          if (of.empty()) ids.push_back(t.saga_id);
          of.push_back(&t);
        }
        auto stale = [&](const std::string& id) {
          for (TimerRecord* t : rows_of[id]) {
            read->stale.push_back(std::move(*t));
          }
        };
        for (const std::string& id : ids) {
          auto record = store_.GetSaga(id);
          if (record.status().IsCorruption()) {
            auto unreadable = store_.DescribeUnreadable(id, record.status());
            if (unreadable.ok()) {
              read->poisoned.push_back(
                  {UnreadableRecord(*unreadable), unreadable->error.message()});
              stale(id);
            } else if (!unreadable.status().IsNotFound()) {
              Log(LogLevel::kError, "engine", "a dormant saga cannot be woken",
                  {.saga_id = id,
                   .extra = {{"error", unreadable.status().ToString()}}});
            }
            continue;
          }
          if (record.status().IsNotFound()) {
            stale(id);  // purged
            continue;
          }
          if (!record.ok()) continue;  // a read that failed: the next scan
          // Parked or ended: a timer row it left behind wakes nothing.
          if (!IsActive(record->state)) {
            stale(id);
            continue;
          }
          Status loaded = LoadLoggedInput(store_, *record);
          auto saga = loaded.ok() ? FromRecord(*record) : Result<Saga>(loaded);
          if (saga.ok()) {
            read->sagas.push_back(std::move(saga).value());
          } else if (saga.status().IsCorruption()) {
            read->poisoned.push_back(
                {std::move(record).value(), saga.status().message()});
            stale(id);
          } else {
            // Left on disk; the next scan tries again (a read that failed
            // may not fail twice), and says so again.
            Log(LogLevel::kError, "engine", "a dormant saga cannot be woken",
                {.saga_id = id,
                 .extra = {{"error", saga.status().ToString()}}});
          }
        }
      },
      [this, read] {
        scanning_ = false;
        if (!hooks_.running()) return;
        for (auto& [record, reason] : read->poisoned) {
          if (!hooks_.in_memory(record.id)) {
            hooks_.poisoned(std::move(record), reason);
          }
        }
        for (Saga& saga : read->sagas) hooks_.wake(std::move(saga));
        // Not those of a saga back in memory meanwhile (a replay): it
        // writes its own rows, and deletes them itself.
        std::erase_if(read->stale, [this](const TimerRecord& t) {
          return hooks_.in_memory(t.saga_id);
        });
        if (!read->stale.empty()) hooks_.stale(std::move(read->stale));
      });
}

void Dormancy::Close(std::function<void()> closed) {
  period_.release()->Close(std::move(closed));
}

}  // namespace cde
