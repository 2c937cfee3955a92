// The child of the map crash test. "run" mode starts one saga whose map step
// posts each of ITEMS items to the parent's test server (which records each
// request's Idempotency-Key), reports the acknowledged start on fd 3
// ("ack KEY SAGA FAIL") and then, as items finish, "done N" every 25 items;
// SHAPE "nested" groups the items by 25 under a map step inside the map
// step (progress is then counted in groups, one line per group done);
// the parent SIGKILLs it at a random one of those. "settle" mode resumes
// whatever is in flight, runs until nothing is active, and shuts down
// cleanly. Compensations go through the native action `undo`, which appends
// its attempt's idempotency key to a file: with FAIL, the step after the
// map fails and every item is undone.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/engine.h"

using namespace cde;
using nlohmann::json;

namespace {

// Items per group of the nested shape: fan maps over groups, and a map
// inside it over each group's lines.
constexpr int kLinesPerGroup = 25;

json Fanout(const std::string& url, bool nested) {
  json fast = {{"max_attempts", 5},
               {"initial_backoff_ms", 2},
               {"max_backoff_ms", 20},
               {"jitter", 0.5}};
  json charge = {{"name", "charge"},
                 {"action", "http"},
                 {"retry", fast},
                 {"params",
                  {{"method", "POST"},
                   {"url", url},
                   {"body", {{"item", "${item}"}, {"index", "${index}"}}}}},
                 {"compensate", {{"action", "undo"}, {"retry", fast}}}};
  json map = {{"items", "${input.items}"},
              {"max_concurrency", 32},
              {"steps", json::array({charge})}};
  if (nested) {
    json lines = {{"items", "${item.lines}"},
                  {"max_concurrency", 8},
                  {"steps", json::array({charge})}};
    map = {{"items", "${input.items}"},
           {"max_concurrency", 4},
           {"steps", json::array({{{"name", "lines"}, {"map", lines}}})}};
  }
  return {
      {"name", "fanout"},
      {"version", 1},
      {"steps", json::array({{{"name", "fan"}, {"map", map}},
                             {{"name", "last"},
                              {"action", "fail"},
                              {"params", {{"fail_attempts", "${input.fail}"}}},
                              {"retry", {{"max_attempts", 1}}}}})}};
}

// ITEMS items, flat or as groups of kLinesPerGroup lines.
json Items(int items, bool nested) {
  json list = json::array();
  for (int i = 0; i < items; ++i) {
    const std::string item = "item-" + std::to_string(i);
    if (!nested) {
      list.push_back(item);
    } else if (i % kLinesPerGroup == 0) {
      list.push_back({{"lines", json::array({item})}});
    } else {
      list.back()["lines"].push_back(item);
    }
  }
  return list;
}

void Report(const std::string& line) {
  if (write(3, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    std::_Exit(3);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr,
                 "usage: %s run|settle DATA_DIR UNDO_FILE KEY HTTP_URL ITEMS "
                 "FAIL flat|nested\n",
                 argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const int undo_file = open(argv[3], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (undo_file < 0) return 2;
  NativeAction undo = [undo_file](const AttemptRequest& r, ActionDone done) {
    const std::string line = r.idempotency_key + "\n";
    if (write(undo_file, line.data(), line.size()) < 0) std::_Exit(5);
    done(ActionResult::Success(json::object()));
  };

  uv_loop_t loop;
  uv_loop_init(&loop);
  EngineOptions options;
  options.data_dir = argv[2];
  options.actions["undo"] = undo;
  options.limits.breaker_default = {.failure_threshold = 0, .failure_ratio = 0};
  auto opened = Engine::Open(&loop, std::move(options));
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    return 1;
  }
  Engine& engine = **opened;
  bool stop = false;
  bool acked = mode != "run";  // run: not before its saga is acknowledged
  const std::string key = argv[4];
  const int items = std::atoi(argv[6]);
  const bool fail = std::string(argv[7]) == "1";
  const bool nested = std::string(argv[8]) == "nested";
  auto start = [&engine, &acked, key, items, fail, nested] {
    engine.Start(
        {.workflow = "fanout",
         .input = {{"items", Items(items, nested)}, {"fail", fail ? 1 : 0}},
         .idempotency_key = key},
        [&engine, &acked, key, fail, nested](Result<StartResult> r) {
          if (!r.ok()) {
            std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
            std::_Exit(4);
          }
          acked = true;
          Report("ack " + key + " " + r->saga_id + " " + (fail ? "1" : "0") +
                 "\n");
          // Progress: every 25 items (or every group) done.
          auto reported = std::make_shared<uint32_t>(0);
          const uint32_t step = nested ? 1 : 25;
          engine.Watch(r->saga_id, [reported, step](const Saga& saga) {
            const uint32_t done = saga.steps[0].map.succeeded;
            while (*reported + step <= done) {
              *reported += step;
              Report("done " + std::to_string(*reported) + "\n");
            }
          });
        });
  };
  engine.RegisterWorkflow(
      Fanout(argv[5], nested), [&mode, &start](Result<DefinitionRecord> r) {
        if (!r.ok()) {
          std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
          std::_Exit(1);
        }
        if (mode == "run") start();
      });
  // Run: until killed (or, if the map ends first, until nothing is active).
  uv_timer_t tick;
  uv_timer_init(&loop, &tick);
  struct Ctx {
    Engine* engine;
    bool* acked;
    bool* stop;
  } ctx{&engine, &acked, &stop};
  tick.data = &ctx;
  uv_timer_start(
      &tick,
      [](uv_timer_t* t) {
        auto* c = static_cast<Ctx*>(t->data);
        if (*c->acked && c->engine->stats().active_by_state.empty()) {
          *c->stop = true;
        }
      },
      20, 20);
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
