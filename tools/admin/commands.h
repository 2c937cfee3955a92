// cde-admin commands. main.cc parses the command line (CLI11) and calls one
// of these; each returns the process exit code or throws AdminError
// (output.h). docs/cde-admin.md describes every command and its output.
#ifndef CDE_TOOLS_ADMIN_COMMANDS_H_
#define CDE_TOOLS_ADMIN_COMMANDS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "storage/store.h"
#include "tools/admin/output.h"
#include "tools/admin/server_link.h"

namespace cde::admin {

int RunWorkflowsList(const Common& common);
// `spec` is NAME or NAME@VERSION (latest version when none is given).
int RunWorkflowsShow(const Common& common, const std::string& spec);

// NAME or NAME@VERSION, parsed (bad usage fails with kExitUsage).
struct WorkflowSpec {
  std::string name;
  std::optional<uint32_t> version;  // nullopt: the latest
};
WorkflowSpec ParseWorkflowSpec(const std::string& spec);
// The definition `spec` names among `defs`; fails (kExitFailed) if none.
const DefinitionRecord& FindDefinition(
    const std::vector<DefinitionRecord>& defs, const WorkflowSpec& spec);

struct SagaListOptions {
  std::string state;
  std::string workflow;
  std::string since;  // RFC 3339 or a time ago; "" = unbounded
  std::string until;
  size_t limit = 50;
  std::string cursor;
};
int RunSagasList(const Common& common, const SagaListOptions& options);
int RunSagasShow(const Common& common, const std::string& id);
int RunSagasLog(const Common& common, const std::string& id, uint64_t from_seq,
                bool follow);
struct ItemListOptions {
  std::string map_step;  // "" = the workflow's only map step
  std::string status;    // "" = any
  uint32_t from = 0;
  size_t limit = 50;
};
// The items of a saga's map step (items_cmd.cc).
int RunSagasItems(const Common& common, const std::string& id,
                  const ItemListOptions& options);

int RunDlqList(const Common& common, const std::string& workflow, size_t limit,
               const std::string& cursor);
int RunDlqShow(const Common& common, const std::string& id);

// State changes (change_cmd.cc): through the running server, else offline.
struct StartOptions {
  std::string workflow;    // NAME or NAME@VERSION
  std::string input;       // --input: JSON text ("" = none)
  std::string input_file;  // --input-file: a file of JSON ("-" = stdin)
  bool example = false;    // --example: the definition's first example
  std::string idempotency_key;
  int64_t wait_ms = 0;  // through a server only: wait for the saga to end
};
int RunSagasStart(const Common& common, const ChangeOptions& options,
                  const StartOptions& start);
int RunSagasCancel(const Common& common, const ChangeOptions& options,
                   const std::string& id, bool compensate);
int RunDlqReplay(const Common& common, const ChangeOptions& options,
                 const std::string& id, const std::string& from_step);
int RunDlqReplayAll(const Common& common, const ChangeOptions& options,
                    const std::string& workflow);
// Deletes a parked saga for good (Engine::PurgeDlq; an audit record
// stays in the store's meta).
int RunDlqPurge(const Common& common, const ChangeOptions& options,
                const std::string& id);
// Every parked saga parked at or before `older_than` (as --since).
int RunDlqPurgeOlderThan(const Common& common, const ChangeOptions& options,
                         const std::string& older_than,
                         const std::string& workflow);

int RunStats(const Common& common);
int RunVerify(const Common& common);
// A store a server runs on is backed up by that server (POST /admin/backup).
int RunBackup(const Common& common, const ChangeOptions& options,
              const std::string& dir);

}  // namespace cde::admin

#endif  // CDE_TOOLS_ADMIN_COMMANDS_H_
