// Map steps: the steps inside run once per item, up to max_concurrency
// items at a time. The map step's progress is a few counters in the saga
// (MapProgress); each item's state is a row of its own, so an item's
// transition writes that item and the counters, never the other items.
#include <algorithm>

#include "engine/action_policy.h"
#include "engine/limits.h"
#include "engine/transitions/progress.h"

namespace cde::transitions_internal {

using nlohmann::json;

namespace {

MapProgress& ProgressOf(Plan& p, int map) {
  return p.saga.steps[static_cast<size_t>(map)].map;
}

// The items of `map` whose state changed since the planner last looked,
// each once; the others' stay to be looked at.
std::vector<ItemRef> TakeTouched(Plan& p, int map) {
  std::vector<ItemRef> mine;
  std::erase_if(p.touched, [&](const ItemRef& ref) {
    if (ref.map != map) return false;
    mine.push_back(ref);
    return true;
  });
  std::sort(mine.begin(), mine.end());
  mine.erase(std::unique(mine.begin(), mine.end()), mine.end());
  return mine;
}

bool Tolerated(const MapSpec& spec, uint32_t failed, uint32_t items) {
  if (spec.tolerated_percent) {
    return uint64_t{failed} * 100 <=
           uint64_t{*spec.tolerated_percent} * uint64_t{items};
  }
  return failed <= spec.tolerated_count;
}

// The item's running parallel steps end `status` with it.
void EndItemParallels(const PlanContext& ctx, int map, ItemState& item,
                      StepStatus status) {
  for (size_t k = 0; k < item.steps.size(); ++k) {
    if (Spec(ctx.def, map + 1 + static_cast<int>(k)).kind ==
            StepKind::kParallel &&
        item.steps[k].status == StepStatus::kRunning) {
      item.steps[k].status = status;
      item.steps[k].finished_ms = ctx.now_ms;
    }
  }
}

}  // namespace

void EndItem(const PlanContext& ctx, Plan& p, ItemRef ref, StepStatus status) {
  const ItemState* had = FindItem(ctx, p, ref);
  if (had == nullptr || had->status != StepStatus::kRunning) return;
  ItemState& item = MutableItem(ctx, p, ref);
  item.status = status;
  EndItemParallels(ctx, ref.map, item, StepStatus::kCancelled);
  MapProgress& mp = ProgressOf(p, ref.map);
  if (mp.running > 0) --mp.running;
}

namespace {

// An item's undo is over: succeeded if it compensated a step; none if
// nothing called for it after all (its only compensable step was stopped in
// flight and came back failed).
void EndItemUndo(ItemState& item) {
  const bool undid = std::any_of(
      item.steps.begin(), item.steps.end(), [](const StepState& st) {
        return st.compensation == CompensationStatus::kSucceeded;
      });
  item.compensation =
      undid ? CompensationStatus::kSucceeded : CompensationStatus::kNone;
}

// Whether undoing the item is called for: a step of it with a compensation
// needs undoing, or may (its attempt, stopped in flight, is still out), or
// its undo was under way.
bool ItemNeedsUndo(const PlanContext& ctx, int map, const ItemState& item) {
  if (item.compensation == CompensationStatus::kRunning) return true;
  if (item.compensation != CompensationStatus::kNone) return false;
  for (size_t k = 0; k < item.steps.size(); ++k) {
    const StepSpec& spec = Spec(ctx.def, map + 1 + static_cast<int>(k));
    const StepState& st = item.steps[k];
    if (spec.compensate &&
        (NeedsCompensation(st) || (spec.kind == StepKind::kAction &&
                                   st.status == StepStatus::kRunning))) {
      return true;
    }
  }
  return false;
}

// False if the output is over limits.output_bytes: the map step failed.
bool SucceedMap(const PlanContext& ctx, Plan& p, int map) {
  const StepSpec& spec = Spec(ctx.def, map);
  const MapProgress& mp = ProgressOf(p, map);
  const size_t last = static_cast<size_t>(spec.map.steps.back() - map - 1);
  json output = json::array();
  output.get_ref<json::array_t&>().reserve(mp.items);
  for (uint32_t i = 0; i < mp.items; ++i) {
    const ItemState* item = FindItem(ctx, p, {map, i});
    if (item == nullptr) {
      output.push_back(nullptr);
    } else if (item->status == StepStatus::kSucceeded) {
      output.push_back(item->steps[last].output);
    } else {
      output.push_back(
          {{"error",
            {{"kind", item->error.kind}, {"message", item->error.message}}}});
    }
  }
  // Each item's output is within the limit, but their sum need not be, and
  // every later transition rewrites the snapshot that holds it.
  if (Status s = CheckJsonSize("the map step's output", output,
                               ctx.max_output_bytes, "limits.output_bytes");
      !s.ok()) {
    FailPermanently(ctx, p, {map, -1}, false, {kLimitErrorKind, s.message()});
    return false;
  }
  StepState& st = p.saga.steps[static_cast<size_t>(map)];
  st.status = StepStatus::kSucceeded;
  st.finished_ms = ctx.now_ms;
  st.output = std::move(output);
  json data = StepRef(ctx.def, {map, -1}, false, 0);
  data["output"] = st.output;
  p.events.push_back({EventKind::kStepSucceeded, std::move(data)});
  return true;
}

// Renders and counts the items. False if the map step failed instead.
bool BeginMap(const PlanContext& ctx, Plan& p, int map) {
  const At at{map, -1};
  // From this plan's saga: the steps before the map may have succeeded in
  // this very transition.
  auto items = RenderMapItems(ctx.def, p.saga, map);
  if (!items.ok()) {
    FailPermanently(ctx, p, at, false, {"template", items.status().message()});
    return false;
  }
  if (items->size() > ctx.max_map_items) {
    FailPermanently(
        ctx, p, at, false,
        {kLimitErrorKind, "map.items: " + std::to_string(items->size()) +
                              " items, more than limits.map_items allows (" +
                              std::to_string(ctx.max_map_items) + ")"});
    return false;
  }
  StepState& st = p.saga.steps[static_cast<size_t>(map)];
  st.status = StepStatus::kRunning;
  st.error = {};
  if (st.started_ms == 0) st.started_ms = ctx.now_ms;
  st.map = MapProgress{};
  st.map.began = true;
  st.map.items = static_cast<uint32_t>(items->size());
  json data = json::object();
  data["items"] = st.map.items;
  data["step"] = Spec(ctx.def, map).path;
  p.events.push_back({EventKind::kMapStarted, std::move(data)});
  return true;
}

}  // namespace

bool RunMap(const PlanContext& ctx, Plan& p, int map) {
  const StepSpec& spec = Spec(ctx.def, map);
  if (!p.saga.steps[static_cast<size_t>(map)].map.began &&
      !BeginMap(ctx, p, map)) {
    return false;
  }
  if (p.saga.steps[static_cast<size_t>(map)].status != StepStatus::kRunning) {
    return false;
  }
  MapProgress& mp = ProgressOf(p, map);
  for (const ItemRef& ref : TakeTouched(p, map)) {
    const ItemState* item = FindItem(ctx, p, ref);
    if (item == nullptr || item->status != StepStatus::kRunning) continue;
    if (RunSequence(ctx, p, spec.map.steps, ref.index)) {
      MutableItem(ctx, p, ref).status = StepStatus::kSucceeded;
      --mp.running;
      ++mp.succeeded;
    }
    if (p.saga.state != SagaState::kRunning) return false;
  }
  while (mp.running < spec.map.max_concurrency && mp.next < mp.items &&
         p.saga.steps[static_cast<size_t>(map)].status ==
             StepStatus::kRunning) {
    const ItemRef ref{map, mp.next++};
    // After a replay, items below `next` that succeeded stay as they are.
    if (const ItemState* had = FindItem(ctx, p, ref);
        had != nullptr && had->status != StepStatus::kPending) {
      continue;
    }
    MutableItem(ctx, p, ref).status = StepStatus::kRunning;
    ++mp.running;
    mp.started = std::max(mp.started, ref.index + 1);
    if (RunSequence(ctx, p, spec.map.steps, ref.index)) {
      MutableItem(ctx, p, ref).status = StepStatus::kSucceeded;
      --mp.running;
      ++mp.succeeded;
    }
    if (p.saga.state != SagaState::kRunning) return false;
  }
  if (p.saga.steps[static_cast<size_t>(map)].status != StepStatus::kRunning ||
      mp.running != 0 || mp.next < mp.items) {
    return false;
  }
  return SucceedMap(ctx, p, map);
}

bool UndoMap(const PlanContext& ctx, Plan& p, int map) {
  const StepSpec& spec = Spec(ctx.def, map);
  MapProgress& mp = ProgressOf(p, map);
  if (!mp.began) return true;
  if (!mp.undo_began) {
    mp.undo_began = true;
    mp.undo_left = mp.started;
    mp.undoing = 0;
  }
  for (const ItemRef& ref : TakeTouched(p, map)) {
    const ItemState* item = FindItem(ctx, p, ref);
    if (item == nullptr || item->compensation != CompensationStatus::kRunning) {
      continue;
    }
    if (UndoSequence(ctx, p, spec.map.steps, ref.index)) {
      EndItemUndo(MutableItem(ctx, p, ref));
      --mp.undoing;
    }
    if (!Undoing(p.saga.state)) return false;  // parked
  }
  // Newest first: the items that started last are undone first.
  while (mp.undoing < spec.map.max_concurrency && mp.undo_left > 0) {
    const ItemRef ref{map, --mp.undo_left};
    const ItemState* item = FindItem(ctx, p, ref);
    if (item == nullptr || !ItemNeedsUndo(ctx, map, *item)) continue;
    MutableItem(ctx, p, ref).compensation = CompensationStatus::kRunning;
    ++mp.undoing;
    if (UndoSequence(ctx, p, spec.map.steps, ref.index)) {
      EndItemUndo(MutableItem(ctx, p, ref));
      --mp.undoing;
    }
    if (!Undoing(p.saga.state)) return false;
  }
  if (mp.undo_left != 0 || mp.undoing != 0) return false;
  // Its items are undone: the map step's own compensation is over (none
  // is defined if no step inside it has one).
  StepState& st = p.saga.steps[static_cast<size_t>(map)];
  if (st.compensation == CompensationStatus::kNone && mp.started > 0) {
    bool any = false;
    for (int k = map + 1; k <= map + spec.map.size; ++k) {
      any = any || Spec(ctx.def, k).compensate.has_value();
    }
    st.compensation =
        any ? CompensationStatus::kSucceeded : CompensationStatus::kNotDefined;
  }
  return true;
}

void FailItem(const PlanContext& ctx, Plan& p, At at, const ErrorInfo& error) {
  const int map = Spec(ctx.def, at.step).in_map;
  const ItemRef ref{map, static_cast<uint32_t>(at.item)};
  const StepSpec& spec = Spec(ctx.def, map);
  const std::string item_path = spec.path + "[" + std::to_string(at.item) + "]";
  EndItem(ctx, p, ref, StepStatus::kFailed);
  ItemState& item = MutableItem(ctx, p, ref);
  item.status = StepStatus::kFailed;  // also if it had stopped already
  item.error = error;
  MapProgress& mp = ProgressOf(p, map);
  ++mp.failed;
  // The item's other branches stop with it.
  StopOthers(ctx, p, at, item_path + ".",
             "step " + PathOf(ctx.def, at) + " failed");
  const bool tolerated = Tolerated(spec.map, mp.failed, mp.items);
  json data = json::object();
  data["error"] = error.kind + ": " + error.message;
  data["item"] = at.item;
  data["step"] = spec.path;
  data["tolerated"] = tolerated;
  p.events.push_back({EventKind::kItemFailed, std::move(data)});
  if (tolerated) return;  // the caller advances: the map goes on
  // Failed already (by an earlier item, while a cancel waited for the items
  // in flight): once is enough.
  if (p.saga.steps[static_cast<size_t>(map)].status != StepStatus::kRunning) {
    return;
  }
  FailPermanently(
      ctx, p, {map, -1}, false,
      {error.kind, "item " + std::to_string(at.item) + " (" +
                       PathOf(ctx.def, at) + ") failed: " + error.message});
}

void EndMaps(const PlanContext& ctx, Plan& p, StepStatus status) {
  for (size_t m = 0; m < ctx.def.steps.size(); ++m) {
    const int map = static_cast<int>(m);
    StepState& st = p.saga.steps[m];
    if (ctx.def.steps[m].kind != StepKind::kMap) continue;
    if (st.status == StepStatus::kRunning) {
      st.status = status;
      st.finished_ms = ctx.now_ms;
    }
    // A map that failed while a cancel waited may still have items going.
    if (st.map.running == 0) continue;
    const uint32_t started = st.map.started;
    for (uint32_t i = 0; i < started && ProgressOf(p, map).running > 0; ++i) {
      EndItem(ctx, p, {map, i}, StepStatus::kCancelled);
    }
    ProgressOf(p, map).running = 0;
  }
}

void ReplayMaps(const PlanContext& ctx, Plan& p, int from) {
  for (size_t m = 0; m < ctx.def.steps.size(); ++m) {
    const int map = static_cast<int>(m);
    StepState& st = p.saga.steps[m];
    if (ctx.def.steps[m].kind != StepKind::kMap) continue;
    if (!st.map.began) {
      // It failed before its items were known (template, limit): anew.
      if (st.status != StepStatus::kSucceeded) st = StepState{};
      continue;
    }
    const bool all = map >= from;
    if (!all && st.status == StepStatus::kSucceeded) continue;
    const uint32_t started = st.map.started;
    uint32_t failed = 0;
    uint32_t next = st.map.items;
    for (uint32_t i = 0; i < started; ++i) {
      const ItemState* item = FindItem(ctx, p, {map, i});
      if (item == nullptr) continue;
      if (!all && item->status == StepStatus::kSucceeded) continue;
      if (!all && item->status == StepStatus::kFailed) ++failed;
      ItemState& again = MutableItem(ctx, p, {map, i});
      if (all) {
        ItemState fresh;
        for (const StepState& step : again.steps) {
          fresh.steps.push_back(Rerun(step));
        }
        again = std::move(fresh);
        continue;
      }
      // What did not finish runs again, as the saga's own steps do.
      for (StepState& step : again.steps) {
        if (step.status != StepStatus::kSucceeded) step = Rerun(step);
      }
      // An undo that a park cut off is decided again if the saga undoes.
      if (again.compensation == CompensationStatus::kRunning) {
        again.compensation = CompensationStatus::kNone;
      }
      again.status = StepStatus::kPending;
      again.error = {};
      next = std::min(next, i);
    }
    if (all) {
      st = StepState{};
      continue;
    }
    st.status = StepStatus::kRunning;
    st.error = {};
    st.finished_ms = 0;
    st.compensation = CompensationStatus::kNone;
    st.map.failed -= std::min(st.map.failed, failed);
    st.map.running = 0;
    st.map.next = std::min(st.map.next, next);
    st.map.undo_began = false;
    st.map.undo_left = 0;
    st.map.undoing = 0;
  }
  p.touched.clear();
}

StepState* FindFailedItemCompensation(const PlanContext& ctx, Plan& p) {
  StepState* failed = nullptr;
  for (size_t m = 0; m < ctx.def.steps.size(); ++m) {
    const int map = static_cast<int>(m);
    if (ctx.def.steps[m].kind != StepKind::kMap) continue;
    const uint32_t started = p.saga.steps[m].map.started;
    for (uint32_t i = 0; i < started; ++i) {
      const ItemState* item = FindItem(ctx, p, {map, i});
      if (item == nullptr ||
          item->compensation != CompensationStatus::kRunning) {
        continue;
      }
      // Its undo resumes: the park cut it off (MutableItem marks it
      // touched, so UndoMap looks at it again).
      ItemState& resumed = MutableItem(ctx, p, {map, i});
      for (StepState& st : resumed.steps) {
        if (st.compensation == CompensationStatus::kFailed) failed = &st;
      }
    }
  }
  return failed;
}

}  // namespace cde::transitions_internal
