#include "tools/admin/saga_view.h"

#include "engine/definition_registry.h"
#include "tools/admin/output.h"

namespace cde::admin {

using nlohmann::json;

const WorkflowDefinition* Definitions::Find(const std::string& workflow,
                                            uint32_t version) {
  auto key = std::make_pair(workflow, version);
  auto it = cache_.find(key);
  if (it == cache_.end()) {
    std::shared_ptr<const WorkflowDefinition> def;
    if (auto record = store_.GetDefinition(workflow, version); record.ok()) {
      if (auto parsed = ParseStoredDefinition(*record); parsed.ok()) {
        def = std::make_shared<const WorkflowDefinition>(
            std::move(parsed).value());
      }
    }
    it = cache_.emplace(key, std::move(def)).first;
  }
  return it->second.get();
}

json WaitsJson(const SagaView& view) {
  json out = json::array();
  for (const WaitView& w : view.waits()) {
    json j = {{"kind", WaitKindName(w.kind)}};
    if (!w.path.empty()) {
      j["path"] = w.path;
      j["compensation"] = w.compensation;
      j["attempt"] = w.attempt;
      if (w.stopped) j["stopped"] = true;
    }
    if (TimerKindOf(w.kind)) {
      j["due_ms"] = w.due_ms;
      j["due_at"] = FormatTime(w.due_ms);
    }
    out.push_back(std::move(j));
  }
  return out;
}

namespace {

std::string DescribeWait(const WaitView& w, int64_t now_ms) {
  const std::string what =
      (w.compensation ? "compensation of step " : "step ") + w.path;
  auto due = [&] {
    const int64_t in = w.due_ms - now_ms;
    return "due " + FormatTime(w.due_ms) +
           (in >= 0 ? " (in " + FormatDuration(in) + ")"
                    : " (overdue by " + FormatDuration(-in) + ")");
  };
  switch (w.kind) {
    case Wait::Kind::kNothing:
      return "";
    case Wait::Kind::kAttempt:
      return "the result of attempt " + std::to_string(w.attempt) + " of " +
             what +
             (w.stopped ? " (in flight, stopped: awaited before its undo)"
                        : " (in flight)");
    case Wait::Kind::kBackoff:
      return "the retry timer of " + what + " before attempt " +
             std::to_string(w.attempt + 1) + ", " + due();
    case Wait::Kind::kSleep:
      return "the timer of sleep " + what + ", " + due();
    case Wait::Kind::kQueued:
      return "a free slot under the workflow's max_concurrency (queued)";
    case Wait::Kind::kRedrive:
      return "its automatic replay (dlq.auto_replay), " + due();
  }
  return "";
}

}  // namespace

std::string DescribeWaits(const SagaView& view, int64_t now_ms) {
  std::string out;
  for (const WaitView& w : view.waits()) {
    if (!out.empty()) out += "; ";
    out += DescribeWait(w, now_ms);
  }
  return out;
}

json SagaSummary(const SagaRecord& r, const Result<Saga>& saga,
                 Definitions& defs, int64_t now_ms) {
  const bool finished = IsTerminal(r.state) || r.state == SagaState::kParked;
  json j = {{"id", r.id},
            {"workflow", r.workflow},
            {"version", r.version},
            {"state", SagaStateName(r.state)},
            {"created_ms", r.created_ms},
            {"created_at", TimeJson(r.created_ms)},
            {"updated_ms", r.updated_ms},
            {"updated_at", TimeJson(r.updated_ms)},
            {"age_ms", now_ms - r.created_ms},
            {"duration_ms", (finished ? r.updated_ms : now_ms) - r.created_ms},
            {"last_seq", r.last_seq},
            {"current_step", nullptr},
            {"total_attempts", nullptr},
            {"waits", nullptr}};
  if (!saga.ok()) {
    j["body_error"] = saga.status().message();
    return j;
  }
  const SagaView view(*saga, defs.Find(r.workflow, r.version));
  if (const auto at = view.position()) {
    j["current_step"] = {
        {"path", at->step->path},
        {"compensation", at->compensation},
        {"attempts", at->attempts},
        {"max_attempts",
         at->max_attempts != 0 ? json(at->max_attempts) : json(nullptr)}};
  }
  j["total_attempts"] = view.total_attempts();
  j["waits"] = WaitsJson(view);
  return j;
}

Colour StepColour(StepStatus s) {
  switch (s) {
    case StepStatus::kSucceeded:
      return Colour::kGreen;
    case StepStatus::kFailed:
      return Colour::kRed;
    case StepStatus::kRunning:
      return Colour::kCyan;
    case StepStatus::kPending:
    case StepStatus::kCancelled:
      return Colour::kDim;
  }
  return Colour::kNone;
}

}  // namespace cde::admin
