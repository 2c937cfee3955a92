// cde-commit-bench: throughput and latency of the group-commit path as the
// engine uses it: transitions committed through CommitWriter into the RocksDB
// store, continuations run on a libuv loop (LoopCommitter). C closed-loop
// clients each commit a transition (--workload: issue 18's typical one, or
// a noop saga's as the engine writes them), wait for its continuation, and
// commit the next. Also measures a bare fdatasync on the
// same file system, the floor for a synced commit.
#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "engine/loop_committer.h"
#include "storage/commit_writer.h"
#include "storage/saga_id.h"
#include "storage/store.h"
#include "tools/bench_util.h"

namespace {

using Clock = std::chrono::steady_clock;
using cde::Transition;

double Ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

using cde::Percentile;

struct Client;

struct Run {
  cde::LoopCommitter* committer = nullptr;
  Clock::time_point end;
  std::vector<double> latencies_ms;
  uint64_t commits = 0;
  uint64_t errors = 0;
  uint64_t bytes = 0;
  uint64_t rows = 0;
  size_t live_clients = 0;
  int64_t now_ms = 1700000000000;  // new sagas' ids and times
  cde::SagaIdGenerator ids{7};
  std::mt19937 rng{7};
};

// What each client commits.
enum class Workload {
  // The issue's "typical transition" (issue 18): the same saga stepping
  // forever, each step a log event, the whole snapshot, a timer put and a
  // timer delete: 4 rows, 555 bytes.
  kStep,
  // A noop saga of three steps as the engine commits it today (store format
  // 8; the rows and their sizes measured from the engine's commits): the
  // start (a log row of two events, the snapshot, its state index row), two
  // hand-offs (a log row each: two events and the snapshot's patch), the end
  // (a log row, the whole snapshot, its index row moved); then the next
  // saga. 9 rows in 4 transitions, about 700 bytes each.
  kNoopSaga,
};

// One closed-loop client: a saga that keeps taking steps.
struct Client {
  Run* run;
  Workload workload = Workload::kStep;
  std::string saga_id;
  uint64_t seq = 0;

  // The typical steady-state transition: a log event, the new snapshot (same
  // state, so no index rows), the next backoff timer, the old one deleted.
  Transition Next() {
    ++seq;
    Transition t;
    t.AppendLog({saga_id,
                 seq,
                 1700000000000,
                 "step_succeeded",
                 {{"step", "charge-card"},
                  {"attempt", 1},
                  {"output", {{"ok", true}}}}});
    cde::SagaRecord rec{saga_id,
                        "bench",
                        1,
                        cde::SagaState::kRunning,
                        1700000000000,
                        1700000000000,
                        seq,
                        "",
                        {{"current_step", seq % 3}, {"input", {{"n", seq}}}}};
    t.PutSaga(rec, cde::SagaState::kRunning);
    t.PutTimer({static_cast<int64_t>(seq) + 1000,
                saga_id,
                "backoff",
                {{"attempt", 2}}});
    t.DeleteTimer(static_cast<int64_t>(seq) + 999, saga_id, "backoff");
    return t;
  }

  // Padding that brings a record to the size the engine's has; what the
  // store's cost depends on is the rows, their keys and their sizes.
  static nlohmann::json Padded(size_t bytes) {
    return {{"pad", std::string(bytes, 'x')}};
  }

  Transition NextOfNoopSaga() {
    const uint64_t phase = seq % 4;  // 0: start, 1-2: hand-offs, 3: the end
    if (phase == 0) saga_id = run->ids.Next(run->now_ms);
    ++seq;
    const uint64_t saga_seq = phase * 2 + 1;  // two events per transition
    Transition t;
    cde::SagaRecord rec{saga_id,
                        "noop-bench",
                        1,
                        cde::SagaState::kRunning,
                        run->now_ms,
                        run->now_ms,
                        saga_seq + 1,
                        "",
                        Padded(246)};
    switch (phase) {
      case 0:
        t.AppendLog(
            {saga_id, saga_seq, run->now_ms, "saga_started", Padded(284)});
        t.PutSaga(rec, std::nullopt);
        break;
      case 1:
      case 2:
        t.AppendLog(
            {saga_id, saga_seq, run->now_ms, "step_succeeded", Padded(417)});
        break;
      default:
        t.AppendLog(
            {saga_id, saga_seq, run->now_ms, "saga_completed", Padded(122)});
        rec.state = cde::SagaState::kCompleted;
        rec.body = Padded(305);
        t.PutSaga(rec, cde::SagaState::kRunning);
        break;
    }
    return t;
  }

  void Issue() {
    Transition t = workload == Workload::kStep ? Next() : NextOfNoopSaga();
    run->bytes += t.ByteSize();
    const size_t rows = t.count();
    const auto start = Clock::now();
    run->committer->Commit(std::move(t),
                           [this, start, rows](const cde::Status& s) {
                             const auto now = Clock::now();
                             run->latencies_ms.push_back(Ms(now - start));
                             ++run->commits;
                             run->rows += rows;
                             if (!s.ok()) ++run->errors;
                             if (now < run->end && s.ok()) {
                               Issue();
                             } else if (--run->live_clients == 0) {
                               run->committer->Close([] {});
                             }
                           });
  }
};

struct LevelResult {
  int concurrency;
  double transitions_per_s, keys_per_s, p50_ms, p99_ms, avg_bytes;
  uint64_t groups, errors;
};

LevelResult RunLevel(const std::string& dir, int concurrency, double seconds,
                     bool sync, bool gather, bool pipeline, int wal_spare_mb,
                     Workload workload) {
  // With a spare, it is written before the store opens, so that the whole
  // run writes a WAL over it, as a server does from its first WAL switch on.
  auto opened = cde::OpenRocksStore(
      {.path = dir,
       .wal_spare_bytes = static_cast<uint64_t>(wal_spare_mb) << 20,
       .wal_spare_at_open = wal_spare_mb > 0});
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    std::exit(1);
  }
  auto store = std::move(opened).value();
  cde::CommitWriter writer(
      store.get(),
      {.sync = sync, .gather_returning = gather, .pipeline = pipeline});
  uv_loop_t loop;
  uv_loop_init(&loop);
  cde::LoopCommitter committer(&loop, &writer);
  Run run;
  run.committer = &committer;
  run.live_clients = static_cast<size_t>(concurrency);
  std::vector<Client> clients(static_cast<size_t>(concurrency));
  const auto t0 = Clock::now();
  run.end = t0 + std::chrono::duration_cast<Clock::duration>(
                     std::chrono::duration<double>(seconds));
  for (auto& c : clients) {
    c.run = &run;
    c.workload = workload;
    c.saga_id = run.ids.Next(1700000000000);
    c.Issue();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  const double elapsed =
      std::chrono::duration<double>(Clock::now() - t0).count();
  uv_loop_close(&loop);
  writer.Stop();
  const auto stats = writer.stats();
  store->Close().IgnoreError();
  LevelResult r;
  r.concurrency = concurrency;
  r.transitions_per_s = static_cast<double>(run.commits) / elapsed;
  r.keys_per_s = static_cast<double>(run.rows) / elapsed;
  r.avg_bytes =
      static_cast<double>(run.bytes) / static_cast<double>(run.commits);
  r.p50_ms = Percentile(run.latencies_ms, 0.5);
  r.p99_ms = Percentile(run.latencies_ms, 0.99);
  r.groups = stats.groups;
  r.errors = run.errors;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Group-commit throughput and latency of the CDE saga store"};
  std::string data_dir;
  double seconds = 5;
  std::vector<int> levels = {1, 16, 256};
  bool no_sync = false;
  bool no_gather = false;
  std::vector<int> spares = {32};
  std::vector<std::string> writers = {"group"};
  int fdatasync_samples = 2000;
  std::string workload_name = "step";
  app.add_option("--data-dir", data_dir,
                 "where to create scratch stores (default: a temp dir)");
  app.add_option("--seconds", seconds, "run time per concurrency level")
      ->check(CLI::PositiveNumber);
  app.add_option("--concurrency", levels, "concurrent enqueuers per level")
      ->check(CLI::PositiveNumber);
  app.add_flag("--no-sync", no_sync, "commit without fdatasync");
  app.add_flag("--no-gather", no_gather,
               "the writer never waits for returning clients");
  app.add_option("--writer", writers,
                 "group (CommitWriter's group commit) or pipelined "
                 "(CommitWriterOptions::pipeline); several run each level once "
                 "per writer, side by side")
      ->check(CLI::IsMember({"group", "pipelined"}));
  app.add_option("--wal-spare-mb", spares,
                 "size of the WAL spare (StoreOptions::wal_spare_bytes); "
                 "several values run each level once per value, side by side")
      ->check(CLI::Range(0, 4096));
  app.add_option("--fdatasync-samples", fdatasync_samples,
                 "fdatasyncs timed for each bare figure (default 2000)")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--workload", workload_name,
                 "step: the same saga stepping forever, 4 rows per "
                 "transition (issue 18's typical transition); noop-saga: "
                 "three-step noop sagas one after another, each transition "
                 "the rows the engine writes for it today")
      ->check(CLI::IsMember({"step", "noop-saga"}));
  CLI11_PARSE(app, argc, argv);
  const Workload workload =
      workload_name == "step" ? Workload::kStep : Workload::kNoopSaga;

  namespace fs = std::filesystem;
  bool remove_dir = false;
  if (data_dir.empty()) {
    std::string templ = (fs::temp_directory_path() / "cde-bench-XXXXXX");
    if (mkdtemp(templ.data()) == nullptr) return 1;
    data_dir = templ;
    remove_dir = true;
  }
  fs::create_directories(data_dir);

  const auto [sync_p50, sync_p99] =
      cde::BareFdatasync(data_dir, fdatasync_samples);
  const auto [over_p50, over_p99] =
      cde::BareFdatasyncOverwrite(data_dir, fdatasync_samples);
  std::printf("bare fdatasync (300 B append): p50 %.3f ms  p99 %.3f ms\n",
              sync_p50, sync_p99);
  std::printf(
      "bare fdatasync (300 B over written blocks): p50 %.3f ms  p99 %.3f ms\n",
      over_p50, over_p99);
  std::printf("%-12s %-10s %9s %14s %12s %10s %10s %10s %8s\n", "enqueuers",
              "writer", "spare MiB", "transitions/s", "keys/s", "p50 ms",
              "p99 ms", "groups", "bytes");
  nlohmann::json results = nlohmann::json::array();
  for (int c : levels) {
    for (int spare : spares) {
      for (const std::string& writer : writers) {
        const std::string dir = data_dir + "/level-" + std::to_string(c);
        fs::remove_all(dir);
        LevelResult r = RunLevel(dir, c, seconds, !no_sync, !no_gather,
                                 writer == "pipelined", spare, workload);
        fs::remove_all(dir);
        std::printf(
            "%-12d %-10s %9d %14.0f %12.0f %10.3f %10.3f %10llu %8.0f\n", c,
            writer.c_str(), spare, r.transitions_per_s, r.keys_per_s, r.p50_ms,
            r.p99_ms, static_cast<unsigned long long>(r.groups), r.avg_bytes);
        results.push_back({{"enqueuers", c},
                           {"writer", writer},
                           {"wal_spare_mb", spare},
                           {"transitions_per_s", r.transitions_per_s},
                           {"keys_per_s", r.keys_per_s},
                           {"p50_ms", r.p50_ms},
                           {"p99_ms", r.p99_ms},
                           {"groups", r.groups},
                           {"avg_transition_bytes", r.avg_bytes},
                           {"errors", r.errors}});
      }
    }
  }
  if (remove_dir) fs::remove_all(data_dir);
  nlohmann::json summary = {{"benchmark", "commit"},
                            {"workload", workload_name},
                            {"synced", !no_sync},
                            {"bare_fdatasync_p50_ms", sync_p50},
                            {"bare_fdatasync_p99_ms", sync_p99},
                            {"overwrite_fdatasync_p50_ms", over_p50},
                            {"overwrite_fdatasync_p99_ms", over_p99},
                            {"levels", results}};
  std::printf("%s\n", summary.dump().c_str());
  return 0;
}
