// The child of the engine crash test. "run" mode starts sagas as fast as it
// can and reports each acknowledged start on fd 3 ("ack KEY SAGA FAIL"), and
// each repeated start ("dup KEY SAGA"); the parent SIGKILLs it at random.
// "settle" mode resumes whatever is in flight, runs until nothing is active,
// and shuts down cleanly. The native action `effect` appends its attempt's
// idempotency key to a file, as does the `exec` step; the `http` step posts
// to the parent's test server, which records its Idempotency-Key. These are
// the side effects the parent audits.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "engine/engine.h"

using namespace cde;
using nlohmann::json;

namespace {

json Mix(const std::string& effects_file, const std::string& url) {
  json fast = {{"max_attempts", 3},
               {"initial_backoff_ms", 2},
               {"max_backoff_ms", 10},
               {"jitter", 0.5}};
  json undo = {{"action", "effect"}, {"retry", fast}};
  return {
      {"name", "mix"},
      {"version", 1},
      {"steps",
       {{{"name", "a"}, {"action", "effect"}, {"compensate", undo}},
        {{"name", "b"}, {"action", "sleep"}, {"params", {{"duration_ms", 15}}}},
        {{"name", "c"},
         {"action", "fail"},
         {"params", {{"fail_attempts", 1}}},
         {"retry", fast}},
        {{"name", "d"},
         {"action", "effect"},
         {"params", {{"fail", "${input.fail}"}}},
         {"retry", fast},
         {"compensate", undo}},
        {{"name", "e"}, {"action", "effect"}},
        {{"name", "x"},
         {"action", "exec"},
         {"retry", fast},
         {"params",
          {{"argv",
            {"/bin/sh", "-c", "echo \"$CDE_IDEMPOTENCY_KEY\" >> \"$EFFECTS\""}},
           {"env", {{"EFFECTS", effects_file}}}}}},
        {{"name", "h"},
         {"action", "http"},
         {"retry", fast},
         {"params",
          {{"method", "POST"},
           {"url", url},
           {"body", {{"saga", "${saga.id}"}}}}}}}}};
}

void Report(const std::string& line) {
  if (write(3, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    std::_Exit(3);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr,
                 "usage: %s run|run-pipelined|settle DATA_DIR EFFECTS_FILE "
                 "SEED HTTP_URL\n",
                 argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  // "run-pipelined": "run" with the pipelined commit writer.
  const bool run = mode == "run" || mode == "run-pipelined";
  const int effects = open(argv[3], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (effects < 0) return 2;
  NativeAction effect = [effects](const AttemptRequest& r, ActionDone done) {
    if (r.params.value("fail", false)) {
      done(ActionResult::Failure("http_503", "refused on purpose"));
      return;
    }
    const std::string line = r.idempotency_key + "\n";
    if (write(effects, line.data(), line.size()) < 0) std::_Exit(5);
    done(ActionResult::Success({{"key", r.idempotency_key}}));
  };

  uv_loop_t loop;
  uv_loop_init(&loop);
  EngineOptions options;
  options.data_dir = argv[2];
  options.commit_pipeline = mode == "run-pipelined";
  options.actions["effect"] = effect;
  // The failures `effect` injects test retries and compensation across
  // crashes; a breaker opening on them would only slow the run down.
  options.limits.breaker_default = {.failure_threshold = 0, .failure_ratio = 0};
  auto opened = Engine::Open(&loop, std::move(options));
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    return 1;
  }
  Engine& engine = **opened;
  bool stop = false;
  engine.RegisterWorkflow(
      Mix(argv[3], argv[5]), [&](Result<DefinitionRecord> r) {
        if (!r.ok()) {
          std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
          std::_Exit(1);
        }
      });

  std::mt19937 rng(static_cast<unsigned>(std::atoi(argv[4])));
  const std::string prefix = std::string("k") + argv[4] + "-";
  int started = 0;
  uv_timer_t tick;
  uv_timer_init(&loop, &tick);
  struct Ctx {
    Engine* engine;
    std::mt19937* rng;
    std::string prefix;
    int* started;
    bool run;
    bool* stop;
  } ctx{&engine, &rng, prefix, &started, run, &stop};
  tick.data = &ctx;
  uv_timer_start(
      &tick,
      [](uv_timer_t* t) {
        auto* c = static_cast<Ctx*>(t->data);
        if (!c->run) {
          if (c->engine->stats().active_by_state.empty()) *c->stop = true;
          return;
        }
        // A new saga, and now and then a repeat of an earlier key.
        const int n = (*c->started)++;
        const bool fail = (*c->rng)() % 4 == 0;
        const std::string key = c->prefix + std::to_string(n);
        c->engine->Start({.workflow = "mix",
                          .input = {{"fail", fail}},
                          .idempotency_key = key},
                         [key, fail](Result<StartResult> r) {
                           if (!r.ok()) return;
                           Report("ack " + key + " " + r->saga_id + " " +
                                  (fail ? "1" : "0") + "\n");
                         });
        if (n > 0 && (*c->rng)() % 5 == 0) {
          const std::string old = c->prefix + std::to_string((*c->rng)() % n);
          c->engine->Start({.workflow = "mix",
                            .input = {{"fail", false}},
                            .idempotency_key = old},
                           [old](Result<StartResult> r) {
                             if (r.ok())
                               Report("dup " + old + " " + r->saga_id + "\n");
                           });
        }
      },
      1, 1);
  while (!stop) uv_run(&loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  Status result = ShutdownAndWait(&loop, std::move(opened).value());
  uv_loop_close(&loop);
  if (!result.ok()) {
    std::fprintf(stderr, "%s\n", result.ToString().c_str());
    return 1;
  }
  return 0;
}
