// EngineHarness: a real engine on a real libuv loop, driven from the test
// thread: calls go in, the loop runs until the expected callback arrives.
#ifndef CDE_TESTS_ENGINE_ENGINE_HARNESS_H_
#define CDE_TESTS_ENGINE_ENGINE_HARNESS_H_

#include <uv.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "tests/test_util.h"

namespace cde::test {

// A native action whose attempts the test completes by hand, and which
// records every call (with its idempotency key).
class HeldAction {
 public:
  NativeAction AsAction();
  size_t calls() const;
  std::vector<AttemptRequest> requests() const;
  // Completes the oldest pending attempt. False if none is pending.
  bool Complete(ActionResult result);
  size_t pending() const;

 private:
  mutable std::mutex mu_;
  std::vector<AttemptRequest> requests_;
  std::vector<ActionDone> pending_;
};

// The wall clock in ms since the epoch: the clock of the engine's due
// times (Wait::due_ms, timer rows).
inline int64_t WallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// How long the harness waits for an expected callback or state by default:
// long enough for a sanitizer build on a loaded machine; a passing test
// never waits it out.
inline constexpr int kDefaultWaitMs = 30000;

class EngineHarness {
 public:
  EngineHarness();
  ~EngineHarness();

  // Opens an engine. `data_dir` empty: a memory store.
  Status Open(const std::string& data_dir,
              std::map<std::string, NativeAction> actions = {},
              int64_t timer_window_ms = 60000, bool run_sagas = true,
              ActionPolicy action_policy = {});
  // With every option given; an empty data_dir: an in-memory store (the
  // default, ./cde-data, is refused: it would be shared by every test).
  Status Open(EngineOptions options);
  // Shuts the engine down cleanly (drain, close, flush).
  Status Close();
  // Shuts down with `options`; `meanwhile` runs once the shutdown has been
  // asked for, before the loop runs again (to act during the grace period).
  Status Close(ShutdownOptions options, const std::function<void()>& meanwhile);

  Engine& engine() { return *engine_; }
  uv_loop_t* loop() { return &loop_; }

  // Runs the loop until `done()` or `timeout_ms` passes; false on timeout.
  bool RunUntil(const std::function<bool()>& done,
                int timeout_ms = kDefaultWaitMs);

  // With a ManualClock (EngineOptions::clock):
  // Runs the loop until the engine does nothing but wait for attempts in
  // flight and for its clock: no commit and no store read pending.
  bool Settle();
  // Lets `ms` pass on `clock` as it would pass for a running engine: the
  // clock moves from one due timer to the next, and the loop settles after
  // each, so what a timer starts (a load from the store, a commit) is done
  // before the next one fires.
  bool Pass(ManualClock& clock, int64_t ms);

  // Synchronous wrappers: run the loop until the callback has answered.
  Result<DefinitionRecord> Register(
      const nlohmann::json& definition,
      DefinitionOrigin origin = DefinitionOrigin::kOperator,
      const std::string& by = "");
  Result<StartResult> Start(StartRequest request);
  // `by`: who asks, as the engine records it ("" = not recorded).
  Result<SagaState> Cancel(const std::string& id, bool compensate = true,
                           const std::string& by = "");
  Result<SagaState> Replay(const std::string& id,
                           const std::string& from_step = "",
                           const std::string& by = "");
  // The stored state of `id` once it is no longer active (or timeout).
  Result<SagaRecord> AwaitInactive(const std::string& id,
                                   int timeout_ms = kDefaultWaitMs);
  std::vector<std::string> LogTypes(const std::string& id);
  // The stored state of `id` once it is `state`; Aborted, naming the state
  // it is in, when it is not by the timeout.
  Result<SagaRecord> AwaitStored(const std::string& id, SagaState state,
                                 int timeout_ms = kDefaultWaitMs);

 private:
  uv_loop_t loop_;
  uv_timer_t tick_;  // wakes the loop so RunUntil can check its condition
  std::unique_ptr<Engine> engine_;
};

// The wait of a saga that runs one step at a time: its only one, or an
// empty wait (kNothing) when it waits for nothing or is not in memory.
Wait OnlyWait(const Saga* saga);

}  // namespace cde::test

#endif  // CDE_TESTS_ENGINE_ENGINE_HARNESS_H_
