// cde-commit-bench: throughput and latency of the group-commit path as the
// engine uses it: transitions committed through CommitWriter into the RocksDB
// store, continuations run on a libuv loop (LoopCommitter). C closed-loop
// clients each commit a typical transition (4 keys, ~300 bytes), wait for its
// continuation, and commit the next. Also measures a bare fdatasync on the
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
  size_t live_clients = 0;
  cde::SagaIdGenerator ids{7};
  std::mt19937 rng{7};
};

// One closed-loop client: a saga that keeps taking steps.
struct Client {
  Run* run;
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

  void Issue() {
    Transition t = Next();
    run->bytes += t.ByteSize();
    const auto start = Clock::now();
    run->committer->Commit(std::move(t), [this, start](const cde::Status& s) {
      const auto now = Clock::now();
      run->latencies_ms.push_back(Ms(now - start));
      ++run->commits;
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
                     bool sync, bool gather, bool pipeline, int wal_spare_mb) {
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
  r.keys_per_s = r.transitions_per_s * 4;
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
  CLI11_PARSE(app, argc, argv);

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
                                 writer == "pipelined", spare);
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
                            {"synced", !no_sync},
                            {"bare_fdatasync_p50_ms", sync_p50},
                            {"bare_fdatasync_p99_ms", sync_p99},
                            {"overwrite_fdatasync_p50_ms", over_p50},
                            {"overwrite_fdatasync_p99_ms", over_p99},
                            {"levels", results}};
  std::printf("%s\n", summary.dump().c_str());
  return 0;
}
