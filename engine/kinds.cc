#include "engine/kinds.h"

#include <array>
#include <utility>

namespace cde {
namespace {

constexpr std::array<std::pair<EventKind, std::string_view>, 22> kEventNames{{
    {EventKind::kSagaStarted, "saga_started"},
    {EventKind::kSagaQueued, "saga_queued"},
    {EventKind::kSagaDequeued, "saga_dequeued"},
    {EventKind::kAttemptStarted, "attempt_started"},
    {EventKind::kAttemptFailed, "attempt_failed"},
    {EventKind::kStepSucceeded, "step_succeeded"},
    {EventKind::kStepFailed, "step_failed"},
    {EventKind::kCompensationSucceeded, "compensation_succeeded"},
    {EventKind::kCompensationFailed, "compensation_failed"},
    {EventKind::kSagaCompensating, "saga_compensating"},
    {EventKind::kCancelRequested, "cancel_requested"},
    {EventKind::kTimerFired, "timer_fired"},
    {EventKind::kReplayed, "replayed"},
    {EventKind::kCheckpoint, "checkpoint"},
    {EventKind::kSagaCompleted, "saga_completed"},
    {EventKind::kSagaCompensated, "saga_compensated"},
    {EventKind::kSagaCancelled, "saga_cancelled"},
    {EventKind::kSagaParked, "saga_parked"},
    {EventKind::kSagaPoisoned, "saga_poisoned"},
    {EventKind::kStepStopped, "step_stopped"},
    {EventKind::kMapStarted, "map_started"},
    {EventKind::kItemFailed, "item_failed"},
}};

constexpr std::array<std::pair<TimerKind, std::string_view>, 3> kTimerNames{{
    {TimerKind::kBackoff, "backoff"},
    {TimerKind::kSleep, "sleep"},
    {TimerKind::kRedrive, "redrive"},
}};

constexpr std::array<std::pair<DlqReason, std::string_view>, 3> kDlqReasons{{
    {DlqReason::kStepFailed, "step_failed"},
    {DlqReason::kCompensationFailed, "compensation_failed"},
    {DlqReason::kPoison, "poison"},
}};

template <typename Kind, size_t N>
std::string_view NameIn(
    const std::array<std::pair<Kind, std::string_view>, N>& names, Kind kind) {
  for (const auto& [k, name] : names) {
    if (k == kind) return name;
  }
  return "unknown";
}

template <typename Kind, size_t N>
std::optional<Kind> KindIn(
    const std::array<std::pair<Kind, std::string_view>, N>& names,
    std::string_view name) {
  for (const auto& [k, n] : names) {
    if (n == name) return k;
  }
  return std::nullopt;
}

}  // namespace

std::string_view EventKindName(EventKind kind) {
  return NameIn(kEventNames, kind);
}
std::optional<EventKind> EventKindFromName(std::string_view name) {
  return KindIn(kEventNames, name);
}

EventTone ToneOf(EventKind kind) {
  switch (kind) {
    case EventKind::kAttemptFailed:
    case EventKind::kStepFailed:
    case EventKind::kItemFailed:
    case EventKind::kCompensationFailed:
    case EventKind::kSagaParked:
    case EventKind::kSagaPoisoned:
      return EventTone::kBad;
    case EventKind::kSagaCompleted:
      return EventTone::kGood;
    default:
      return EventTone::kProgress;
  }
}

std::string_view TimerKindName(TimerKind kind) {
  return NameIn(kTimerNames, kind);
}
std::optional<TimerKind> TimerKindFromName(std::string_view name) {
  return KindIn(kTimerNames, name);
}

std::string TimerRowName(TimerKind kind, std::string_view path) {
  std::string name(TimerKindName(kind));
  if (!path.empty()) {
    name += ':';
    name += path;
  }
  return name;
}

std::optional<TimerRowNameParts> ParseTimerRowName(std::string_view name) {
  const size_t colon = name.find(':');
  const auto kind = TimerKindFromName(name.substr(0, colon));
  if (!kind) return std::nullopt;
  return TimerRowNameParts{*kind, colon == std::string_view::npos
                                      ? std::string()
                                      : std::string(name.substr(colon + 1))};
}

std::string_view DlqReasonName(DlqReason reason) {
  return NameIn(kDlqReasons, reason);
}
std::optional<DlqReason> DlqReasonFromName(std::string_view name) {
  return KindIn(kDlqReasons, name);
}

}  // namespace cde
