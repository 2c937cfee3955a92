// Micro-benchmarks (Google Benchmark) of the record codecs, of building a
// transition, of planning a step, and of validating a start's input: the
// CPU the loop thread spends before a commit.
#include <benchmark/benchmark.h>

#include "engine/definition.h"
#include "engine/input_schema.h"
#include "engine/transitions.h"
#include "storage/records.h"
#include "storage/saga_id.h"
#include "storage/transition.h"

namespace {

cde::SagaRecord TypicalSaga() {
  cde::SagaIdGenerator gen(1);
  return {gen.Next(1764200000000),
          "trip-booking",
          3,
          cde::SagaState::kRunning,
          1764200000000,
          1764200000450,
          7,
          "order-4711",
          {{"input", {{"trip_id", "T-99"}, {"nights", 3}}},
           {"current_step", 2},
           {"steps",
            {{{"status", "succeeded"}, {"attempts", 1}},
             {{"status", "running"}, {"attempts", 2}}}}}};
}

void BM_EncodeSaga(benchmark::State& state) {
  const cde::SagaRecord saga = TypicalSaga();
  for (auto _ : state) benchmark::DoNotOptimize(cde::EncodeSaga(saga));
}
BENCHMARK(BM_EncodeSaga);

void BM_DecodeSaga(benchmark::State& state) {
  const std::string value = cde::EncodeSaga(TypicalSaga());
  for (auto _ : state) {
    benchmark::DoNotOptimize(cde::DecodeSaga(value, "bench"));
  }
}
BENCHMARK(BM_DecodeSaga);

void BM_BuildStepTransition(benchmark::State& state) {
  const cde::SagaRecord saga = TypicalSaga();
  const cde::LogRecord event{saga.id,
                             8,
                             1764200000451,
                             "step_succeeded",
                             {{"step", "reserve-hotel"},
                              {"attempt", 1},
                              {"output", {{"booking", "H-17"}}}}};
  for (auto _ : state) {
    cde::Transition t;
    t.AppendLog(event);
    t.PutSaga(saga, cde::SagaState::kRunning);
    t.DeleteTimer(1764200000400, saga.id, "backoff");
    benchmark::DoNotOptimize(t.ByteSize());
  }
}
BENCHMARK(BM_BuildStepTransition);

// The loop's share of a saga step: the first of three steps succeeded, so
// the plan records that and starts the second (two log events), and is
// built into its transition, which is then dropped, with the plan.
void PlanStepResult(benchmark::State& state, bool patched,
                    bool reused = false) {
  auto def = cde::ParseDefinition({{"name", "bench"},
                                   {"version", 1},
                                   {"steps",
                                    {{{"name", "one"}, {"action", "noop"}},
                                     {{"name", "two"}, {"action", "noop"}},
                                     {{"name", "three"}, {"action", "noop"}}}}},
                                  {"noop"});
  if (!def.ok()) return state.SkipWithError(def.status().ToString().c_str());
  const int64_t now = 1764200000000;
  const cde::PlanContext ctx{*def, now, 0.5};
  cde::Plan start = cde::PlanStart(ctx, cde::SagaIdGenerator(1).Next(now),
                                   {{"trip", "T-99"}}, "", "", "", "", false);
  start.Build(now);
  const cde::Saga saga = std::move(start.saga);
  std::string body;  // as the engine keeps it from the commit before
  cde::BodyLayout layout;
  {
    cde::CborWriter w(&body);
    cde::WriteSnapshotBody(saga, w, &layout);
  }
  const std::vector<cde::AttemptOutcome> outcomes = {
      {{"one", false, 1}, true, {{"booking", "H-17"}}, {}}};
  std::vector<bool> applied;
  cde::Plan spare;  // what the engine plans into (Plan::Reset)
  for (auto _ : state) {
    std::optional<cde::Plan> fresh;
    cde::Plan* plan = &spare;
    if (!reused) {
      fresh = cde::PlanAttemptResults(ctx, saga, outcomes, &applied);
      plan = &*fresh;
    } else if (!cde::PlanAttemptResultsInto(ctx, saga, outcomes, &applied,
                                            plan)) {
      return state.SkipWithError("the step was not planned");
    }
    cde::Transition t =
        plan->Build(now + 1, patched ? cde::Plan::Base{&saga, &body, &layout}
                                     : cde::Plan::Base{});
    if (patched && plan->wrote_snapshot) {
      return state.SkipWithError("the step wrote a snapshot, not a patch");
    }
    benchmark::DoNotOptimize(t.ByteSize());
  }
}
void BM_PlanStepResult(benchmark::State& state) {
  PlanStepResult(state, false);
}
BENCHMARK(BM_PlanStepResult);
// The same step written as a patch of the snapshot (store format 8), as the
// engine writes a step handed straight on to the next.
void BM_PlanStepResultPatched(benchmark::State& state) {
  PlanStepResult(state, true);
}
BENCHMARK(BM_PlanStepResultPatched);
// The same into a plan an earlier step used, as the engine plans (its saga
// copied into the strings and vectors the plan already has).
void BM_PlanStepResultPatchedReused(benchmark::State& state) {
  PlanStepResult(state, true, true);
}
BENCHMARK(BM_PlanStepResultPatchedReused);

// A typical input schema with two patterns (their programs cached).
void BM_ValidateInputWithPatterns(benchmark::State& state) {
  const nlohmann::json schema = nlohmann::json::parse(R"({
    "type": "object", "required": ["trip", "email"],
    "properties": {
      "trip": {"type": "string", "pattern": "^T-[0-9]{3,8}$"},
      "email": {"type": "string", "pattern": "^[^@ ]+@[^@ ]+\\.[a-z]{2,}$"},
      "seats": {"type": "integer", "minimum": 1, "maximum": 9}}})");
  const nlohmann::json input = {
      {"trip", "T-2026120"}, {"email", "ada@example.org"}, {"seats", 2}};
  for (auto _ : state) {
    benchmark::DoNotOptimize(cde::ValidateInput(schema, input).ok());
  }
}
BENCHMARK(BM_ValidateInputWithPatterns);

}  // namespace

BENCHMARK_MAIN();
