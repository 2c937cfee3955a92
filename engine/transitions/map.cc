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

// The map instance's progress, to change (for a map step inside another
// map step's steps, in the state of the item it runs for, which is
// rewritten with it).
MapProgress& ProgressOf(const PlanContext& ctx, Plan& p, const At& map) {
  return MutableState(ctx, p, map).map;
}

// The items of map instance `map` whose state changed since the planner
// last looked, each once; the others' stay to be looked at.
std::vector<ItemRef> TakeTouched(Plan& p, const MapInstance& map) {
  std::vector<ItemRef> mine;
  std::erase_if(p.touched, [&](const ItemRef& ref) {
    if (ref.map != map.map || ref.outer != map.outer) return false;
    mine.push_back(ref);
    return true;
  });
  std::sort(mine.begin(), mine.end());
  mine.erase(std::unique(mine.begin(), mine.end()), mine.end());
  return mine;
}

// Item `index` of map instance `map`, and the instance its steps run as
// (RunSequence's `in`).
ItemRef ItemAt(const At& map, uint32_t index) {
  return {map.step, index, MapInstanceOf(map).outer};
}
At ItemScope(const ItemRef& ref) { return StepOfItem(ref, -1); }

bool Tolerated(const MapSpec& spec, uint32_t failed, uint32_t items) {
  if (spec.tolerated_percent) {
    return uint64_t{failed} * 100 <=
           uint64_t{*spec.tolerated_percent} * uint64_t{items};
  }
  return failed <= spec.tolerated_count;
}

}  // namespace

void EndItem(const PlanContext& ctx, Plan& p, const ItemRef& ref,
             StepStatus status) {
  const ItemState* had = FindItem(ctx, p, ref);
  if (had == nullptr || had->status != StepStatus::kRunning) return;
  MutableItem(ctx, p, ref).status = status;
  // Its running parallel and map steps are cut short with it, and the items
  // of its map steps that are still going.
  const size_t size = had->steps.size();
  for (size_t k = 0; k < size; ++k) {
    const int step = ref.map + 1 + static_cast<int>(k);
    const StepKind kind = Spec(ctx.def, step).kind;
    if (kind != StepKind::kParallel && kind != StepKind::kMap) continue;
    StepState& st = MutableItem(ctx, p, ref).steps[k];
    if (st.status == StepStatus::kRunning) {
      st.status = StepStatus::kCancelled;
      st.finished_ms = ctx.now_ms;
    }
    if (kind != StepKind::kMap || st.map.running == 0) continue;
    const At map = StepOfItem(ref, step);
    const uint32_t started = st.map.started;
    for (uint32_t i = 0; i < started && ProgressOf(ctx, p, map).running > 0;
         ++i) {
      EndItem(ctx, p, ItemAt(map, i), StepStatus::kCancelled);
    }
    ProgressOf(ctx, p, map).running = 0;
  }
  MapProgress& mp = ProgressOf(ctx, p, MapStepInstance(ref.instance()));
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
// a map step of it began items whose steps have compensations, or its undo
// was under way.
bool ItemNeedsUndo(const PlanContext& ctx, int map, const ItemState& item) {
  if (item.compensation == CompensationStatus::kRunning) return true;
  if (item.compensation != CompensationStatus::kNone) return false;
  for (size_t k = 0; k < item.steps.size(); ++k) {
    const int step = map + 1 + static_cast<int>(k);
    const StepSpec& spec = Spec(ctx.def, step);
    const StepState& st = item.steps[k];
    if (spec.kind == StepKind::kMap) {
      if (st.map.began && st.map.started > 0 &&
          st.compensation == CompensationStatus::kNone &&
          MapHasCompensations(ctx.def, step)) {
        return true;
      }
      continue;
    }
    if (spec.compensate &&
        (NeedsCompensation(st) || (spec.kind == StepKind::kAction &&
                                   st.status == StepStatus::kRunning))) {
      return true;
    }
  }
  return false;
}

// False if the output is over limits.output_bytes: the map step failed.
bool SucceedMap(const PlanContext& ctx, Plan& p, const At& map) {
  const StepSpec& spec = Spec(ctx.def, map.step);
  const uint32_t count = StateOf(ctx, p, map).map.items;
  const size_t last = static_cast<size_t>(spec.map.steps.back() - map.step - 1);
  json output = json::array();
  output.get_ref<json::array_t&>().reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    const ItemState* item = FindItem(ctx, p, ItemAt(map, i));
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
  // every later transition rewrites the snapshot (or item) that holds it.
  if (Status s = CheckJsonSize("the map step's output", output,
                               ctx.max_output_bytes, "limits.output_bytes");
      !s.ok()) {
    FailPermanently(ctx, p, map, false, {kLimitErrorKind, s.message()});
    return false;
  }
  StepState& st = MutableState(ctx, p, map);
  st.status = StepStatus::kSucceeded;
  st.finished_ms = ctx.now_ms;
  st.output = std::move(output);
  EventData data = StepRef(ctx.def, map, false, 0);
  data.Set("output", st.output);
  p.events.push_back({EventKind::kStepSucceeded, std::move(data)});
  return true;
}

// Renders and counts the items. False if the map step failed instead.
bool BeginMap(const PlanContext& ctx, Plan& p, const At& map) {
  // From this plan's state: the steps before the map may have succeeded in
  // this very transition.
  auto items =
      RenderMapItems(ctx.def, p.saga, MapInstanceOf(map), SourceOf(ctx, p));
  if (!items.ok()) {
    FailPermanently(ctx, p, map, false, {"template", items.status().message()});
    return false;
  }
  if (items->size() > ctx.max_map_items) {
    FailPermanently(
        ctx, p, map, false,
        {kLimitErrorKind, "map.items: " + std::to_string(items->size()) +
                              " items, more than limits.map_items allows (" +
                              std::to_string(ctx.max_map_items) + ")"});
    return false;
  }
  // Inside other map steps it runs once per item of theirs: its runs
  // together stay within the limit (each run within the limit divided by
  // the items of the runs around it), so that nesting does not multiply it.
  uint64_t runs = 1;
  for (At m = map; m.item >= 0 && runs <= ctx.max_map_items;) {
    const At outer = MapStepInstance({Spec(ctx.def, m.step).in_map, m.outer});
    runs *= std::max<uint32_t>(1, StateOf(ctx, p, outer).map.items);
    m = outer;
  }
  if (runs > 1 && items->size() * runs > ctx.max_map_items) {
    FailPermanently(
        ctx, p, map, false,
        {kLimitErrorKind,
         "map.items: " + std::to_string(items->size()) + " items in each of " +
             std::to_string(runs) + " runs of map step '" +
             Spec(ctx.def, map.step).path +
             "' (one per item of the map steps around it) come to more "
             "than limits.map_items allows (" +
             std::to_string(ctx.max_map_items) + ")"});
    return false;
  }
  StepState& st = MutableState(ctx, p, map);
  st.status = StepStatus::kRunning;
  st.error = {};
  if (st.started_ms == 0) st.started_ms = ctx.now_ms;
  st.map = MapProgress{};
  st.map.began = true;
  st.map.items = static_cast<uint32_t>(items->size());
  EventData data;
  data.Set("items", st.map.items).Set("step", PathOf(ctx.def, map));
  p.events.push_back({EventKind::kMapStarted, std::move(data)});
  return true;
}

}  // namespace

bool MapHasCompensations(const WorkflowDefinition& def, int map) {
  const StepSpec& spec = Spec(def, map);
  for (int k = map + 1; k <= map + spec.map.size; ++k) {
    if (Spec(def, k).compensate.has_value()) return true;
  }
  return false;
}

bool RunMap(const PlanContext& ctx, Plan& p, const At& map) {
  const StepSpec& spec = Spec(ctx.def, map.step);
  if (!StateOf(ctx, p, map).map.began && !BeginMap(ctx, p, map)) return false;
  // Replayed inside an outer item (ReplayMap): it goes on as the item does.
  if (StateOf(ctx, p, map).status == StepStatus::kPending) {
    MutableState(ctx, p, map).status = StepStatus::kRunning;
  }
  if (StateOf(ctx, p, map).status != StepStatus::kRunning) return false;
  MapProgress& mp = ProgressOf(ctx, p, map);
  const auto running = [&] {
    return StateOf(ctx, p, map).status == StepStatus::kRunning;
  };
  for (const ItemRef& ref : TakeTouched(p, MapInstanceOf(map))) {
    const ItemState* item = FindItem(ctx, p, ref);
    if (item == nullptr || item->status != StepStatus::kRunning) continue;
    if (RunSequence(ctx, p, spec.map.steps, ItemScope(ref))) {
      MutableItem(ctx, p, ref).status = StepStatus::kSucceeded;
      --mp.running;
      ++mp.succeeded;
    }
    if (p.saga.state != SagaState::kRunning) return false;
  }
  while (mp.running < spec.map.max_concurrency && mp.next < mp.items &&
         running()) {
    const ItemRef ref = ItemAt(map, mp.next++);
    // After a replay, items below `next` that succeeded stay as they are.
    if (const ItemState* had = FindItem(ctx, p, ref);
        had != nullptr && had->status != StepStatus::kPending) {
      continue;
    }
    MutableItem(ctx, p, ref).status = StepStatus::kRunning;
    ++mp.running;
    mp.started = std::max(mp.started, ref.index + 1);
    if (RunSequence(ctx, p, spec.map.steps, ItemScope(ref))) {
      MutableItem(ctx, p, ref).status = StepStatus::kSucceeded;
      --mp.running;
      ++mp.succeeded;
    }
    if (p.saga.state != SagaState::kRunning) return false;
  }
  if (!running() || mp.running != 0 || mp.next < mp.items) return false;
  return SucceedMap(ctx, p, map);
}

bool UndoMap(const PlanContext& ctx, Plan& p, const At& map) {
  const StepSpec& spec = Spec(ctx.def, map.step);
  if (!StateOf(ctx, p, map).map.began) return true;
  MapProgress& mp = ProgressOf(ctx, p, map);
  if (!mp.undo_began) {
    mp.undo_began = true;
    mp.undo_left = mp.started;
    mp.undoing = 0;
  }
  for (const ItemRef& ref : TakeTouched(p, MapInstanceOf(map))) {
    const ItemState* item = FindItem(ctx, p, ref);
    if (item == nullptr || item->compensation != CompensationStatus::kRunning) {
      continue;
    }
    if (UndoSequence(ctx, p, spec.map.steps, ItemScope(ref))) {
      EndItemUndo(MutableItem(ctx, p, ref));
      --mp.undoing;
    }
    if (!Undoing(p.saga.state)) return false;  // parked
  }
  // Newest first: the items that started last are undone first.
  while (mp.undoing < spec.map.max_concurrency && mp.undo_left > 0) {
    const ItemRef ref = ItemAt(map, --mp.undo_left);
    const ItemState* item = FindItem(ctx, p, ref);
    if (item == nullptr || !ItemNeedsUndo(ctx, map.step, *item)) continue;
    MutableItem(ctx, p, ref).compensation = CompensationStatus::kRunning;
    ++mp.undoing;
    if (UndoSequence(ctx, p, spec.map.steps, ItemScope(ref))) {
      EndItemUndo(MutableItem(ctx, p, ref));
      --mp.undoing;
    }
    if (!Undoing(p.saga.state)) return false;
  }
  if (mp.undo_left != 0 || mp.undoing != 0) return false;
  // Its items are undone: the map step's own compensation is over (none
  // is defined if no step inside it has one).
  StepState& st = MutableState(ctx, p, map);
  if (st.compensation == CompensationStatus::kNone && mp.started > 0) {
    st.compensation = MapHasCompensations(ctx.def, map.step)
                          ? CompensationStatus::kSucceeded
                          : CompensationStatus::kNotDefined;
  }
  return true;
}

void FailItem(const PlanContext& ctx, Plan& p, const At& at,
              const ErrorInfo& error) {
  const ItemRef ref = ItemOf(ctx, at);
  const At map = MapStepInstance(ref.instance());
  const StepSpec& spec = Spec(ctx.def, ref.map);
  const std::string map_path = PathOf(ctx.def, map);
  const std::string item_path =
      map_path + "[" + std::to_string(ref.index) + "]";
  EndItem(ctx, p, ref, StepStatus::kFailed);
  ItemState& item = MutableItem(ctx, p, ref);
  item.status = StepStatus::kFailed;  // also if it had stopped already
  item.error = error;
  MapProgress& mp = ProgressOf(ctx, p, map);
  ++mp.failed;
  // The item's other branches (and items of map steps in it) stop with it.
  StopOthers(ctx, p, at, item_path + ".",
             "step " + PathOf(ctx.def, at) + " failed");
  const bool tolerated = Tolerated(spec.map, mp.failed, mp.items);
  EventData data;
  data.Set("error", error.kind + ": " + error.message)
      .Set("item", ref.index)
      .Set("step", map_path)
      .Set("tolerated", tolerated);
  p.events.push_back({EventKind::kItemFailed, std::move(data)});
  if (tolerated) return;  // the caller advances: the map goes on
  // Failed already (by an earlier item, while a cancel waited for the items
  // in flight): once is enough.
  if (StateOf(ctx, p, map).status != StepStatus::kRunning) return;
  FailPermanently(
      ctx, p, map, false,
      {error.kind, "item " + std::to_string(ref.index) + " (" +
                       PathOf(ctx.def, at) + ") failed: " + error.message});
}

void EndMaps(const PlanContext& ctx, Plan& p, StepStatus status) {
  for (size_t m = 0; m < ctx.def.steps.size(); ++m) {
    if (ctx.def.steps[m].kind != StepKind::kMap || ctx.def.steps[m].in_map >= 0)
      continue;
    const At map{static_cast<int>(m), -1, {}};
    StepState& st = p.saga.steps[m];
    if (st.status == StepStatus::kRunning) {
      st.status = status;
      st.finished_ms = ctx.now_ms;
    }
    // A map that failed while a cancel waited may still have items going
    // (EndItem ends the map steps inside them, and their items).
    if (st.map.running == 0) continue;
    const uint32_t started = st.map.started;
    for (uint32_t i = 0; i < started && st.map.running > 0; ++i) {
      EndItem(ctx, p, ItemAt(map, i), StepStatus::kCancelled);
    }
    st.map.running = 0;
  }
}

namespace {

// ReplayMaps for one map instance, and the map steps in its items.
void ReplayMap(const PlanContext& ctx, Plan& p, const At& map, bool all) {
  const StepState& was = StateOf(ctx, p, map);
  if (!was.map.began) {
    // It failed before its items were known (template, limit): anew.
    if (was.status != StepStatus::kSucceeded) {
      MutableState(ctx, p, map) = Rerun(was);
    }
    return;
  }
  if (!all && was.status == StepStatus::kSucceeded) return;
  const uint32_t started = was.map.started;
  const int size = Spec(ctx.def, map.step).map.size;
  uint32_t failed = 0;
  uint32_t next = was.map.items;
  for (uint32_t i = 0; i < started; ++i) {
    const ItemRef ref = ItemAt(map, i);
    const ItemState* item = FindItem(ctx, p, ref);
    if (item == nullptr) continue;
    if (!all && item->status == StepStatus::kSucceeded) continue;
    if (!all && item->status == StepStatus::kFailed) ++failed;
    // The map steps in the item first: their items are rows of their own.
    for (int k = 0; k < size; ++k) {
      const int step = map.step + 1 + k;
      if (Spec(ctx.def, step).kind == StepKind::kMap &&
          Spec(ctx.def, step).in_map == map.step) {
        ReplayMap(ctx, p, StepOfItem(ref, step), all);
      }
    }
    ItemState& again = MutableItem(ctx, p, ref);
    for (size_t k = 0; k < again.steps.size(); ++k) {
      StepState& step = again.steps[k];
      const bool nested_map =
          Spec(ctx.def, map.step + 1 + static_cast<int>(k)).kind ==
          StepKind::kMap;
      if (nested_map && step.map.began) continue;  // replayed above
      // What did not finish runs again, as the saga's own steps do.
      if (all || step.status != StepStatus::kSucceeded) step = Rerun(step);
    }
    again.status = StepStatus::kPending;
    again.error = {};
    // An undo that a park cut off is decided again if the saga undoes.
    if (all || again.compensation == CompensationStatus::kRunning) {
      again.compensation = CompensationStatus::kNone;
    }
    next = std::min(next, i);
  }
  StepState& st = MutableState(ctx, p, map);
  if (all) {
    st = Rerun(st);
    return;
  }
  // Inside an outer item, the map goes on once that item starts again
  // (pending meanwhile: a cancel before then leaves nothing running).
  st.status = map.item >= 0 ? StepStatus::kPending : StepStatus::kRunning;
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

}  // namespace

void ReplayMaps(const PlanContext& ctx, Plan& p, int from) {
  for (size_t m = 0; m < ctx.def.steps.size(); ++m) {
    if (ctx.def.steps[m].kind != StepKind::kMap || ctx.def.steps[m].in_map >= 0)
      continue;
    ReplayMap(ctx, p, {static_cast<int>(m), -1, {}},
              static_cast<int>(m) >= from);
  }
  p.touched.clear();
}

namespace {

// The failed compensation among the items of map instance `map` whose undo
// a park cut off (nullptr if none); each such item is marked touched, so
// that UndoMap looks at it again.
StepState* FindFailedCompensationIn(const PlanContext& ctx, Plan& p,
                                    const At& map) {
  StepState* failed = nullptr;
  const int size = Spec(ctx.def, map.step).map.size;
  const uint32_t started = StateOf(ctx, p, map).map.started;
  for (uint32_t i = 0; i < started; ++i) {
    const ItemRef ref = ItemAt(map, i);
    const ItemState* item = FindItem(ctx, p, ref);
    if (item == nullptr || item->compensation != CompensationStatus::kRunning) {
      continue;
    }
    for (int k = 0; k < size; ++k) {
      const int step = map.step + 1 + k;
      if (Spec(ctx.def, step).kind == StepKind::kMap &&
          Spec(ctx.def, step).in_map == map.step) {
        if (StepState* in =
                FindFailedCompensationIn(ctx, p, StepOfItem(ref, step))) {
          failed = in;
        }
      }
    }
    ItemState& resumed = MutableItem(ctx, p, ref);
    for (StepState& st : resumed.steps) {
      if (st.compensation == CompensationStatus::kFailed) failed = &st;
    }
  }
  return failed;
}

}  // namespace

StepState* FindFailedItemCompensation(const PlanContext& ctx, Plan& p) {
  StepState* failed = nullptr;
  for (size_t m = 0; m < ctx.def.steps.size(); ++m) {
    if (ctx.def.steps[m].kind != StepKind::kMap || ctx.def.steps[m].in_map >= 0)
      continue;
    if (StepState* in =
            FindFailedCompensationIn(ctx, p, {static_cast<int>(m), -1, {}})) {
      failed = in;
    }
  }
  return failed;
}

}  // namespace cde::transitions_internal
