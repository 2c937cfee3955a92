#include "engine/saga_view.h"

namespace cde {

SagaView::SagaView(const Saga& saga, const WorkflowDefinition* def)
    : saga_(saga), def_(def) {
  const bool named = def != nullptr && def->steps.size() == saga.steps.size();
  if (!named) def_ = nullptr;  // not the definition this saga ran
  steps_.reserve(saga.steps.size());
  for (size_t i = 0; i < saga.steps.size(); ++i) {
    StepView v;
    if (def_ != nullptr) {
      v.spec = &def_->steps[i];
      v.path = v.spec->path;
      for (const Branch& b : v.spec->branches) {
        v.branches.push_back({b.name, {b.steps.begin(), b.steps.end()}});
      }
      v.depth = def_->Depth(static_cast<int>(i));
      v.in_map = v.spec->in_map >= 0;
      if (v.spec->parent < 0) top_.push_back(i);
    } else {
      v.path = "step[" + std::to_string(i) + "]";
      top_.push_back(i);
    }
    v.state = &saga.steps[i];
    steps_.push_back(std::move(v));
  }
  for (const Wait& w : saga.waits) {
    // A path this view does not know (its definition is not at hand) is
    // shown as stored.
    waits_.push_back(
        {w.kind, w.path, w.compensation, w.attempt, w.due_ms, w.stopped});
  }
}

const StepView* SagaView::AtIndex(int index) const {
  if (index < 0 || static_cast<size_t>(index) >= steps_.size()) return nullptr;
  return &steps_[static_cast<size_t>(index)];
}

const StepView* SagaView::Find(std::string_view path) const {
  for (const StepView& s : steps_) {
    if (s.path == path) return &s;
  }
  return nullptr;
}

const StepView* SagaView::failed_step() const {
  return AtIndex(saga_.failed_step);
}

const StepView* SagaView::failed_compensation() const {
  // At most one is: the saga parks at the first that fails, and a replay
  // runs it again.
  for (const StepView& s : steps_) {
    if (s.state->compensation == CompensationStatus::kFailed) return &s;
  }
  return nullptr;
}

std::optional<Position> SagaView::position() const {
  Position p;
  // The step a wait is on: a step inside a map step waits as an item's
  // ("fan[3].charge"), which names the map's step ("fan.charge").
  auto step_of = [this](const std::string& path) {
    const StepView* s = Find(path);
    if (s == nullptr && def_ != nullptr)
      s = AtIndex(InstanceAt(*def_, path).step);
    return s;
  };
  // The wait that moves the saga on: not an attempt stopped in flight
  // (awaited only so that its step's undo may follow), unless that is all
  // it waits for.
  const WaitView* at = nullptr;
  for (const WaitView& w : waits_) {
    if (w.path.empty() || step_of(w.path) == nullptr) continue;
    if (at == nullptr || (at->stopped && !w.stopped)) at = &w;
    if (!at->stopped) break;
  }
  if (at != nullptr) {
    p.step = step_of(at->path);
    p.compensation = at->compensation;
  }
  if (p.step == nullptr && saga_.state == SagaState::kParked) {
    p.step = failed_compensation();
    p.compensation = p.step != nullptr;
    if (p.step == nullptr) p.step = failed_step();
  }
  if (p.step == nullptr) return std::nullopt;
  const StepState& st = *p.step->state;
  p.attempts = p.compensation ? st.compensation_attempts : st.attempts;
  if (const StepSpec* spec = p.step->spec) {
    if (!p.compensation) {
      p.max_attempts = spec->run.retry.max_attempts;
    } else if (spec->compensate) {
      p.max_attempts = spec->compensate->retry.max_attempts;
    }
  }
  return p;
}

uint32_t SagaView::total_attempts() const {
  uint32_t n = 0;
  for (const StepState& st : saga_.steps) {
    n += st.attempts + st.compensation_attempts;
  }
  return n;
}

uint64_t SagaView::remaining() const {
  uint64_t n = 0;
  const SagaState state = saga_.state;
  const bool undoing =
      state == SagaState::kCompensating || state == SagaState::kCancelling;
  for (const StepView& step : steps_) {
    const StepState& st = *step.state;
    if (step.parallel() || step.in_map) continue;  // counted by their own
    if (step.map()) {
      // Its items still to finish (an item of several steps counts once).
      if (state == SagaState::kRunning && st.status != StepStatus::kSucceeded) {
        n += st.map.began ? st.map.items - st.map.succeeded - st.map.failed : 1;
      } else if (undoing && st.map.undo_began) {
        n += st.map.undo_left + st.map.undoing;
      }
      continue;
    }
    if (state == SagaState::kRunning) {
      if (st.status != StepStatus::kSucceeded) ++n;
    } else if (undoing) {
      const bool has_compensation =
          step.spec != nullptr && step.spec->compensate.has_value();
      const bool to_undo = st.compensation == CompensationStatus::kRunning ||
                           NeedsCompensation(st);
      if (has_compensation && to_undo) ++n;
    }
  }
  return n;
}

}  // namespace cde
