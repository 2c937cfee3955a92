// cde-embed-example: the C++ embedding API in one page. Opens an engine on a
// data dir, registers a native action, registers a workflow that uses it
// with a compensation, starts a saga and waits for it to finish.
//
//   cde-embed-example [DATA_DIR]       (default ./cde-embed-data)
#include <uv.h>

#include <cstdio>
#include <thread>

#include "engine/engine.h"

int main(int argc, char** argv) {
  uv_loop_t loop;
  uv_loop_init(&loop);

  cde::EngineOptions options;
  options.data_dir = argc > 1 ? argv[1] : "./cde-embed-data";
  // A native action: charges a card on another thread and reports back.
  // `done` may be called from any thread, exactly once.
  options.actions["charge-card"] = [](const cde::AttemptRequest& req,
                                      cde::ActionDone done) {
    std::thread([req, done] {
      const double amount = req.params.at("amount").get<double>();
      // A real charge would pass req.idempotency_key to the payment API.
      done(cde::ActionResult::Success(
          {{"charge_id", "ch-" + req.idempotency_key}, {"amount", amount}}));
    }).detach();
  };
  options.actions["refund"] = [](const cde::AttemptRequest& req,
                                 cde::ActionDone done) {
    std::printf("refunding %s\n",
                req.params.at("charge").get<std::string>().c_str());
    done(cde::ActionResult::Success(nullptr));
  };
  auto opened = cde::Engine::Open(&loop, std::move(options));
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    return 1;
  }
  cde::Engine& engine = **opened;

  const nlohmann::json definition = {
      {"name", "checkout"},
      {"version", 1},
      {"steps",
       {{{"name", "charge"},
         {"action", "charge-card"},
         {"params", {{"amount", "${input.amount}"}}},
         {"compensate",
          {{"action", "refund"},
           {"params", {{"charge", "${steps.charge.output.charge_id}"}}}}}},
        {{"name", "confirm"},
         {"action", "echo"},
         {"params",
          {{"message", "charged ${steps.charge.output.charge_id}"}}}}}}};

  int exit_code = 1;
  engine.RegisterWorkflow(
      definition, [&](cde::Result<cde::DefinitionRecord> r) {
        if (!r.ok()) {
          std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
          return;
        }
        engine.Start(
            {.workflow = "checkout",
             .input = {{"amount", 12.5}},
             .idempotency_key = "order-1"},
            [&](cde::Result<cde::StartResult> started) {
              if (!started.ok()) {
                std::fprintf(stderr, "%s\n",
                             started.status().ToString().c_str());
                return;
              }
              std::printf("saga %s %s\n", started->saga_id.c_str(),
                          started->created ? "started" : "already existed");
              const std::string id = started->saga_id;
              if (engine.FindActive(id) == nullptr) {
                exit_code = 0;  // finished before (an earlier run)
                return;
              }
              auto watch = std::make_shared<uint64_t>();
              *watch = engine.Watch(id, [&, watch](const cde::Saga& saga) {
                if (!cde::IsTerminal(saga.state)) return;
                std::printf("saga %s is %s: %s\n", saga.id.c_str(),
                            std::string(cde::SagaStateName(saga.state)).c_str(),
                            saga.steps[1].output.dump().c_str());
                engine.Unwatch(*watch);
                exit_code = saga.state == cde::SagaState::kCompleted ? 0 : 1;
              });
            });
      });
  // Run until the saga finishes, then shut down cleanly.
  while (exit_code == 1 && uv_run(&loop, UV_RUN_ONCE) != 0) {
    if (engine.stats().active_by_state.empty() && exit_code == 0) break;
  }
  cde::Status closed = cde::ShutdownAndWait(&loop, std::move(opened).value());
  uv_loop_close(&loop);
  return closed.ok() ? exit_code : 1;
}
