// cde-torture: the real server under a randomized workload and injected
// faults (SIGKILL, SIGTERM, SIGSTOP/SIGCONT, endpoint outages, a full disk),
// then the promises checked against an independent ledger of everything the
// server acknowledged. docs/reliability.md describes what it proves.
#ifndef CDE_TOOLS_TORTURE_TORTURE_H_
#define CDE_TOOLS_TORTURE_TORTURE_H_

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "tools/test_http_server.h"

namespace cde::torture {

struct Options {
  std::string server;  // the cde-orchestrator binary
  std::string admin;   // the cde-admin binary
  std::string workdir;
  int rounds = 6;
  double minutes = 0;  // > 0: keep going until this much time has passed
  int ops_per_round = 40;
  uint64_t seed = 0;
  bool disk_full = true;  // needs root (a tmpfs mount)
  bool verbose = false;
};

// What the server acknowledged, kept by the harness itself.
struct Ledger {
  struct Start {
    std::string workflow;
    std::string idempotency_key;  // "" = none
  };
  std::map<std::string, Start> starts;  // by saga id
  std::map<std::string, std::string> saga_by_key;
  uint64_t acknowledged_ops = 0;
  uint64_t refused_ops = 0;  // errors, refusals and timeouts: no promise
};

enum class Fault { kKill, kTerm, kPause, kOutage, kDiskFull };
const char* FaultName(Fault f);

struct Stats {
  int rounds = 0;
  std::map<std::string, int> faults;  // by FaultName
  // SIGKILLs, SIGTERMs and full disks: each may cut attempts off, which
  // the next server runs again.
  int interrupting_faults = 0;
  // The endpoint's request count as each server after the first started:
  // the requests before a mark came from earlier processes.
  std::vector<size_t> restart_marks;
  int64_t max_recovery_ms = 0;  // restart to ready
  uint64_t duplicates = 0;      // side effects seen more than once
  std::string disk_full_note;   // why disk-full faults were skipped
};

struct Violation {
  std::string saga_id;  // "" = not about one saga
  std::string what;
};

// Items of the fan-out workflows' map step.
inline constexpr int kFanOutItems = 12;
// Seats per row of the nested fan-out (a map inside a map).
inline constexpr int kFanOutRowSeats = 4;

// The workflows the workload starts; `endpoint` is where http steps go.
std::vector<nlohmann::json> Workflows(const TestHttpServer& endpoint);

// Checks every promise once the server has stopped and its store is
// settled. `store_dir`: the data dir.
std::vector<Violation> CheckInvariants(const Options& options,
                                       const std::string& store_dir,
                                       const Ledger& ledger,
                                       const TestHttpServer& endpoint,
                                       Stats* stats);

}  // namespace cde::torture

#endif  // CDE_TOOLS_TORTURE_TORTURE_H_
