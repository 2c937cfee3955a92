// cde-admin: inspect a CDE Orchestrator store, offline or while the server
// runs. `cde-admin --help`; docs/cde-admin.md.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <functional>

#include "tools/admin/commands.h"

int main(int argc, char** argv) {
  using namespace cde::admin;
  CLI::App app{
      "cde-admin: inspect the saga store of CDE Orchestrator, offline or "
      "while the server runs (read as a RocksDB secondary).\n"
      "Exit codes: 0 ok, 1 not found / problems found / store error, "
      "2 bad usage / not a store, 3 refused because a server runs (or holds "
      "the store and cannot be reached).",
      "cde-admin"};
  app.require_subcommand(1);
  Common common;
  std::function<int()> action;

  // --data-dir and --json on every command (and --data-dir before it too).
  auto data_dir_option = [&](CLI::App* cmd) {
    cmd->add_option("--data-dir", common.data_dir,
                    "the store, as given to cde-orchestrator serve")
        ->capture_default_str();
  };
  auto common_options = [&](CLI::App* cmd) {
    data_dir_option(cmd);
    cmd->add_flag("--json", common.json,
                  "one JSON document on stdout with stable field names");
  };
  data_dir_option(&app);

  // workflows
  CLI::App* workflows =
      app.add_subcommand("workflows", "registered workflow definitions");
  workflows->require_subcommand(1);
  CLI::App* wf_list =
      workflows->add_subcommand("list", "every version of every workflow");
  common_options(wf_list);
  wf_list->callback([&] { action = [&] { return RunWorkflowsList(common); }; });
  std::string wf_spec;
  CLI::App* wf_show = workflows->add_subcommand(
      "show", "one definition, pretty-printed (the latest version by default)");
  wf_show->add_option("workflow", wf_spec, "NAME or NAME@VERSION")->required();
  common_options(wf_show);
  wf_show->callback(
      [&] { action = [&] { return RunWorkflowsShow(common, wf_spec); }; });

  // sagas
  CLI::App* sagas = app.add_subcommand("sagas", "saga snapshots and logs");
  sagas->require_subcommand(1);
  SagaListOptions list;
  CLI::App* s_list =
      sagas->add_subcommand("list", "sagas, newest first, one page at a time");
  s_list->add_option("--state", list.state,
                     "running, compensating, completed, compensated, parked, "
                     "cancelling or cancelled");
  s_list->add_option("--workflow", list.workflow,
                     "only sagas of this workflow");
  s_list->add_option("--since", list.since,
                     "created at or after: RFC 3339 (2026-11-27T08:00:00Z) "
                     "or a time ago (15m, 2h, 3d)");
  s_list->add_option("--until", list.until,
                     "created at or before (same forms as --since)");
  s_list->add_option("--limit", list.limit, "sagas per page")
      ->capture_default_str();
  s_list->add_option("--cursor", list.cursor,
                     "the cursor printed by the previous page");
  common_options(s_list);
  s_list->callback(
      [&] { action = [&] { return RunSagasList(common, list); }; });

  std::string saga_id;
  CLI::App* s_show = sagas->add_subcommand(
      "show",
      "one saga: its steps, attempts, errors, timeline and what it waits for");
  s_show->add_option("id", saga_id, "saga id")->required();
  common_options(s_show);
  s_show->callback(
      [&] { action = [&] { return RunSagasShow(common, saga_id); }; });

  // Options of the commands that change state.
  ChangeOptions change;
  auto change_options = [&](CLI::App* cmd) {
    common_options(cmd);
    cmd->add_option("--server", change.server,
                    "the running server's URL (http:// on 127.0.0.1, "
                    "localhost or [::1]); default: the one its server.json "
                    "in the data dir names");
    cmd->add_option("--token", change.token,
                    "bearer token for a server run with --auth-tokens "
                    "(default: $CDE_ADMIN_TOKEN)");
  };

  bool no_compensate = false;
  CLI::App* s_cancel = sagas->add_subcommand(
      "cancel",
      "cancel a running saga: it stops after its current attempt, then "
      "compensates (through the running server, else offline)");
  s_cancel->add_option("id", saga_id, "saga id")->required();
  s_cancel->add_flag("--no-compensate", no_compensate,
                     "just stop, run no compensation");
  change_options(s_cancel);
  s_cancel->callback([&] {
    action = [&] {
      return RunSagasCancel(common, change, saga_id, !no_compensate);
    };
  });

  StartOptions start;
  CLI::App* s_start = sagas->add_subcommand(
      "start",
      "start a saga of a registered workflow (through the running server, "
      "else offline: it runs when a server next starts)");
  s_start->add_option("workflow", start.workflow, "NAME or NAME@VERSION")
      ->required();
  s_start->add_option("--input", start.input, "the input, as JSON text");
  s_start->add_option("--input-file", start.input_file,
                      "a file holding the input as JSON (- for stdin)");
  s_start->add_flag("--example", start.example,
                    "the input is the definition's first example");
  s_start->add_option("--idempotency-key", start.idempotency_key,
                      "a second start with this key returns the first saga");
  s_start
      ->add_option("--wait-ms", start.wait_ms,
                   "wait up to this long for the saga to end (0 to "
                   "600000; through a server only)")
      ->capture_default_str();
  change_options(s_start);
  s_start->callback(
      [&] { action = [&] { return RunSagasStart(common, change, start); }; });

  uint64_t from_seq = 1;
  bool follow = false;
  CLI::App* s_log = sagas->add_subcommand(
      "log", "the raw log events of one saga (JSON lines with --json)");
  s_log->add_option("id", saga_id, "saga id")->required();
  s_log->add_option("--from", from_seq, "first seq to print")
      ->capture_default_str();
  s_log->add_flag("--follow,-f", follow,
                  "keep printing new events (polling every 200 ms) until the "
                  "saga finishes or Ctrl-C");
  common_options(s_log);
  s_log->callback([&] {
    action = [&] { return RunSagasLog(common, saga_id, from_seq, follow); };
  });

  ItemListOptions items;
  CLI::App* s_items = sagas->add_subcommand(
      "items",
      "the items of a saga's map step, each with its outcome and steps");
  s_items->add_option("id", saga_id, "saga id")->required();
  s_items->add_option("--map-step", items.map_step,
                      "the map step's path (needed when there are several), "
                      "or one run of a map step inside another "
                      "(orders[2].lines)");
  s_items->add_option("--status", items.status,
                      "only items with this status (pending, running, "
                      "succeeded, failed, cancelled)");
  s_items->add_option("--from", items.from, "the first item index")
      ->capture_default_str();
  s_items->add_option("--limit", items.limit, "items per page (1 to 1000)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  common_options(s_items);
  s_items->callback(
      [&] { action = [&] { return RunSagasItems(common, saga_id, items); }; });

  // dlq
  CLI::App* dlq = app.add_subcommand("dlq", "the dead-letter queue");
  dlq->require_subcommand(1);
  std::string dlq_workflow, dlq_cursor;
  size_t dlq_limit = 50;
  CLI::App* d_list =
      dlq->add_subcommand("list", "parked sagas, oldest first, paged");
  d_list->add_option("--workflow", dlq_workflow, "only this workflow");
  d_list->add_option("--limit", dlq_limit, "entries per page")
      ->capture_default_str();
  d_list->add_option("--cursor", dlq_cursor,
                     "the cursor printed by the previous page");
  common_options(d_list);
  d_list->callback([&] {
    action = [&] {
      return RunDlqList(common, dlq_workflow, dlq_limit, dlq_cursor);
    };
  });
  CLI::App* d_show = dlq->add_subcommand("show", "one DLQ entry");
  d_show->add_option("id", saga_id, "saga id")->required();
  common_options(d_show);
  d_show->callback(
      [&] { action = [&] { return RunDlqShow(common, saga_id); }; });

  std::string from_step;
  bool replay_all = false;
  CLI::App* d_replay = dlq->add_subcommand(
      "replay",
      "run a parked saga again (or every one with --all), through the "
      "running server, else offline");
  d_replay->add_option("id", saga_id, "saga id");
  d_replay->add_option("--from-step", from_step,
                       "the step to resume from (default: the failed one)");
  d_replay->add_flag("--all", replay_all, "every parked saga");
  d_replay->add_option("--workflow", dlq_workflow,
                       "with --all: only sagas of this workflow");
  change_options(d_replay);
  d_replay->callback([&] {
    action = [&] {
      if (replay_all == !saga_id.empty()) {
        Fail(kExitUsage, "dlq replay: give a saga id or --all");
      }
      if (replay_all && !from_step.empty()) {
        Fail(kExitUsage, "dlq replay: --from-step needs a saga id, not --all");
      }
      if (!replay_all && !dlq_workflow.empty()) {
        Fail(kExitUsage, "dlq replay: --workflow goes with --all");
      }
      return replay_all ? RunDlqReplayAll(common, change, dlq_workflow)
                        : RunDlqReplay(common, change, saga_id, from_step);
    };
  });

  std::string older_than;
  CLI::App* d_purge = dlq->add_subcommand(
      "purge",
      "delete a parked saga for good (or every one parked before "
      "--older-than), leaving an audit record; through the running server, "
      "else offline");
  d_purge->add_option("id", saga_id, "saga id");
  d_purge->add_option("--older-than", older_than,
                      "every saga parked at or before: RFC 3339 or a time "
                      "ago (15m, 2h, 3d)");
  d_purge->add_option("--workflow", dlq_workflow,
                      "with --older-than: only sagas of this workflow");
  change_options(d_purge);
  d_purge->callback([&] {
    action = [&] {
      if (older_than.empty() == saga_id.empty()) {
        Fail(kExitUsage, "dlq purge: give a saga id or --older-than");
      }
      if (older_than.empty() && !dlq_workflow.empty()) {
        Fail(kExitUsage, "dlq purge: --workflow goes with --older-than");
      }
      return older_than.empty() ? RunDlqPurge(common, change, saga_id)
                                : RunDlqPurgeOlderThan(
                                      common, change, older_than, dlq_workflow);
    };
  });

  // stats, verify, backup
  CLI::App* stats = app.add_subcommand(
      "stats", "sagas by state and workflow, DLQ, timers, store size");
  common_options(stats);
  stats->callback([&] { action = [&] { return RunStats(common); }; });

  CLI::App* verify = app.add_subcommand(
      "verify",
      "check that snapshots, logs, indexes, timers, idempotency keys and the "
      "DLQ agree; exit 1 if not");
  common_options(verify);
  verify->callback([&] { action = [&] { return RunVerify(common); }; });

  std::string backup_dir;
  CLI::App* backup = app.add_subcommand(
      "backup",
      "a consistent copy of the store (taken by the server while one runs), "
      "which `cde-orchestrator serve --data-dir DIR` can open");
  backup->add_option("dir", backup_dir, "a new directory for the copy")
      ->required();
  change_options(backup);
  backup->callback(
      [&] { action = [&] { return RunBackup(common, change, backup_dir); }; });

  if (argc <= 1) {
    std::fputs(app.help().c_str(), stderr);
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "cde-admin: %s (see --help)\n", e.what());
    return kExitUsage;
  }
  try {
    return action ? action() : kExitUsage;
  } catch (const AdminError& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "cde-admin: %s\n", e.what());
    return e.code();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "cde-admin: %s\n", e.what());
    return kExitFailed;
  }
}
