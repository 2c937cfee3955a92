// Loading workflow definitions from a directory at start (`--workflows DIR`):
// every *.json file in it, in name order, is registered like a
// register_workflow call (identical re-registration is a no-op, so loading
// the same directory at every start is safe).
#ifndef CDE_ENGINE_WORKFLOW_DIR_H_
#define CDE_ENGINE_WORKFLOW_DIR_H_

#include <string>
#include <vector>

#include "engine/engine.h"

namespace cde {

// Registers every definition in `dir`; `done` gets them all, or the first
// error prefixed with its file ("workflows/trip.json: steps[0].name: ...";
// JSON syntax errors give the byte offset). Files are read on the loop
// thread: call this at start, before serving.
void RegisterWorkflowDir(Engine& engine, const std::string& dir,
                         Engine::Callback<std::vector<DefinitionRecord>> done);

}  // namespace cde

#endif  // CDE_ENGINE_WORKFLOW_DIR_H_
