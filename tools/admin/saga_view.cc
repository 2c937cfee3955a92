#include "tools/admin/saga_view.h"

#include "tools/admin/output.h"

namespace cde::admin {

using nlohmann::json;

namespace {

uint32_t MaxAttempts(const json& spec) {
  auto it = spec.find("retry");
  if (it == spec.end() || !it->is_object()) return 3;
  auto m = it->find("max_attempts");
  if (m == it->end() || !m->is_number_unsigned()) return 3;
  return m->get<uint32_t>();
}

std::string Text(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

std::vector<StepInfo> StepsOf(const json& definition) {
  std::vector<StepInfo> out;
  auto steps = definition.find("steps");
  if (steps == definition.end() || !steps->is_array()) return out;
  for (const json& s : *steps) {
    if (!s.is_object()) continue;
    StepInfo info;
    info.name = Text(s, "name");
    info.action = Text(s, "action");
    info.max_attempts = MaxAttempts(s);
    if (auto c = s.find("compensate"); c != s.end() && c->is_object()) {
      info.compensate_action = Text(*c, "action");
      info.compensate_max_attempts = MaxAttempts(*c);
    }
    out.push_back(std::move(info));
  }
  return out;
}

const std::vector<StepInfo>* Definitions::Steps(const std::string& workflow,
                                                uint32_t version) {
  auto key = std::make_pair(workflow, version);
  auto it = cache_.find(key);
  if (it == cache_.end()) {
    std::optional<std::vector<StepInfo>> steps;
    auto def = store_.GetDefinition(workflow, version);
    if (def.ok()) steps = StepsOf(def->definition);
    it = cache_.emplace(key, std::move(steps)).first;
  }
  return it->second ? &*it->second : nullptr;
}

std::string Definitions::StepName(const std::string& workflow, uint32_t version,
                                  int index) {
  const auto* steps = Steps(workflow, version);
  if (steps != nullptr && index >= 0 &&
      static_cast<size_t>(index) < steps->size() &&
      !(*steps)[static_cast<size_t>(index)].name.empty()) {
    return (*steps)[static_cast<size_t>(index)].name;
  }
  return "step[" + std::to_string(index) + "]";
}

Position CurrentStep(const Saga& saga) {
  Position p;
  auto attempts_of = [&](int step, bool compensation) {
    if (step < 0 || static_cast<size_t>(step) >= saga.steps.size()) return 0u;
    const StepState& st = saga.steps[static_cast<size_t>(step)];
    return compensation ? st.compensation_attempts : st.attempts;
  };
  if (saga.wait.kind != Wait::Kind::kNothing && saga.wait.step >= 0) {
    p.step = saga.wait.step;
    p.compensation = saga.wait.compensation;
  } else if (saga.state == SagaState::kParked) {
    for (size_t i = saga.steps.size(); i-- > 0;) {
      if (saga.steps[i].compensation == CompensationStatus::kFailed) {
        p.step = static_cast<int>(i);
        p.compensation = true;
        break;
      }
    }
    if (p.step < 0) p.step = saga.failed_step;
  }
  p.attempts = attempts_of(p.step, p.compensation);
  return p;
}

uint32_t TotalAttempts(const Saga& saga) {
  uint32_t n = 0;
  for (const StepState& st : saga.steps) {
    n += st.attempts + st.compensation_attempts;
  }
  return n;
}

json WaitJson(const Saga& saga, Definitions& defs) {
  const Wait& w = saga.wait;
  if (w.kind == Wait::Kind::kNothing) return nullptr;
  json j = {{"kind", WaitKindName(w.kind)}};
  if (w.step >= 0) {
    j["step"] = defs.StepName(saga.workflow, saga.version, w.step);
    j["step_index"] = w.step;
    j["compensation"] = w.compensation;
    j["attempt"] = w.attempt;
  }
  if (w.kind == Wait::Kind::kBackoff || w.kind == Wait::Kind::kSleep) {
    j["due_ms"] = w.due_ms;
    j["due_at"] = FormatTime(w.due_ms);
  }
  return j;
}

std::string DescribeWait(const Saga& saga, Definitions& defs, int64_t now_ms) {
  const Wait& w = saga.wait;
  const std::string step =
      w.step >= 0 ? defs.StepName(saga.workflow, saga.version, w.step) : "";
  const std::string what =
      (w.compensation ? "compensation of step " : "step ") + step;
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
             what + " (in flight)";
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
            {"wait", nullptr}};
  if (!saga.ok()) {
    j["body_error"] = saga.status().message();
    return j;
  }
  const Position p = CurrentStep(*saga);
  if (p.step >= 0) {
    json cur = {{"index", p.step},
                {"name", defs.StepName(r.workflow, r.version, p.step)},
                {"compensation", p.compensation},
                {"attempts", p.attempts},
                {"max_attempts", nullptr}};
    if (const auto* steps = defs.Steps(r.workflow, r.version);
        steps != nullptr && static_cast<size_t>(p.step) < steps->size()) {
      const StepInfo& info = (*steps)[static_cast<size_t>(p.step)];
      cur["max_attempts"] =
          p.compensation ? info.compensate_max_attempts : info.max_attempts;
    }
    j["current_step"] = std::move(cur);
  }
  j["total_attempts"] = TotalAttempts(*saga);
  j["wait"] = WaitJson(*saga, defs);
  return j;
}

}  // namespace cde::admin
