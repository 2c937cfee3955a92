#include "engine/workflow_dir.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "storage/json_depth.h"

namespace cde {
namespace {

namespace fs = std::filesystem;

Result<nlohmann::json> ReadJsonFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError(path.string() + ": cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  if (const size_t depth = JsonTextDepth(text.view()); depth > kMaxJsonDepth) {
    return Status::InvalidArgument(path.string() + ": " +
                                   TooDeepMessage(depth));
  }
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    return Status::InvalidArgument(path.string() + ": not valid JSON at byte " +
                                   std::to_string(e.byte) + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {  // e.g. a number like 1E400
    return Status::InvalidArgument(path.string() +
                                   ": not valid JSON: " + e.what());
  }
}

// Registers files[i..] one after another, then calls done.
struct DirLoad : std::enable_shared_from_this<DirLoad> {
  Engine* engine;
  std::vector<fs::path> files;
  std::vector<DefinitionRecord> loaded;
  Engine::Callback<std::vector<DefinitionRecord>> done;

  void Next(size_t i) {
    if (i == files.size()) return done(std::move(loaded));
    auto doc = ReadJsonFile(files[i]);
    if (!doc.ok()) return done(doc.status());
    auto self = shared_from_this();
    engine->RegisterWorkflow(
        *doc, DefinitionOrigin::kOperator, "workflows_dir",
        [self, i](Result<DefinitionRecord> r) {
          if (!r.ok()) {
            return self->done(r.status().WithContext(self->files[i].string()));
          }
          self->loaded.push_back(std::move(r).value());
          self->Next(i + 1);
        });
  }
};

}  // namespace

void RegisterWorkflowDir(Engine& engine, const std::string& dir,
                         Engine::Callback<std::vector<DefinitionRecord>> done) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return done(Status::InvalidArgument("workflows directory " + dir +
                                        " does not exist or is not a "
                                        "directory"));
  }
  auto load = std::make_shared<DirLoad>();
  load->engine = &engine;
  load->done = std::move(done);
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".json") {
      load->files.push_back(entry.path());
    }
  }
  if (ec) return load->done(Status::IOError(dir + ": " + ec.message()));
  std::sort(load->files.begin(), load->files.end());
  load->Next(0);
}

}  // namespace cde
