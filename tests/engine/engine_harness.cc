#include "tests/engine/engine_harness.h"

namespace cde::test {

NativeAction HeldAction::AsAction() {
  return [this](const AttemptRequest& req, ActionDone done) {
    std::lock_guard lock(mu_);
    requests_.push_back(req);
    pending_.push_back(std::move(done));
  };
}

size_t HeldAction::calls() const {
  std::lock_guard lock(mu_);
  return requests_.size();
}

std::vector<AttemptRequest> HeldAction::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

size_t HeldAction::pending() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

bool HeldAction::Complete(ActionResult result) {
  ActionDone done;
  {
    std::lock_guard lock(mu_);
    if (pending_.empty()) return false;
    done = std::move(pending_.front());
    pending_.erase(pending_.begin());
  }
  done(std::move(result));
  return true;
}

EngineHarness::EngineHarness() {
  uv_loop_init(&loop_);
  uv_timer_init(&loop_, &tick_);
  uv_timer_start(
      &tick_, [](uv_timer_t*) {}, 5, 5);
  uv_unref(reinterpret_cast<uv_handle_t*>(&tick_));
}

EngineHarness::~EngineHarness() {
  if (engine_) Close().IgnoreError();
  uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
}

Status EngineHarness::Open(const std::string& data_dir,
                           std::map<std::string, NativeAction> actions,
                           int64_t timer_window_ms, bool run_sagas,
                           ActionPolicy action_policy) {
  EngineOptions options;
  options.action_policy = std::move(action_policy);
  options.timer_window_ms = timer_window_ms;
  options.run_sagas = run_sagas;
  options.data_dir = data_dir;
  options.actions = std::move(actions);
  return Open(std::move(options));
}

Status EngineHarness::Open(EngineOptions options) {
  // The server's default, in the test's working directory, would be one
  // store for every test there: its rows carried from run to run, and two
  // tests run at once (ctest -j) refused each other's RocksDB lock.
  if (!options.store && options.data_dir == EngineOptions().data_dir) {
    return Status::InvalidArgument(
        "EngineHarness: set data_dir (\"\" for a memory store), not the "
        "server's default " +
        options.data_dir);
  }
  if (options.data_dir.empty()) options.store = NewMemoryStore();
  auto engine = Engine::Open(&loop_, std::move(options));
  if (!engine.ok()) return engine.status();
  engine_ = std::move(engine).value();
  return Status::OK();
}

Status EngineHarness::Close() {
  return ShutdownAndWait(&loop_, std::move(engine_));
}

Status EngineHarness::Close(ShutdownOptions options,
                            const std::function<void()>& meanwhile) {
  std::optional<Status> result;
  engine_->Shutdown(options, [&result](Status s) { result = s; });
  if (meanwhile) meanwhile();
  while (!result) uv_run(&loop_, UV_RUN_ONCE);
  engine_.reset();
  uv_run(&loop_, UV_RUN_NOWAIT);
  return *result;
}

bool EngineHarness::RunUntil(const std::function<bool()>& done,
                             int timeout_ms) {
  uv_ref(reinterpret_cast<uv_handle_t*>(&tick_));
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool ok = done();
  while (!ok && std::chrono::steady_clock::now() < deadline) {
    uv_run(&loop_, UV_RUN_ONCE);
    ok = done();
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(&tick_));
  return ok;
}

bool EngineHarness::Settle() {
  return RunUntil([&] {
    const EngineStats s = engine_->stats();
    return s.work_in_flight == s.attempts_in_flight;
  });
}

bool EngineHarness::Pass(ManualClock& clock, int64_t ms) {
  const int64_t until = clock.MonotonicMs() + ms;
  for (;;) {
    if (!Settle()) return false;
    const int64_t next = clock.NextDueIn();
    if (next < 0 || clock.MonotonicMs() + next > until) break;
    clock.Advance(next);  // fires the timers due then
  }
  clock.Advance(until - clock.MonotonicMs());
  return Settle();
}

template <typename T, typename Call>
Result<T> RunCall(EngineHarness& h, Call call) {
  std::optional<Result<T>> out;
  call([&](Result<T> r) { out.emplace(std::move(r)); });
  if (!h.RunUntil([&] { return out.has_value(); })) {
    return Status::Aborted("no answer within the timeout");
  }
  return std::move(*out);
}

Result<DefinitionRecord> EngineHarness::Register(const nlohmann::json& def,
                                                 DefinitionOrigin origin,
                                                 const std::string& by) {
  return RunCall<DefinitionRecord>(
      *this, [&](auto cb) { engine_->RegisterWorkflow(def, origin, by, cb); });
}

Result<StartResult> EngineHarness::Start(StartRequest request) {
  return RunCall<StartResult>(
      *this, [&](auto cb) { engine_->Start(std::move(request), cb); });
}

Result<SagaState> EngineHarness::Cancel(const std::string& id, bool compensate,
                                        const std::string& by) {
  return RunCall<SagaState>(
      *this, [&](auto cb) { engine_->Cancel(id, compensate, by, cb); });
}

Result<SagaState> EngineHarness::Replay(const std::string& id,
                                        const std::string& from_step,
                                        const std::string& by) {
  return RunCall<SagaState>(
      *this, [&](auto cb) { engine_->Replay(id, from_step, by, cb); });
}

Wait OnlyWait(const Saga* saga) {
  if (saga == nullptr || saga->waits.empty()) return {};
  EXPECT_EQ(saga->waits.size(), 1u);
  return saga->waits.front();
}

Result<SagaRecord> EngineHarness::AwaitInactive(const std::string& id,
                                                int timeout_ms) {
  if (!RunUntil([&] { return engine_->FindActive(id) == nullptr; },
                timeout_ms)) {
    const Saga* s = engine_->FindActive(id);
    std::string waits;
    for (const Wait& w : s->waits) {
      waits += " " + std::string(WaitKindName(w.kind)) + " " + w.path;
    }
    return Status::Aborted(
        "saga still " + std::string(SagaStateName(s->state)) + ", waiting for" +
        (waits.empty() ? " nothing" : waits));
  }
  // Let the commit writer's last acknowledgement settle.
  return engine_->store().GetSaga(id);
}

Result<SagaRecord> EngineHarness::AwaitStored(const std::string& id,
                                              SagaState state, int timeout_ms) {
  Result<SagaRecord> last = Status::NotFound(id);
  const bool reached = RunUntil(
      [&] {
        last = engine_->store().GetSaga(id);
        return last.ok() && last->state == state;
      },
      timeout_ms);
  if (reached || !last.ok()) return last;
  // A test that waited for a state it never saw fails on the status alone.
  return Status::Aborted("saga " + id + " is still " +
                         std::string(SagaStateName(last->state)) + ", not " +
                         std::string(SagaStateName(state)));
}

std::vector<std::string> EngineHarness::LogTypes(const std::string& id) {
  std::vector<std::string> out;
  auto log = engine_->store().ReadLog(id, 1, 10000);
  if (!log.ok()) return {"<" + log.status().ToString() + ">"};
  for (const auto& e : *log) out.push_back(e.type);
  return out;
}

}  // namespace cde::test
