// cde-torture: see torture.h and docs/reliability.md.
//
//   cde-torture [--rounds N] [--minutes M] [--seed S] [--workdir DIR]
//
// Exit 0 when every promise held; 1 with the violations (and the saga ids
// involved) otherwise; 2 for bad arguments or a harness that cannot run.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "tools/server_process.h"
#include "tools/torture/torture.h"

namespace cde::torture {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t)
      .count();
}

// The data dir, on a small tmpfs of its own when we may mount one, so that
// the disk can be filled on purpose.
class DataDisk {
 public:
  explicit DataDisk(const Options& o) : mount_(o.workdir + "/disk") {
    fs::create_directories(mount_);
    if (o.disk_full &&
        mount("cde-torture", mount_.c_str(), "tmpfs", 0, "size=256m") == 0) {
      mounted_ = true;
    } else if (o.disk_full) {
      note_ = std::string("cannot mount a tmpfs (") + std::strerror(errno) +
              "): disk-full faults skipped";
    } else {
      note_ = "disk-full faults turned off";
    }
    fs::create_directories(data());
  }
  ~DataDisk() {
    if (mounted_) umount2(mount_.c_str(), MNT_DETACH);
  }
  std::string data() const { return mount_ + "/data"; }
  bool can_fill() const { return mounted_; }
  const std::string& note() const { return note_; }

  // Writes a filler file until the disk is full.
  void Fill() {
    const int fd =
        open((mount_ + "/filler").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return;
    std::vector<char> block(1 << 20, 'x');
    while (write(fd, block.data(), block.size()) > 0) {
    }
    close(fd);
  }
  void Free() { fs::remove(mount_ + "/filler"); }

 private:
  std::string mount_;
  bool mounted_ = false;
  std::string note_;
};

class Torture {
 public:
  explicit Torture(Options o)
      : o_(std::move(o)), rng_(o_.seed), disk_(o_), server_(o_.server) {}

  int Run() {
    endpoint_.Start();
    Heal();
    stats_.disk_full_note = disk_.note();
    if (!Restart()) return Fail("the server did not start");
    for (const json& def : Workflows(endpoint_)) {
      json r = mcp_->Call("register_workflow", {{"definition", def}});
      if (r.contains("error")) return Fail("cannot register: " + r.dump());
    }
    const auto t0 = Clock::now();
    for (int round = 0;; ++round) {
      const bool more_rounds = round < o_.rounds;
      const bool more_time = o_.minutes > 0 && MsSince(t0) < o_.minutes * 60000;
      if (!more_rounds && !more_time) break;
      Round(round);
      stats_.rounds = round + 1;
    }
    Heal();
    if (!server_.running() && !Restart()) {
      return Fail("the server did not restart to settle");
    }
    if (!Settle())
      violations_.push_back({"", "sagas still active after 120 s"});
    server_.Signal(SIGTERM);
    if (server_.Wait(60000) != 0) {
      violations_.push_back({"", "the final graceful stop failed"});
    }
    auto found = CheckInvariants(o_, disk_.data(), ledger_, endpoint_, &stats_);
    violations_.insert(violations_.end(), found.begin(), found.end());
    Summary();
    return violations_.empty() ? 0 : 1;
  }

 private:
  int Fail(const std::string& why) {
    std::fprintf(stderr, "cde-torture: %s (server log: %s)\n", why.c_str(),
                 Log().c_str());
    return 2;
  }
  std::string Log() const { return o_.workdir + "/server.log"; }

  void Heal() {
    endpoint_.Respond("/book", 200, R"({"booked": true})");
    endpoint_.Respond("/refund", 200, R"({"refunded": true})");
  }

  bool Restart() {
    if (mcp_ != nullptr) {  // not the first start
      // The old process is gone; what it sent just before its end may not
      // be read yet. Once it is, the mark falls after all of it.
      if (!endpoint_.AwaitDrained()) {
        violations_.push_back(
            {"", "the endpoint did not drain after a server process ended"});
      }
      stats_.restart_marks.push_back(endpoint_.request_count());
    }
    const auto t0 = Clock::now();
    // The action policy on, as in production: exec for clients (the
    // workload registers over MCP), limited to the one shell it runs, and
    // http to loopback only where the endpoint listens.
    if (!server_.Start(disk_.data(), Log(), {},
                       {{"CDE_SHUTDOWN_TIMEOUT_MS", "1000"},
                        {"CDE_ACTIONS_EXEC_CLIENTS", "true"},
                        {"CDE_ACTIONS_EXEC_ALLOW", R"(["/bin/sh"])"},
                        {"CDE_ACTIONS_HTTP_ALLOW", R"(["127.0.0.1"])"}},
                       60000)) {
      return false;
    }
    stats_.max_recovery_ms = std::max(stats_.max_recovery_ms, MsSince(t0));
    mcp_ = std::make_unique<McpClient>(server_.base());
    return mcp_->Initialize();
  }

  void Round(int round) {
    // Every kind comes round in turn; where it strikes in the round is
    // random.
    std::vector<Fault> kinds = {Fault::kKill, Fault::kOutage, Fault::kTerm,
                                Fault::kPause};
    if (disk_.can_fill()) kinds.push_back(Fault::kDiskFull);
    const Fault fault = kinds[static_cast<size_t>(round) % kinds.size()];
    const int strike = Pick(o_.ops_per_round);
    for (int op = 0; op < o_.ops_per_round; ++op) {
      if (op == strike) Inject(fault);
      Operate();
    }
    Heal();
    if (!server_.running() && !Restart()) {
      violations_.push_back(
          {"", "the server did not restart in round " + std::to_string(round)});
    }
  }

  void Inject(Fault f) {
    ++stats_.faults[FaultName(f)];
    if (o_.verbose) std::fprintf(stderr, "fault: %s\n", FaultName(f));
    switch (f) {
      case Fault::kKill:
        ++stats_.interrupting_faults;
        KillAndWait();
        Restart();
        return;
      case Fault::kTerm:
        ++stats_.interrupting_faults;
        server_.Signal(SIGTERM);
        if (server_.Wait(30000) != 0) {
          violations_.push_back({"", "SIGTERM did not end the server cleanly"});
        }
        Restart();
        return;
      case Fault::kPause: {
        // Requests keep coming while the process is stopped.
        server_.Signal(SIGSTOP);
        const pid_t pid = server_.pid();
        const int ms = 200 + Pick(600);
        pauser_ = std::thread([pid, ms] {
          std::this_thread::sleep_for(std::chrono::milliseconds(ms));
          kill(pid, SIGCONT);
        });
        pauser_.detach();
        return;
      }
      case Fault::kOutage:
        // Half the time it answers 503, half the time it hangs past the
        // steps' timeout: retries, then compensations.
        if (Pick(2) == 0) {
          endpoint_.Respond("/book", 503, "down");
        } else {
          endpoint_.Respond("/book", 200, R"({"late": true})", 3000);
        }
        return;
      case Fault::kDiskFull:
        ++stats_.interrupting_faults;
        disk_.Fill();
        for (int i = 0; i < 5; ++i) Operate();  // refused, never lost
        disk_.Free();
        KillAndWait();
        Restart();
        return;
    }
  }

  // SIGKILL, then wait for the end: a process in uninterruptible sleep
  // (a sync) ends only when it returns, and holds the store's lock till then.
  void KillAndWait() {
    server_.Signal(SIGKILL);
    if (server_.Wait(60000) < 0) {
      violations_.push_back({"", "the server outlived SIGKILL by 60 s"});
    }
  }

  int Pick(int n) {
    return static_cast<int>(std::uniform_int_distribution<int>(0, n - 1)(rng_));
  }

  void Operate() {
    const int dice = Pick(100);
    if (dice < 60 || ledger_.starts.empty()) return Start();
    std::vector<std::string> ids;
    for (const auto& [id, s] : ledger_.starts) ids.push_back(id);
    const std::string id = ids[static_cast<size_t>(Pick(ids.size()))];
    if (dice < 75) {
      Count(mcp_->Call("cancel_saga", {{"saga_id", id}}));
    } else if (dice < 85) {
      Count(mcp_->Call("replay_saga", {{"saga_id", id}}));
    } else {
      json r = mcp_->Call("get_saga", {{"saga_id", id}});
      if (r.contains("error") &&
          r["error"].dump().find("not_found") != std::string::npos) {
        violations_.push_back({id, "acknowledged, then not found"});
      }
      Count(r);
    }
  }

  void Start() {
    static const char* kWorkflows[] = {
        "t-noop",          "t-sleep",
        "t-exec",          "t-http",
        "t-fail",          "t-park",
        "t-fanout",        "t-fanout-fail",
        "t-fanout-nested", "t-fanout-nested-fail"};
    constexpr int kCount = sizeof(kWorkflows) / sizeof(kWorkflows[0]);
    json args = {{"workflow", kWorkflows[Pick(kCount)]}};
    std::string key;
    const int dice = Pick(100);
    if (dice < 15 && !ledger_.saga_by_key.empty()) {
      auto it = ledger_.saga_by_key.begin();
      std::advance(it, Pick(ledger_.saga_by_key.size()));
      key = it->first;
      args["workflow"] = ledger_.starts[it->second].workflow;
    } else if (dice < 40) {
      key = "k-" + std::to_string(next_key_++);
    }
    if (!key.empty()) args["idempotency_key"] = key;
    json r = mcp_->Call("start_workflow", args);
    if (!Count(r)) return;
    const std::string id = r.value("saga_id", std::string());
    if (id.empty()) return;
    if (!key.empty()) {
      auto [it, fresh] = ledger_.saga_by_key.emplace(key, id);
      if (!fresh && it->second != id) {
        violations_.push_back({id, "idempotency key " + key +
                                       " started a second saga (first " +
                                       it->second + ")"});
      }
    }
    ledger_.starts.emplace(
        id, Ledger::Start{args["workflow"].get<std::string>(), key});
  }

  // True for an acknowledged answer.
  bool Count(const json& r) {
    if (r.contains("error")) {
      ++ledger_.refused_ops;
      return false;
    }
    ++ledger_.acknowledged_ops;
    return true;
  }

  bool Settle() {
    for (int i = 0; i < 1200; ++i) {
      json st = mcp_->Call("engine_stats", json::object());
      if (st.contains("active_by_state") && st["active_by_state"].empty()) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  void Summary() const {
    std::string faults;
    for (const auto& [k, n] : stats_.faults) {
      faults += (faults.empty() ? "" : ", ") + k + " " + std::to_string(n);
    }
    std::printf(
        "cde-torture: seed %llu, %d rounds, faults: %s\n"
        "  sagas %zu, acknowledged operations %llu (refused %llu)\n"
        "  duplicate side effects %llu (each after a restart; %d interrupting "
        "faults)\n"
        "  max recovery (restart to ready) %lld ms\n"
        "  violations %zu\n",
        static_cast<unsigned long long>(o_.seed), stats_.rounds, faults.c_str(),
        ledger_.starts.size(),
        static_cast<unsigned long long>(ledger_.acknowledged_ops),
        static_cast<unsigned long long>(ledger_.refused_ops),
        static_cast<unsigned long long>(stats_.duplicates),
        stats_.interrupting_faults,
        static_cast<long long>(stats_.max_recovery_ms), violations_.size());
    if (!stats_.disk_full_note.empty()) {
      std::printf("  note: %s\n", stats_.disk_full_note.c_str());
    }
    for (const Violation& v : violations_) {
      std::printf("  VIOLATION %s%s\n",
                  v.saga_id.empty() ? "" : (v.saga_id + ": ").c_str(),
                  v.what.c_str());
    }
  }

  Options o_;
  std::mt19937_64 rng_;
  DataDisk disk_;
  TestHttpServer endpoint_;
  ServerProcess server_;
  std::unique_ptr<McpClient> mcp_;
  std::thread pauser_;
  Ledger ledger_;
  Stats stats_;
  std::vector<Violation> violations_;
  uint64_t next_key_ = 0;
};

// The directory this program is in, to find its sibling binaries.
std::string SelfDir() {
  return fs::read_symlink("/proc/self/exe").parent_path().string();
}

}  // namespace
}  // namespace cde::torture

int main(int argc, char** argv) {
  using cde::torture::Options;
  Options o;
  CLI::App app{
      "cde-torture: the server under faults, checked against a ledger"};
  o.server = cde::torture::SelfDir() + "/../api/cde-orchestrator";
  o.admin = cde::torture::SelfDir() + "/cde-admin";
  app.add_option("--server", o.server, "the cde-orchestrator binary")
      ->check(CLI::ExistingFile);
  app.add_option("--admin", o.admin, "the cde-admin binary")
      ->check(CLI::ExistingFile);
  app.add_option("--rounds", o.rounds, "rounds, one fault each")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--minutes", o.minutes,
                 "keep going until this much time has passed (and at least "
                 "--rounds rounds ran)")
      ->check(CLI::Range(0.0, 100000.0));
  app.add_option("--ops", o.ops_per_round, "operations per round")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "random seed (0: pick one)");
  app.add_option("--workdir", o.workdir,
                 "where the data dir and logs go (default: a new temp dir)");
  bool no_disk_full = false;
  app.add_flag("--no-disk-full", no_disk_full,
               "do not mount a tmpfs to fill the disk");
  app.add_flag("-v,--verbose", o.verbose, "print each fault");
  CLI11_PARSE(app, argc, argv);
  o.disk_full = !no_disk_full;
  if (o.seed == 0) o.seed = std::random_device{}();
  const bool own_workdir = o.workdir.empty();
  if (own_workdir) {
    char tmpl[] = "/tmp/cde-torture-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      std::perror("cde-torture: mkdtemp");
      return 2;
    }
    o.workdir = tmpl;
  }
  signal(SIGPIPE, SIG_IGN);
  const int rc = cde::torture::Torture(o).Run();  // unmounts its disk
  // A failed run keeps everything (the store, the server log) to look at.
  if (rc == 0 && own_workdir) std::filesystem::remove_all(o.workdir);
  if (rc != 0) std::printf("  kept for inspection: %s\n", o.workdir.c_str());
  return rc;
}
