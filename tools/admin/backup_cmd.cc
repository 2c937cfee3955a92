// cde-admin backup DIR: a RocksDB checkpoint of a store no server runs on.
//
// RocksDB 7.8 creates checkpoints from a read-only instance (SST files hard
// linked, MANIFEST and any WAL copied), so the backup never opens the store
// for writing. It holds the data dir's LOCK meanwhile, so that no server can
// start and change the files under it. A store a server runs on is backed up
// by that server: POST /admin/backup makes it checkpoint its own open store
// (off its loop), and cde-admin then checks the copy as here. A server that
// holds the store and cannot be reached over HTTP: exit 3.
#include <filesystem>

#include "tools/admin/commands.h"
#include "tools/admin/server_link.h"
#include "tools/admin/store_access.h"

namespace cde::admin {

using nlohmann::json;

namespace {

uint64_t CountSagas(Store& store) {
  const StoreStats stats = Check(store.Stats());
  uint64_t n = 0;
  for (const auto& [state, count] : stats.sagas_by_state) n += count;
  return n;
}

uint64_t DirBytes(const std::string& dir) {
  namespace fs = std::filesystem;
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::error_code size_ec;
    if (e.is_regular_file(size_ec)) {
      const auto n = e.file_size(size_ec);
      if (!size_ec) total += n;
    }
  }
  return total;
}

}  // namespace

int RunBackup(const Common& common, const ChangeOptions& options,
              const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (dir.empty()) Fail(kExitUsage, "backup: DIR must not be empty");
  const fs::path target = fs::absolute(dir, ec);
  if (ec) Fail(kExitUsage, "backup: " + dir + ": " + ec.message());
  if (fs::exists(target, ec)) {
    Fail(kExitUsage, "backup: " + dir +
                         " already exists; the backup goes into a new "
                         "directory");
  }
  if (!fs::is_directory(target.parent_path(), ec)) {
    Fail(kExitUsage,
         "backup: " + target.parent_path().string() + " is not a directory");
  }
  // A running server (or --server): it checkpoints its own store. Else
  // (ChooseRoute refuses a server it cannot reach) cde-admin does.
  const Route route = options.server.empty() && !LockHolder(common.data_dir)
                          ? Route{}
                          : ChooseRoute(common.data_dir, options);
  std::optional<uint64_t> sagas;
  if (route.online) {
    PostAdmin(route.mcp_url, "/admin/backup", {{"dir", target.string()}},
              AdminToken(options), 600000L);
  } else {
    DataDirLock lock = DataDirLock::Take(common.data_dir);
    auto opened =
        OpenRocksStore({.path = common.data_dir, .mode = OpenMode::kReadOnly});
    if (!opened.ok()) {
      const Status& s = opened.status();
      Check(s, s.IsInvalidArgument() || s.IsNotSupported() ? kExitUsage
                                                           : kExitFailed);
    }
    std::unique_ptr<Store> store = std::move(opened).value();
    sagas = CountSagas(*store);
    Check(store->Checkpoint(target.string()));
    Check(store->Close());
  }

  // The copy must open as a store and hold what the source held.
  auto copy =
      OpenRocksStore({.path = target.string(), .mode = OpenMode::kReadOnly});
  Check(copy.status());
  const uint64_t copied = CountSagas(**copy);
  Check((*copy)->Close());
  // (A live store moves on: its copy is checked to open and read, not
  // compared.)
  if (sagas && copied != *sagas) {
    Fail(kExitFailed, "backup: the copy in " + target.string() + " holds " +
                          std::to_string(copied) + " sagas, the store " +
                          std::to_string(*sagas));
  }
  const uint64_t bytes = DirBytes(target.string());
  if (common.json) {
    json j = {{"data_dir", common.data_dir},
              {"backup_dir", target.string()},
              {"sagas", copied},
              {"disk_bytes", bytes},
              {"via", route.online ? "server" : "offline"}};
    if (route.server_pid) j["server_pid"] = *route.server_pid;
    PrintJson(j);
    return kExitOk;
  }
  std::printf(
      "backed up %s to %s%s: %llu sagas, %s\n"
      "start a server on the copy with: cde-orchestrator serve --data-dir "
      "%s\n",
      common.data_dir.c_str(), target.string().c_str(),
      !route.online      ? ""
      : route.server_pid ? (" (taken by the server, pid " +
                            std::to_string(*route.server_pid) + ")")
                               .c_str()
                         : " (taken by the server)",
      static_cast<unsigned long long>(copied), FormatBytes(bytes).c_str(),
      target.string().c_str());
  return kExitOk;
}

}  // namespace cde::admin
