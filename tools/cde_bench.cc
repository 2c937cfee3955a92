// cde-bench: end-to-end saga throughput and latency of the embedded engine.
// The workload is "3 sequential steps, each a durable step with a trivial
// body": S sagas, C in flight at a time (each client starts its next saga
// when its previous one completes). Every commit is synced unless --no-sync.
// Prints a table, then one JSON object as the last line.
//
// --workload map: one saga whose map step runs --items noop items,
// --concurrency at a time (the map's max_concurrency); it reports item steps
// per second and the bytes committed per item step. The items are a literal
// array in the definition, or with --items-in-input the saga's input (kept
// in its first log event when over 1 KiB). With --groups G the items are in
// G groups, each mapped by a map step inside the map step.
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "storage/store.h"
#include "tools/bench_util.h"
#include "tools/mcp_http_bench.h"
#include "tools/test_http_server.h"

namespace {

using Clock = std::chrono::steady_clock;
using cde::Percentile;
using nlohmann::json;

// --policy: the secret the http steps send, as an operator would configure.
constexpr char kSecretVar[] = "CDE_BENCH_API_TOKEN";

struct Options {
  std::string workload = "noop";
  int sagas = 20000;
  int concurrency = 64;
  std::string data_dir;
  bool no_sync = false;
  bool no_gather = false;
  bool pipeline = false;
  std::string poll = "adaptive";  // EngineOptions::commit_poll
  int wal_spare_mb = 32;  // StoreOptions::wal_spare_bytes, written at open
  std::string url;        // http workload: the endpoint each step calls
  int items = 10000;      // map workload: items of the one saga's map step
  bool items_in_input = false;
  // map workload: > 0 puts the items in this many groups, each mapped by a
  // map step inside the map step (a map inside a map).
  int groups = 0;
  int recovery = 0;      // > 0: the recovery benchmark with this many sagas
  std::string mcp_http;  // drive a running server over MCP HTTP instead
  std::string token;
  // The workflow is a client's, under the least-privilege policy: http
  // steps send a secret, every attempt is checked against the action
  // policy, every connection against the destination policy, every result
  // is redacted.
  bool policy = false;
};

// The map workload's items: o.items numbers, or with o.groups that many
// {"lines": [...]} groups holding them.
json MapItems(const Options& o) {
  json items = json::array();
  for (int i = 0; i < o.items; ++i) {
    if (o.groups == 0) {
      items.push_back(i);
    } else if (i % ((o.items + o.groups - 1) / o.groups) == 0) {
      items.push_back({{"lines", json::array({i})}});
    } else {
      items.back()["lines"].push_back(i);
    }
  }
  return items;
}

json Workflow(const Options& o) {
  if (o.workload == "map") {
    json item = {{"name", "item"}, {"action", "noop"}};
    json map = {
        {"items", o.items_in_input ? json("${input.items}") : MapItems(o)},
        {"max_concurrency", o.concurrency},
        {"steps", json::array({item})}};
    if (o.groups > 0) {
      // Every group at once, their lines sharing the concurrency.
      const json lines = {
          {"items", "${item.lines}"},
          {"max_concurrency", std::max(1, o.concurrency / o.groups)},
          {"steps", json::array({item})}};
      map["max_concurrency"] = o.groups;
      map["steps"] = json::array({{{"name", "lines"}, {"map", lines}}});
    }
    return {{"name", "bench-map"},
            {"version", 1},
            {"steps", json::array({{{"name", "fan"}, {"map", map}}})}};
  }
  json steps = json::array();
  for (const char* name : {"one", "two", "three"}) {
    json step = {{"name", name},
                 {"action", o.workload == "http" ? "http" : "noop"}};
    if (o.workload == "http") {
      step["params"] = {{"method", "POST"},
                        {"url", o.url},
                        {"body", {{"saga", "${saga.id}"}}}};
      if (o.policy) {
        step["params"]["headers"] = {
            {"Authorization",
             std::string("Bearer ${secret.") + kSecretVar + "}"}};
      }
    }
    steps.push_back(step);
  }
  return {{"name", "bench-" + o.workload}, {"version", 1}, {"steps", steps}};
}

// CPU time of the calling thread.
double ThreadCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// The calling thread's user and system CPU time, in seconds.
struct ThreadTimes {
  double user = 0;
  double system = 0;
};
ThreadTimes CallingThreadTimes() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return {seconds(u.ru_utime), seconds(u.ru_stime)};
}

// Resident set size in bytes, from /proc/self/statm.
uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// Where a run stood when a number of its sagas had finished.
struct Mark {
  bool taken = false;
  Clock::time_point at;
  // Taken on the loop thread: its CPU time (exact), and that time as user
  // and system (the kernel's split, sampled at its clock ticks).
  double loop_cpu = 0;
  ThreadTimes loop_split;
  uint64_t commits = 0;
  int finished = 0;
};

struct Run {
  cde::Engine* engine = nullptr;
  std::string workflow;
  int to_start = 0;
  int finished = 0;
  int errors = 0;
  int clients = 0;
  std::vector<double> latencies_ms;
  uint64_t peak_rss = 0;
  // The steady part of the run, without its ramps: from the fifth of the
  // sagas finished to four fifths.
  int steady_from = 0;
  int steady_to = 0;
  Mark steady_start, steady_end;

  void TakeMark(Mark* mark) {
    *mark = {true,
             Clock::now(),
             ThreadCpuSeconds(),
             CallingThreadTimes(),
             engine->stats().commits,
             finished};
  }

  void StartOne() {
    if (to_start == 0) {
      --clients;
      return;
    }
    --to_start;
    const auto t0 = Clock::now();
    engine->Start({.workflow = workflow},
                  [this, t0](cde::Result<cde::StartResult> r) {
                    if (!r.ok()) {
                      ++errors;
                      return StartOne();
                    }
                    Await(r->saga_id, t0);
                  });
  }

  void Await(const std::string& id, Clock::time_point t0) {
    auto finish = [this, t0](cde::SagaState state) {
      latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      if (state != cde::SagaState::kCompleted) ++errors;
      if (++finished % 1000 == 0)
        peak_rss = std::max(peak_rss, ResidentBytes());
      if (finished == steady_from) TakeMark(&steady_start);
      if (finished == steady_to) TakeMark(&steady_end);
      StartOne();
    };
    const cde::Saga* s = engine->FindActive(id);
    if (s == nullptr) return finish(cde::SagaState::kCompleted);
    auto watch = std::make_shared<uint64_t>(0);
    *watch = engine->Watch(id, [this, watch, finish](const cde::Saga& saga) {
      if (!cde::IsTerminal(saga.state) &&
          saga.state != cde::SagaState::kParked) {
        return;
      }
      engine->Unwatch(*watch);
      finish(saga.state);
    });
  }
};

// Runs `loop` until `done` is set.
void RunUntil(uv_loop_t* loop, const bool& done) {
  while (!done) uv_run(loop, UV_RUN_ONCE);
}

// Starts `n` sagas whose first step sleeps for an hour, closes the engine,
// then times Engine::Open, which resumes them all (snapshots read through
// the state index, timers re-armed), and measures memory per resumed saga.
int RecoveryBench(const std::string& dir, int n, bool sync,
                  uint64_t wal_spare_bytes) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto open = [&] {
    cde::EngineOptions eo;
    eo.data_dir = dir;
    eo.sync = sync;
    eo.wal_spare_bytes = wal_spare_bytes;
    // Keep every sleeper in memory (no dormant sagas): the worst case for
    // recovery time and memory.
    eo.timer_window_ms = 24 * 3600 * 1000;
    auto e = cde::Engine::Open(&loop, std::move(eo));
    if (!e.ok()) {
      std::fprintf(stderr, "cde-bench: %s\n", e.status().ToString().c_str());
      std::exit(1);
    }
    return std::move(e).value();
  };
  {
    auto engine = open();
    bool ok = false;
    engine->RegisterWorkflow({{"name", "sleeper"},
                              {"version", 1},
                              {"steps",
                               {{{"name", "nap"},
                                 {"action", "sleep"},
                                 {"params", {{"duration_ms", 3600000}}}},
                                {{"name", "after"}, {"action", "noop"}}}}},
                             [&](auto r) { ok = r.ok(); });
    RunUntil(&loop, ok);
    int acked = 0;
    int issued = 0;
    std::function<void()> next = [&] {
      if (issued == n) return;
      ++issued;
      engine->Start({.workflow = "sleeper"}, [&](auto r) {
        if (r.ok()) ++acked;
        next();
      });
    };
    for (int i = 0; i < 256; ++i) next();
    while (acked < n) uv_run(&loop, UV_RUN_ONCE);
    cde::ShutdownAndWait(&loop, std::move(engine)).IgnoreError();
  }
  const uint64_t rss_before = ResidentBytes();
  const auto t0 = Clock::now();
  auto engine = open();
  const double open_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  const uint64_t rss_after = ResidentBytes();
  const auto stats = engine->stats();
  const uint64_t resumed = stats.active_by_state.count("running")
                               ? stats.active_by_state.at("running")
                               : 0;
  const double bytes_per_saga =
      resumed ? static_cast<double>(rss_after - rss_before) / resumed : 0;
  std::printf(
      "recovery: %llu sagas resumed (timers armed: %llu) in %.0f ms; "
      "%.0f bytes of resident memory per resumed saga\n",
      static_cast<unsigned long long>(resumed),
      static_cast<unsigned long long>(stats.timers_pending), open_ms,
      bytes_per_saga);
  cde::ShutdownAndWait(&loop, std::move(engine)).IgnoreError();
  uv_loop_close(&loop);
  json out = {{"workload", "recovery"},
              {"sagas", resumed},
              {"open_ms", open_ms},
              {"bytes_per_saga", bytes_per_saga},
              {"errors", static_cast<int>(n - static_cast<int>(resumed))}};
  std::printf("%s\n", out.dump().c_str());
  return resumed == static_cast<uint64_t>(n) ? 0 : 1;
}

// One saga mapping o.items noop items, o.concurrency at a time.
int MapBench(cde::Engine& engine, uv_loop_t* loop, const Options& o,
             const cde::FdatasyncLatency& fdatasync) {
  json input = json::object();
  if (o.items_in_input) input["items"] = MapItems(o);
  const cde::EngineStats before = engine.stats();
  const auto t0 = Clock::now();
  bool done = false;
  cde::SagaState state = cde::SagaState::kRunning;
  std::string id;
  engine.Start({.workflow = "bench-map", .input = std::move(input)},
               [&](cde::Result<cde::StartResult> r) {
                 if (!r.ok()) {
                   std::fprintf(stderr, "cde-bench: %s\n",
                                r.status().ToString().c_str());
                   std::exit(1);
                 }
                 id = r->saga_id;
                 if (engine.FindActive(id) == nullptr) {
                   state = r->state;
                   done = true;
                   return;
                 }
                 auto watch = std::make_shared<uint64_t>(0);
                 *watch = engine.Watch(id, [&, watch](const cde::Saga& saga) {
                   if (cde::IsActive(saga.state)) return;
                   engine.Unwatch(*watch);
                   state = saga.state;
                   done = true;
                 });
               });
  RunUntil(loop, done);
  const double seconds =
      std::chrono::duration<double>(Clock::now() - t0).count();
  const cde::EngineStats after = engine.stats();
  const double commits = static_cast<double>(after.commits - before.commits);
  const double bytes =
      static_cast<double>(after.commit_bytes - before.commit_bytes);
  const double item_steps_per_s = o.items / seconds;
  const double bytes_per_item = o.items ? bytes / o.items : 0;
  std::printf(
      "workload map, 1 saga of %d noop items (in its %s), max_concurrency "
      "%d, %s\n",
      o.items, o.items_in_input ? "input" : "definition", o.concurrency,
      o.no_sync ? "unsynced" : "every commit synced");
  if (o.groups > 0) {
    std::printf(
        "  in %d groups, each mapped by a map step inside the map step, %d "
        "items of each at a time\n",
        o.groups, std::max(1, o.concurrency / o.groups));
  }
  std::printf(
      "  bare fdatasync (300 B append) here: p50 %.3f ms, p99 %.3f ms\n",
      fdatasync.p50_ms, fdatasync.p99_ms);
  std::printf("  %.0f item steps/s (%.3f s), saga %s\n", item_steps_per_s,
              seconds, std::string(cde::SagaStateName(state)).c_str());
  std::printf(
      "  %.0f transitions (%.2f item steps each), %.0f bytes committed per "
      "item step\n",
      commits, commits > 0 ? o.items / commits : 0.0, bytes_per_item);
  json out = {{"workload", "map"},
              {"items", o.items},
              {"items_in_input", o.items_in_input},
              {"groups", o.groups},
              {"concurrency", o.concurrency},
              {"seconds", seconds},
              {"item_steps_per_s", item_steps_per_s},
              {"transitions", commits},
              {"bytes_per_item_step", bytes_per_item},
              {"fdatasync_p50_ms", fdatasync.p50_ms},
              {"errors", state == cde::SagaState::kCompleted ? 0 : 1}};
  std::printf("%s\n", out.dump().c_str());
  return state == cde::SagaState::kCompleted ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"End-to-end saga throughput of the CDE engine"};
  app.add_option("--workload", o.workload, "noop, http or map")
      ->check(CLI::IsMember({"noop", "http", "map"}));
  app.add_option("--items", o.items,
                 "map workload: items of the saga's map step (its "
                 "max_concurrency is --concurrency)")
      ->check(CLI::Range(1, 1000000));
  app.add_flag("--items-in-input", o.items_in_input,
               "map workload: the items are the saga's input, not a literal "
               "array in the definition");
  app.add_option("--groups", o.groups,
                 "map workload: the items in this many groups, each mapped "
                 "by a map step inside the map step")
      ->check(CLI::Range(1, 1024));
  app.add_option("--sagas", o.sagas, "sagas to run")
      ->check(CLI::PositiveNumber);
  app.add_option("--concurrency", o.concurrency, "sagas in flight")
      ->check(CLI::PositiveNumber);
  app.add_option("--data-dir", o.data_dir, "store (default: a fresh temp dir)");
  app.add_option("--url", o.url,
                 "http workload: endpoint the steps POST to (default: one "
                 "started on 127.0.0.1 by the benchmark)");
  app.add_flag("--no-sync", o.no_sync, "commit without fdatasync");
  app.add_flag("--no-gather", o.no_gather,
               "the commit writer never waits for returning sagas "
               "(EngineOptions::commit_gather off)");
  app.add_flag("--pipeline", o.pipeline,
               "each group's fdatasync overlaps the next group's write "
               "(EngineOptions::commit_pipeline)");
  app.add_option("--poll", o.poll,
                 "how the loop picks up commit completions while 8 or more "
                 "commits are in flight: off, adaptive (polls only where a "
                 "completion is due) or always (EngineOptions::commit_poll)")
      ->check(CLI::IsMember({"off", "adaptive", "always"}))
      ->capture_default_str();
  app.add_option("--wal-spare-mb", o.wal_spare_mb,
                 "the store's WAL spare (StoreOptions::wal_spare_bytes), "
                 "written before the store opens so that the run's WAL is "
                 "one; 0: none")
      ->check(CLI::Range(0, 4096));
  app.add_option("--recovery", o.recovery,
                 "instead: start N sagas that sleep, close, and time the "
                 "reopen that resumes them")
      ->check(CLI::PositiveNumber);
  app.add_option("--mcp-http", o.mcp_http,
                 "instead: drive a running cde-orchestrator through MCP "
                 "Streamable HTTP at this URL (e.g. http://127.0.0.1:8000/mcp),"
                 " one session per concurrent client, start_workflow with "
                 "wait_ms");
  app.add_option("--token", o.token, "--mcp-http: bearer token to send");
  app.add_flag("--policy", o.policy,
               "register the workflow as a client's, under the action and "
               "destination policy (127.0.0.1 allowed), its http steps "
               "sending a secret");
  CLI11_PARSE(app, argc, argv);
  if (!o.mcp_http.empty()) {
    if (o.workload != "noop") {
      std::fprintf(stderr, "cde-bench: --mcp-http runs the noop workload\n");
      return 2;
    }
    return cde::RunMcpHttpBench(o.mcp_http, {.workflow = Workflow(o),
                                             .sagas = o.sagas,
                                             .concurrency = o.concurrency,
                                             .token = o.token});
  }
  // Without --url, the http workload calls an endpoint of its own on
  // 127.0.0.1 (it shares the machine's cores with the engine).
  std::unique_ptr<cde::TestHttpServer> endpoint;
  if (o.workload == "http" && o.url.empty()) {
    endpoint = std::make_unique<cde::TestHttpServer>();
    endpoint->Start();
    endpoint->Respond("/step", 200, R"({"ok": true})");
    o.url = endpoint->url("/step");
  }

  namespace fs = std::filesystem;
  bool remove_dir = false;
  if (o.data_dir.empty()) {
    std::string templ = (fs::temp_directory_path() / "cde-bench-XXXXXX");
    if (mkdtemp(templ.data()) == nullptr) return 1;
    o.data_dir = templ;
    remove_dir = true;
  }

  if (o.recovery > 0) {
    const int rc = RecoveryBench(o.data_dir + "/store", o.recovery, !o.no_sync,
                                 static_cast<uint64_t>(o.wal_spare_mb) << 20);
    if (remove_dir) fs::remove_all(o.data_dir);
    return rc;
  }

  uv_loop_t loop;
  uv_loop_init(&loop);
  const cde::FdatasyncLatency fdatasync = cde::BareFdatasync(o.data_dir, 1000);
  const cde::FdatasyncLatency overwrite =
      cde::BareFdatasyncOverwrite(o.data_dir, 1000);
  cde::EngineOptions eo;
  auto store = cde::OpenRocksStore(
      {.path = o.data_dir + "/store",
       .wal_spare_bytes = static_cast<uint64_t>(o.wal_spare_mb) << 20,
       .wal_spare_at_open = o.wal_spare_mb > 0});
  if (!store.ok()) {
    std::fprintf(stderr, "cde-bench: %s\n", store.status().ToString().c_str());
    return 1;
  }
  eo.store = std::move(store).value();
  eo.sync = !o.no_sync;
  eo.commit_gather = !o.no_gather;
  eo.commit_pipeline = o.pipeline;
  eo.commit_poll = cde::ParseCommitPolling(o.poll).value();
  eo.limits.map_items = static_cast<uint32_t>(o.items);
  if (o.policy) {
    setenv(kSecretVar, "bench-secret-value-0123456789", 1);
    eo.secrets = {.env = {kSecretVar}, .clients = true};
    eo.action_policy.http.allow = {"127.0.0.1"};
  }
  auto opened = cde::Engine::Open(&loop, std::move(eo));
  if (!opened.ok()) {
    std::fprintf(stderr, "cde-bench: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  cde::Engine& engine = **opened;
  const json def = Workflow(o);
  bool registered = false;
  engine.RegisterWorkflow(def,
                          o.policy ? cde::DefinitionOrigin::kClient
                                   : cde::DefinitionOrigin::kOperator,
                          "cde-bench",
                          [&](cde::Result<cde::DefinitionRecord> r) {
                            if (!r.ok()) {
                              std::fprintf(stderr, "cde-bench: %s\n",
                                           r.status().ToString().c_str());
                              std::exit(1);
                            }
                            registered = true;
                          });
  while (!registered) uv_run(&loop, UV_RUN_ONCE);

  if (o.workload == "map") {
    const int rc = MapBench(engine, &loop, o, fdatasync);
    cde::ShutdownAndWait(&loop, std::move(opened).value()).IgnoreError();
    uv_loop_close(&loop);
    if (remove_dir) fs::remove_all(o.data_dir);
    return rc;
  }

  Run run;
  run.engine = &engine;
  run.workflow = def["name"].get<std::string>();
  run.to_start = o.sagas;
  run.clients = std::min(o.concurrency, o.sagas);
  run.steady_from = o.sagas / 5;
  run.steady_to = o.sagas * 4 / 5;
  const uint64_t rss_before = ResidentBytes();
  const auto t0 = Clock::now();
  const double loop_cpu0 = ThreadCpuSeconds();
  for (int i = 0, n = run.clients; i < n; ++i) run.StartOne();
  while (run.clients > 0) uv_run(&loop, UV_RUN_ONCE);
  const double seconds =
      std::chrono::duration<double>(Clock::now() - t0).count();
  const double loop_cpu = ThreadCpuSeconds() - loop_cpu0;
  const cde::EngineStats stats = engine.stats();

  cde::ShutdownAndWait(&loop, std::move(opened).value()).IgnoreError();
  uv_loop_close(&loop);
  if (remove_dir) fs::remove_all(o.data_dir);

  const double sagas_per_s = run.finished / seconds;
  // The loop thread's CPU (this one: the engine's loop and the benchmark's
  // clients) per commit: steadier than sagas/s on a shared machine, and
  // what bounds the engine where the disk does not.
  const double loop_us_per_commit =
      stats.commits == 0 ? 0
                         : loop_cpu * 1e6 / static_cast<double>(stats.commits);
  // Steady state: throughput and the loop thread's CPU per commit between
  // the marks, user and system apart (system time is also where interrupt
  // work lands that a thread happened to be running for).
  // A run too short to have a steady part (under five sagas) reports none:
  // null in the JSON line.
  double steady_sagas_per_s = 0, steady_cpu_us = 0, steady_user_us = 0,
         steady_system_us = 0;
  const Mark& m0 = run.steady_start;
  const Mark& m1 = run.steady_end;
  const bool steady =
      m0.taken && m1.taken && m1.commits > m0.commits && m1.at > m0.at;
  if (steady) {
    const auto commits = static_cast<double>(m1.commits - m0.commits);
    steady_sagas_per_s = (m1.finished - m0.finished) /
                         std::chrono::duration<double>(m1.at - m0.at).count();
    steady_cpu_us = (m1.loop_cpu - m0.loop_cpu) * 1e6 / commits;
    steady_user_us = (m1.loop_split.user - m0.loop_split.user) * 1e6 / commits;
    steady_system_us =
        (m1.loop_split.system - m0.loop_split.system) * 1e6 / commits;
  }
  const double commits_per_group =
      stats.commit_groups == 0
          ? 0
          : static_cast<double>(stats.commits) / stats.commit_groups;
  json out = {{"workload", o.workload},
              {"sagas", run.finished},
              {"concurrency", o.concurrency},
              {"sagas_per_s", sagas_per_s},
              {"steps_per_s", sagas_per_s * 3},
              {"p50_ms", Percentile(run.latencies_ms, 0.50)},
              {"p95_ms", Percentile(run.latencies_ms, 0.95)},
              {"p99_ms", Percentile(run.latencies_ms, 0.99)},
              {"policy", o.policy},
              {"wal_spare_mb", o.wal_spare_mb},
              {"commit_gather", !o.no_gather},
              {"commit_pipeline", o.pipeline},
              {"commit_poll", o.poll},
              {"fdatasync_p50_ms", fdatasync.p50_ms},
              {"overwrite_fdatasync_p50_ms", overwrite.p50_ms},
              {"commits", stats.commits},
              {"loop_cpu_us_per_commit", loop_us_per_commit},
              {"commit_groups", stats.commit_groups},
              {"commit_groups_gathered", stats.commit_groups_gathered},
              {"commit_early_writes", stats.commit_early_writes},
              {"errors", run.errors}};
  // A commit cycle taken apart: the writer's group written (and synced),
  // the callers' first transition back, the gathering of the rest. The
  // group-commit writer's figures: none under the pipelined one.
  const auto per = [&o](uint64_t ns, uint64_t n) {
    return n == 0 || o.pipeline ? json(nullptr)
                                : json(static_cast<double>(ns) / n / 1e3);
  };
  out["commit_write_us"] = per(stats.commit_write_ns, stats.commit_groups);
  out["commit_first_return_us"] =
      per(stats.commit_first_return_ns, stats.commit_first_returns);
  out["commit_gather_us"] =
      per(stats.commit_gather_ns, stats.commit_groups_gathered);
  out["commit_all_return_us"] =
      per(stats.commit_all_return_ns, stats.commit_all_returns);
  out["commit_tell_us"] = per(stats.commit_tell_ns, stats.commit_groups);
  // The writer's CPU per transition it wrote early (the loop's is
  // loop_cpu_us_per_commit): during the loop's pass both threads work.
  out["writer_early_cpu_us_per_transition"] =
      per(stats.commit_early_write_cpu_ns,
          stats.commit_early_write_cpu_transitions);
  for (const auto& [key, value] :
       {std::pair{"steady_sagas_per_s", steady_sagas_per_s},
        {"steady_loop_cpu_us_per_commit", steady_cpu_us},
        {"steady_loop_user_us_per_commit", steady_user_us},
        {"steady_loop_system_us_per_commit", steady_system_us}}) {
    out[key] = steady ? json(value) : json(nullptr);
  }
  std::printf(
      "workload %s%s, %d sagas, concurrency %d, %s%s%s, WAL spare %d MiB\n",
      o.workload.c_str(), o.policy ? " under the client policy" : "",
      run.finished, o.concurrency,
      o.no_sync ? "unsynced" : "every commit synced",
      o.pipeline    ? " (pipelined syncs)"
      : o.no_gather ? " (no gathering)"
                    : "",
      o.poll == "off" ? "" : (", the loop polls: " + o.poll).c_str(),
      o.wal_spare_mb);
  std::printf(
      "  bare fdatasync (300 B append) here: p50 %.3f ms, p99 %.3f ms; over "
      "written blocks: p50 %.3f ms, p99 %.3f ms\n",
      fdatasync.p50_ms, fdatasync.p99_ms, overwrite.p50_ms, overwrite.p99_ms);
  std::printf("  %.0f sagas/s, %.0f steps/s\n", sagas_per_s, sagas_per_s * 3);
  std::printf("  start-to-completion p50 %.3f ms, p95 %.3f ms, p99 %.3f ms\n",
              out["p50_ms"].get<double>(), out["p95_ms"].get<double>(),
              out["p99_ms"].get<double>());
  std::printf("  resident memory: %.1f MiB before, %.1f MiB peak\n",
              rss_before / 1048576.0, run.peak_rss / 1048576.0);
  std::printf(
      "  %llu commits in %llu groups (%.1f per group, %.1f per saga; %llu "
      "groups gathered, with %llu early writes)\n",
      static_cast<unsigned long long>(stats.commits),
      static_cast<unsigned long long>(stats.commit_groups), commits_per_group,
      run.finished == 0 ? 0.0
                        : static_cast<double>(stats.commits) / run.finished,
      static_cast<unsigned long long>(stats.commit_groups_gathered),
      static_cast<unsigned long long>(stats.commit_early_writes));
  const auto us = [&out](const char* key) {
    const json& v = out[key];
    return v.is_null() ? std::string("-")
                       : std::to_string(std::lround(v.get<double>()));
  };
  std::printf(
      "  per group: written%s in %s us (callers told after %s us); first "
      "transition back after %s us, all after %s us; gathered in %s us\n",
      o.no_sync ? "" : " and synced", us("commit_write_us").c_str(),
      us("commit_tell_us").c_str(), us("commit_first_return_us").c_str(),
      us("commit_all_return_us").c_str(), us("commit_gather_us").c_str());
  std::printf("  loop thread: %.2f s of CPU, %.2f us per commit\n", loop_cpu,
              loop_us_per_commit);
  if (const json& w = out["writer_early_cpu_us_per_transition"]; !w.is_null()) {
    std::printf(
        "  commit writer: %.2f us of CPU per transition written early\n",
        w.get<double>());
  }
  if (steady) {
    std::printf(
        "  steady (from a fifth of the sagas finished to four fifths): %.0f "
        "sagas/s; loop thread per commit %.2f us of CPU (%.2f user, %.2f "
        "system)\n",
        steady_sagas_per_s, steady_cpu_us, steady_user_us, steady_system_us);
  } else {
    std::printf("  steady: too few sagas to leave out the ramps\n");
  }
  std::printf("%s\n", out.dump().c_str());
  return run.errors == 0 ? 0 : 1;
}
