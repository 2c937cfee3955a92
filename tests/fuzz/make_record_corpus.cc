// Writes the seed corpus of fuzz_record_decode: records of every kind,
// encoded by the project's own encoders (storage/records.h, ToRecord of
// engine/saga.h), plus a log key, a saga id and a traceparent.
//
//   build-fuzz/tests/fuzz/make_record_corpus
//   tests/fuzz/corpus/fuzz_record_decode
//
// Rerun it when the record format changes; the files are small and stable
// (fixed times and ids).
#include <cstdio>
#include <fstream>
#include <string>

#include "engine/saga.h"
#include "storage/cbor_writer.h"
#include "storage/keys.h"
#include "storage/records.h"

namespace {

using namespace cde;
using nlohmann::json;

constexpr const char* kSagaId = "01J9ZK3V8Q4T6W2X5Y7Z9A1B3C";

bool Write(const std::string& dir, const std::string& name,
           const std::string& bytes) {
  std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

// A saga in the middle of compensating, with most optional fields set.
Saga Compensating() {
  Saga s;
  s.id = kSagaId;
  s.workflow = "trip-booking";
  s.version = 2;
  s.state = SagaState::kCompensating;
  s.created_ms = 1735689600000;
  s.updated_ms = 1735689600450;
  s.last_seq = 9;
  s.idempotency_key = "order-1042";
  s.correlation_id = "req-7";
  s.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  s.input = {{"trip_id", "T-1"}, {"nights", 3}, {"price", 12.5}};
  StepState flight;
  flight.status = StepStatus::kSucceeded;
  flight.compensation = CompensationStatus::kRunning;
  flight.attempts = 1;
  flight.compensation_attempts = 2;
  flight.output = {{"pnr", "XYZ"}};
  flight.compensation_error = {"http_503", "unavailable"};
  flight.started_ms = 1735689600010;
  flight.finished_ms = 1735689600100;
  StepState hotel;
  hotel.status = StepStatus::kFailed;
  hotel.attempts = 3;
  hotel.error = {"http_409", "no rooms"};
  hotel.started_ms = 1735689600110;
  hotel.finished_ms = 1735689600400;
  s.steps = {flight, hotel, StepState{}};
  s.waits = {{Wait::Kind::kBackoff, "flight", true, 3, 1735689600800}};
  s.failure = {"http_409", "no rooms"};
  s.failed_step = 1;
  s.cancel_requested = true;
  s.compensate_on_cancel = true;
  s.replay_count = 1;
  s.checkpointed = true;
  return s;
}

// A fresh running saga waiting on its first attempt.
Saga Running() {
  Saga s;
  s.id = kSagaId;
  s.workflow = "echo";
  s.version = 1;
  s.created_ms = 1735689600000;
  s.updated_ms = 1735689600000;
  s.last_seq = 2;
  s.input = json::object();
  s.steps = {StepState{StepStatus::kRunning, 1}};
  s.waits = {{Wait::Kind::kAttempt, "echo", false, 1, 0}};
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  bool ok = true;
  ok &= Write(dir, "saga_compensating", EncodeSaga(ToRecord(Compensating())));
  ok &= Write(dir, "saga_running", EncodeSaga(ToRecord(Running())));
  SagaRecord done = ToRecord(Running());
  done.state = SagaState::kCompleted;
  done.body = {{"input", nullptr}, {"steps", json::array()}};
  ok &= Write(dir, "saga_completed", EncodeSaga(done));
  ok &= Write(dir, "log_saga_started",
              EncodeLog({kSagaId,
                         1,
                         1735689600000,
                         "saga_started",
                         {{"workflow", "trip-booking"},
                          {"version", 2},
                          {"input", {{"trip_id", "T-1"}}},
                          {"idempotency_key", "order-1042"}}}));
  ok &= Write(dir, "log_step_succeeded",
              EncodeLog({kSagaId,
                         4,
                         1735689600100,
                         "step_succeeded",
                         {{"step", "reserve-flight"},
                          {"attempt", 1},
                          {"output", {{"pnr", "XYZ"}, {"seats", {11, 12}}}}}}));
  ok &= Write(dir, "dlq",
              EncodeDlq({kSagaId, "retry-park-demo", 1, "step_failed", "charge",
                         "http_500: boom", 5, 1735689601000, 2}));
  ok &= Write(
      dir, "timer_backoff",
      EncodeTimer(
          {1735689600800, kSagaId, "backoff", {{"step", 0}, {"attempt", 3}}}));
  ok &= Write(
      dir, "definition",
      EncodeDefinition({"echo",
                        1,
                        1735689500000,
                        {{"name", "echo"},
                         {"version", 1},
                         {"steps",
                          {{{"name", "say"},
                            {"action", "echo"},
                            {"params", {{"text", "${input.text}"}}}}}}}}));
  ok &= Write(dir, "idempotency", EncodeIdempotency(kSagaId));
  ok &= Write(dir, "format_version", EncodeFormatVersion(kFormatVersion));
  ok &= Write(dir, "log_key", LogKey(kSagaId, 258));
  {
    // Format 8: a transition's events and a patch of the snapshot.
    std::string row;
    LogRowWriter writer(&row, 1, /*with_patch=*/true);
    const json data = {{"step", "pay"}, {"attempt", 1}};
    writer.Add(kSagaId, 9, 1735689600000, "attempt_started", data);
    const json patch = {
        {"elements",
         {{"steps", {{1, {{"attempts", 1}, {"status", "running"}}}}}}},
        {"set", {{"replayed_by", "ops"}}},
        {"unset", {"checkpointed"}},
        {"updated_ms", 1735689600000}};
    writer.Patch([](const void* p,
                    CborWriter& w) { w.Json(*static_cast<const json*>(p)); },
                 &patch);
    ok &= Write(dir, "log_row_patched", row);
  }
  ok &= Write(dir, "log_row",
              EncodeLogRow({{kSagaId,
                             7,
                             1735689600000,
                             "step_succeeded",
                             {{"step", "book"}, {"output", {{"id", 4}}}}},
                            {kSagaId,
                             8,
                             1735689600000,
                             "attempt_started",
                             {{"step", "pay"}, {"attempt", 1}}}}));
  ok &= Write(dir, "item_key", ItemKey(kSagaId, "book.eu.fan", 70000));
  {
    ItemState item;
    item.status = StepStatus::kFailed;
    item.compensation = CompensationStatus::kSucceeded;
    item.error = {"http_409", "sold out"};
    item.steps.resize(2);
    item.steps[0].status = StepStatus::kSucceeded;
    item.steps[0].output = {{"seat", "12A"}};
    item.steps[1].status = StepStatus::kFailed;
    item.steps[1].attempts = 3;
    ok &= Write(dir, "item", EncodeItem(ItemToJson(item)));
  }
  ok &= Write(dir, "saga_id", kSagaId);
  ok &= Write(dir, "traceparent",
              "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  if (!ok) {
    std::fprintf(stderr, "cannot write into %s\n", dir.c_str());
    return 1;
  }
  return 0;
}
