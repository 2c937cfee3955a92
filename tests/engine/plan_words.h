// A plan in words, for the planner's tests: the log events it writes and
// what the engine is to do once it has committed.
#ifndef CDE_TESTS_ENGINE_PLAN_WORDS_H_
#define CDE_TESTS_ENGINE_PLAN_WORDS_H_

#include <string>
#include <vector>

#include "engine/transitions.h"

namespace cde::test {

// The plan's events by name: "saga_started", "attempt_started", ...
inline std::vector<std::string> Types(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& e : p.events) out.emplace_back(EventKindName(e.kind));
  return out;
}

// What the engine is to do after the commit: "run flight#1", "undo
// flight#1", "timer backoff hotel#2", "stop seat#1", "finish".
inline std::vector<std::string> Actions(const Plan& p) {
  std::vector<std::string> out;
  for (const PlanAction& a : p.actions) {
    const std::string attempt =
        a.attempt.path + "#" + std::to_string(a.attempt.attempt);
    switch (a.kind) {
      case PlanAction::Kind::kRunAttempt:
        out.push_back((a.attempt.compensation ? "undo " : "run ") + attempt);
        break;
      case PlanAction::Kind::kArmTimer:
        out.push_back("timer " + std::string(TimerKindName(a.timer.kind)) +
                      " " + attempt);
        break;
      case PlanAction::Kind::kStopAttempt:
        out.push_back("stop " + attempt);
        break;
      case PlanAction::Kind::kFinish:
        out.push_back("finish");
        break;
    }
  }
  return out;
}

}  // namespace cde::test

#endif  // CDE_TESTS_ENGINE_PLAN_WORDS_H_
