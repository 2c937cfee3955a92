// The kinds of record the engine writes about a saga: the events of its log
// and its durable timers. Each kind has one name, the one the store, log
// lines, metrics, MCP and cde-admin show; nothing else spells it.
#ifndef CDE_ENGINE_KINDS_H_
#define CDE_ENGINE_KINDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cde {

// docs/storage-format.md lists what each event's data holds.
enum class EventKind : uint8_t {
  kSagaStarted,
  kSagaQueued,    // waits for a slot under max_concurrency
  kSagaDequeued,  // got its slot
  kAttemptStarted,
  kAttemptFailed,  // one attempt failed; a retry may follow
  kStepSucceeded,
  kStepFailed,  // failed for good
  kCompensationSucceeded,
  kCompensationFailed,
  kSagaCompensating,
  kCancelRequested,
  kTimerFired,
  kReplayed,
  kCheckpoint,  // a graceful shutdown cut an attempt off
  kSagaCompleted,
  kSagaCompensated,
  kSagaCancelled,
  kSagaParked,
  kSagaPoisoned,  // could not be decoded or advanced: parked as poison
  kStepStopped,   // a step in another branch failed for good: this one's
                  // retry or sleep is cut, its attempt in flight awaited
                  // (no longer moving the saga forward) before its undo
  kMapStarted,    // a map step's items are known: how many
  kItemFailed,    // an item of a map step failed for good (tolerated or not)
};
std::string_view EventKindName(EventKind kind);
// nullopt for a name this build does not know (a newer binary's event).
std::optional<EventKind> EventKindFromName(std::string_view name);

// How an event reads to an operator, for tools that colour a log.
enum class EventTone { kProgress, kGood, kBad };
EventTone ToneOf(EventKind kind);

// The durable timers of a saga.
enum class TimerKind : uint8_t {
  kBackoff,  // the wait before a retry
  kSleep,    // a `sleep` step
  kRedrive,  // a parked saga's automatic replay (dlq.auto_replay)
};
std::string_view TimerKindName(TimerKind kind);
std::optional<TimerKind> TimerKindFromName(std::string_view name);

// A stored timer row's name: its kind, then ':' and the path of the step it
// belongs to ("backoff:book", "sleep:nap"; a saga's own timer is just
// "redrive"). Before format 3 a row was named by its kind alone.
std::string TimerRowName(TimerKind kind, std::string_view path);
struct TimerRowNameParts {
  TimerKind kind;
  std::string path;  // "" for a saga's own timer
};
// The parts of a timer row name; nullopt if it names no timer kind.
std::optional<TimerRowNameParts> ParseTimerRowName(std::string_view name);

// Why a saga is in the dead-letter queue; a DLQ row's `reason` (and the
// cde_sagas_parked_total label) is its name.
enum class DlqReason : uint8_t {
  kStepFailed,          // a step failed for good under on_failure: park
  kCompensationFailed,  // a compensation failed for good
  kPoison,              // could not be decoded or advanced
};
std::string_view DlqReasonName(DlqReason reason);
std::optional<DlqReason> DlqReasonFromName(std::string_view name);

}  // namespace cde

#endif  // CDE_ENGINE_KINDS_H_
