#include "tests/engine/saga_generator.h"

#include <random>
#include <string>

namespace cde::test {

using nlohmann::json;

namespace {

ErrorInfo Error(std::string kind) { return {kind, kind + ": it went wrong"}; }

}  // namespace

Saga SagaWithEveryField() {
  Saga s;
  s.id = "01JSNAPSHOT0000000000000000";
  s.workflow = "trip-booking";
  s.version = 3;
  s.state = SagaState::kCompensating;
  s.created_ms = 1796317646351;
  s.updated_ms = 1796317646999;
  s.last_seq = 300;  // a two-byte CBOR head
  s.idempotency_key = "order-42";
  s.correlation_id = "req-7";
  s.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  s.started_by = "ci-bot";
  s.cancelled_by = "operator";
  s.replayed_by = "admin";
  s.input = {{"city", "Zürich"}, {"nights", 3}, {"ratio", 0.5}, {"x", nullptr}};
  StepState done;
  done.status = StepStatus::kSucceeded;
  done.compensation = CompensationStatus::kSucceeded;
  done.attempts = 2;
  done.compensation_attempts = 1;
  done.output = {{"id", "F-1"}, {"seats", json::array({1, 2})}};
  done.error = Error("timeout");
  done.compensation_error = Error("http_503");
  done.started_ms = 1796317646400;
  done.finished_ms = 1796317646500;
  s.steps.push_back(done);
  StepState failed;
  failed.status = StepStatus::kFailed;
  failed.attempts = 70000;  // a four-byte CBOR head
  failed.error = Error("http_500");
  s.steps.push_back(failed);
  s.waits = {{Wait::Kind::kBackoff, "charge", true, 4, 1796317650000},
             {Wait::Kind::kAttempt, "fan[2].ship", false, 1, 0}};
  s.failure = Error("http_500");
  s.failed_step = 1;
  s.cancel_requested = true;
  s.compensate_on_cancel = false;
  s.replay_count = 2;
  s.checkpointed = true;
  return s;
}

// A saga with each optional field set or not, at random.
Saga GeneratedSaga(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto coin = [&rng] { return (rng() & 1) != 0; };
  auto number = [&rng](int64_t limit) {
    return static_cast<int64_t>(rng() % static_cast<uint64_t>(limit));
  };
  Saga s;
  s.id = "01JGEN" + std::to_string(seed);
  s.workflow = coin() ? "w" : std::string(40, 'w');
  s.version = static_cast<uint32_t>(number(100000));
  s.state = static_cast<SagaState>(1 + number(7));  // kRunning..kCancelled
  s.created_ms = number(int64_t{1} << 42);
  s.updated_ms = s.created_ms + number(1000);
  s.last_seq = static_cast<uint64_t>(number(70000));
  if (coin()) s.idempotency_key = "key-" + std::to_string(rng());
  if (coin()) s.correlation_id = "corr";
  if (coin()) s.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  if (coin()) s.started_by = "someone";
  if (coin()) s.cancelled_by = "someone else";
  if (coin()) s.replayed_by = "a third";
  s.input = coin() ? json::object() : json{{"n", number(1000) - 500}};
  const int steps = static_cast<int>(number(30));
  for (int i = 0; i < steps; ++i) {
    StepState st;
    st.status = static_cast<StepStatus>(number(5));
    if (coin()) st.compensation = static_cast<CompensationStatus>(number(5));
    st.attempts = static_cast<uint32_t>(number(300));
    if (coin()) st.compensation_attempts = static_cast<uint32_t>(number(5));
    if (coin()) st.output = coin() ? json("text") : json{{"k", i}};
    if (coin()) st.error = Error("e" + std::to_string(i));
    if (coin()) st.compensation_error = Error("c" + std::to_string(i));
    if (coin()) st.started_ms = number(int64_t{1} << 42);
    if (coin()) st.finished_ms = number(int64_t{1} << 42);
    s.steps.push_back(std::move(st));
  }
  for (int i = static_cast<int>(number(3)); i-- > 0;) {
    s.waits.push_back({static_cast<Wait::Kind>(1 + number(5)),
                       coin() ? "" : "s" + std::to_string(number(30)), coin(),
                       static_cast<uint32_t>(number(10)),
                       coin() ? 0 : number(int64_t{1} << 42)});
  }
  if (coin()) {
    s.failure = Error("failure");
    s.failed_step = coin() ? -1 : static_cast<int>(number(30));
  }
  if (coin()) {
    s.cancel_requested = true;
    s.compensate_on_cancel = coin();
  }
  if (coin()) s.replay_count = static_cast<uint32_t>(number(1000));
  s.checkpointed = coin();
  return s;
}

}  // namespace cde::test
