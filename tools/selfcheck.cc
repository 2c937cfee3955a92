// cde-selfcheck: opens (creating if needed) the store under --data-dir and
// reports what it holds, then proves the durable write path on a scratch
// store: synced group commits, read-back, checkpoint, reopen of the copy.
// The server (cde-orchestrator serve) is a later issue; until it lands this
// is what `README.md`'s first command runs.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <vector>

#include "storage/allocator.h"
#include "storage/commit_writer.h"
#include "storage/saga_id.h"
#include "storage/store.h"

namespace {

namespace fs = std::filesystem;
using cde::Status;

int Fail(const Status& s) {
  std::fprintf(stderr, "cde-selfcheck: %s\n", s.ToString().c_str());
  return 1;
}

Status Report(const std::string& path) {
  auto opened = cde::OpenRocksStore({.path = path});
  if (!opened.ok()) return opened.status();
  auto stats = (*opened)->Stats();
  if (!stats.ok()) return stats.status();
  std::printf(
      "store %s: format version %u, %llu definitions, %llu timers, "
      "%llu DLQ entries\n",
      fs::absolute(path).c_str(), cde::kFormatVersion,
      static_cast<unsigned long long>(stats->definitions),
      static_cast<unsigned long long>(stats->timers),
      static_cast<unsigned long long>(stats->dlq_entries));
  for (const auto& [state, n] : stats->sagas_by_state) {
    std::printf("  sagas %-12s %llu\n", state.c_str(),
                static_cast<unsigned long long>(n));
  }
  for (const auto& [name, v] : stats->engine) {
    std::printf("  %-16s %llu\n", name.c_str(),
                static_cast<unsigned long long>(v));
  }
  return (*opened)->Close();
}

Status RoundTrip(const std::string& scratch, int sagas) {
  auto opened = cde::OpenRocksStore({.path = scratch + "/store"});
  if (!opened.ok()) return opened.status();
  cde::Store& store = **opened;
  cde::SagaIdGenerator gen;
  std::vector<std::string> ids;
  std::vector<std::future<Status>> acks;
  const auto t0 = std::chrono::steady_clock::now();
  {
    cde::CommitWriter writer(&store, {});
    for (int i = 0; i < sagas; ++i) {
      ids.push_back(gen.Next(1700000000000));
      cde::Transition t;
      t.AppendLog({ids.back(), 1, 0, "saga_started", {{"i", i}}});
      t.PutSaga({ids.back(),
                 "selfcheck",
                 1,
                 cde::SagaState::kCompleted,
                 0,
                 0,
                 1,
                 "",
                 {{"i", i}}},
                std::nullopt);
      auto done = std::make_shared<std::promise<Status>>();
      acks.push_back(done->get_future());
      writer.Enqueue(std::move(t),
                     [done](const Status& s) { done->set_value(s); });
    }
    for (auto& a : acks) CDE_RETURN_IF_ERROR(a.get());
    const auto stats = writer.stats();
    const double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
    std::printf("group commit: %d synced transitions in %llu writes, %.1f ms\n",
                sagas, static_cast<unsigned long long>(stats.groups), ms);
  }
  for (const auto& id : ids) CDE_RETURN_IF_ERROR(store.GetSaga(id).status());
  CDE_RETURN_IF_ERROR(store.Checkpoint(scratch + "/backup"));
  CDE_RETURN_IF_ERROR(store.Close());
  auto copy = cde::OpenRocksStore(
      {.path = scratch + "/backup", .mode = cde::OpenMode::kReadOnly});
  if (!copy.ok()) return copy.status();
  auto page = (*copy)->ListSagas({.workflow = "selfcheck", .limit = 100000});
  if (!page.ok()) return page.status();
  if (page->sagas.size() != ids.size()) {
    return Status::Corruption("checkpoint holds " +
                              std::to_string(page->sagas.size()) +
                              " sagas, expected " + std::to_string(ids.size()));
  }
  std::printf("read-back and checkpoint: %zu sagas verified\n", ids.size());
  return (*copy)->Close();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Checks the CDE saga store: opens the data dir and proves the "
      "durable write path on a scratch store"};
  std::string data_dir = "./cde-data";
  int sagas = 2000;
  app.add_option("--data-dir", data_dir, "the store to open or create");
  app.add_option("--sagas", sagas, "transitions in the scratch round trip")
      ->check(CLI::Range(1, 1000000));
  CLI11_PARSE(app, argc, argv);

  Status s = Report(data_dir);
  if (!s.ok()) return Fail(s);
  std::string scratch =
      (fs::temp_directory_path() / "cde-selfcheck-XXXXXX").string();
  if (mkdtemp(scratch.data()) == nullptr) {
    return Fail(Status::IOError("cannot create a scratch directory"));
  }
  s = RoundTrip(scratch, sagas);
  std::error_code ec;
  fs::remove_all(scratch, ec);
  if (!s.ok()) return Fail(s);
  std::printf("allocator: %s\n", cde::AllocatorName().c_str());
  std::printf("self-check passed\n");
  return 0;
}
