#include <chrono>
#include <cmath>
#include <limits>
#include <utility>

#include "engine/engine_impl.h"
#include "engine/input_schema.h"
#include "engine/templating.h"

namespace cde {
namespace {

using nlohmann::json;

// Runs `work` on libuv's thread pool and `after` back on the loop: how the
// loop thread reads the store without waiting on disk.
struct BlockingWork {
  uv_work_t req;
  std::function<void()> work;
  std::function<void()> after;
};

}  // namespace

void RunBlocking(uv_loop_t* loop, std::function<void()> work,
                 std::function<void()> after) {
  auto* w = new BlockingWork{{}, std::move(work), std::move(after)};
  w->req.data = w;
  uv_queue_work(
      loop, &w->req,
      [](uv_work_t* req) { static_cast<BlockingWork*>(req->data)->work(); },
      [](uv_work_t* req, int) {
        std::unique_ptr<BlockingWork> w(static_cast<BlockingWork*>(req->data));
        w->after();
      });
}

Result<std::unique_ptr<Engine>> Engine::Open(uv_loop_t* loop,
                                             EngineOptions options) {
  // What the options describe on this machine, before the store is touched:
  // a mistake in them changes nothing.
  auto destinations = DestinationPolicy::Compile(options.action_policy.http);
  if (!destinations.ok()) return destinations.status();
  auto sandbox = ResolveExecSandbox(options.action_policy.exec);
  if (!sandbox.ok()) return sandbox.status();
  auto secrets = Secrets::Load(options.secrets);
  if (!secrets.ok()) return secrets.status();
  if (!options.clock) options.clock = NewSystemClock(loop);
  std::unique_ptr<Store> store = std::move(options.store);
  if (!store) {
    auto opened = OpenRocksStore(
        {.path = options.data_dir, .wal_spare_bytes = options.wal_spare_bytes});
    if (!opened.ok()) return opened.status();
    store = std::move(opened).value();
  }
  auto engine = std::make_unique<EngineImpl>(
      loop, std::move(options), std::move(store),
      ResolvedOptions{
          std::make_shared<DestinationPolicy>(std::move(destinations).value()),
          std::move(sandbox).value(), std::move(secrets).value()});
  Status s = engine->Recover();
  if (!s.ok()) {
    // Close what was opened; the loop must run to finish closing handles.
    bool closed = false;
    engine->Shutdown([&closed](Status) { closed = true; });
    while (!closed) uv_run(loop, UV_RUN_ONCE);
    return s;
  }
  return std::unique_ptr<Engine>(std::move(engine));
}

EngineImpl::EngineImpl(uv_loop_t* loop, EngineOptions options,
                       std::unique_ptr<Store> store, ResolvedOptions resolved)
    : loop_(loop),
      options_(std::move(options)),
      clock_(*options_.clock),
      destinations_(std::move(resolved.destinations)),
      secrets_(std::move(resolved.secrets)),
      store_(std::move(store)),
      ids_(options_.seed != 0 ? SagaIdGenerator(options_.seed)
                              : SagaIdGenerator()),
      rng_(options_.seed != 0 ? options_.seed : std::random_device{}()),
      definitions_(std::move(options_.actions)),
      limits_(options_.limits),
      gates_(clock_, limits_,
             {.go =
                  [this](const std::string& saga_id, const std::string& gate) {
                    return GoThroughGate(saga_id, gate);
                  },
              .waited =
                  [this](const std::string& kind, const std::string& key) {
                    m_.gate_waits->With({kind, key}).Increment();
                  },
              .breaker_moved =
                  [this](const std::string& key, BreakerState from,
                         BreakerState to) {
                    OnBreakerTransition(key, from, to);
                  }}) {
  writer_ = std::make_unique<CommitWriter>(
      store_.get(),
      CommitWriterOptions{
          .sync = options_.sync,
          .gather_returning = options_.commit_gather,
          .pipeline = options_.commit_pipeline,
          .on_group_written = [h = m_.commit_batch_size,
                               g = m_.commit_groups_gathered](size_t n, size_t,
                                                              bool gathered) {
            h->Observe(static_cast<double>(n));
            if (gathered) g->Increment();
          }});
  committer_ = std::make_unique<LoopCommitter>(loop_, writer_.get(),
                                               options_.commit_poll);
  timers_ = std::make_unique<TimerQueue>(
      clock_, [this](const TimerQueue::Entry& e) { OnTimerDue(e); });
  inbox_ = Inbox::Create(loop_);
  actions_ = std::make_unique<ActionRunner>(loop_, definitions_, destinations_,
                                            std::move(resolved.client_sandbox));
  dormancy_ = std::make_unique<Dormancy>(
      clock_, *store_, options_.timer_window_ms,
      Dormancy::Hooks{
          .off_loop =
              [this](std::function<void()> read, std::function<void()> then) {
                OffLoop(std::move(read), std::move(then));
              },
          .running =
              [this] {
                return !shutting_down_ && health_.ok() && options_.run_sagas;
              },
          .in_memory =
              [this](const std::string& id) { return active_.count(id) != 0; },
          .wake = [this](Saga saga) { Adopt(std::move(saga)); },
          .poisoned =
              [this](SagaRecord record, const std::string& reason) {
                // It kept its slot while dormant (see Adopt).
                const std::string workflow = record.workflow;
                ParkPoisoned(std::move(record), reason);
                slots_.Free(workflow);
                FillSlots(workflow);
              },
          .redrive_near = [this](const std::string& id,
                                 int64_t due_ms) { QueueRedrive(id, due_ms); },
          .stale =
              [this](std::vector<TimerRecord> rows) {
                ForgetStaleTimers(std::move(rows));
              }});
  grace_timer_ = clock_.NewTimer([this] { CheckpointInFlight(); });
  if (options_.run_sagas) dormancy_->Start();
}

EngineImpl::~EngineImpl() = default;

int64_t EngineImpl::Now() const { return clock_.WallMs(); }

PlanContext EngineImpl::Context(Active& a) {
  PlanContext ctx{*a.def, Now(),
                  std::uniform_real_distribution<double>(0, 1)(rng_)};
  ctx.items = &a.items;
  ctx.map_items = [&a](const MapInstance& map) { return MapItems(a, map); };
  // The first retry of a plan takes the context's sample; more retries in
  // the same plan (several results at once) draw their own.
  // (Two words: std::function keeps it inline, with no allocation; a NaN
  // `first` is the sample taken.)
  ctx.jitter = [this, first = ctx.jitter_sample]() mutable {
    if (!std::isnan(first)) {
      return std::exchange(first, std::numeric_limits<double>::quiet_NaN());
    }
    return std::uniform_real_distribution<double>(0, 1)(rng_);
  };
  ctx.max_map_items = limits_.map_items;
  ctx.max_output_bytes = limits_.output_bytes;
  return ctx;
}

const json* EngineImpl::MapItems(Active& a, const MapInstance& map) {
  auto it = a.map_items.find(map);
  if (it == a.map_items.end()) {
    // Before the map began (in a committed transition) the steps its items
    // read may not be committed yet: the planner renders them itself.
    const StepState* st =
        StepStateIn(*a.def, a.saga, a.items, MapStepInstance(map));
    if (st == nullptr || !st->map.began) return nullptr;
    // The same every time: the items read only what ran before the map.
    auto items = RenderMapItems(*a.def, a.saga, map, SourceOf(a));
    if (!items.ok()) return nullptr;
    it = a.map_items.emplace(map, std::move(items).value()).first;
  }
  return &it->second;
}

ItemSource EngineImpl::SourceOf(Active& a) {
  return {[&a](const ItemRef& ref) { return FindItemIn(a.items, ref); },
          [&a](const MapInstance& map) { return MapItems(a, map); }};
}

void EngineImpl::ForgetRestartedMaps(Active& a, const Plan& plan) {
  if (a.map_items.empty()) return;
  const auto forget_unless_began = [&a](const MapInstance& map) {
    const auto it = a.map_items.find(map);
    if (it == a.map_items.end()) return;
    const StepState* st =
        StepStateIn(*a.def, a.saga, a.items, MapStepInstance(map));
    if (st == nullptr || !st->map.began) a.map_items.erase(it);
  };
  const auto& steps = a.def->steps;
  for (size_t m = 0; m < steps.size(); ++m) {
    if (steps[m].kind == StepKind::kMap && steps[m].in_map < 0) {
      forget_unless_began({static_cast<int>(m), {}});
    }
  }
  // The map steps inside a written item: its own row holds their progress.
  for (const auto& [ref, write] : plan.items) {
    const int size = steps[static_cast<size_t>(ref.map)].map.size;
    for (int k = ref.map + 1; k <= ref.map + size; ++k) {
      if (steps[static_cast<size_t>(k)].kind != StepKind::kMap ||
          steps[static_cast<size_t>(k)].in_map != ref.map) {
        continue;
      }
      MapInstance inside{k, ref.outer};
      inside.outer.push_back(ref.index);
      forget_unless_began(inside);
    }
  }
}

Status EngineImpl::RegisterAction(const std::string& name,
                                  NativeAction action) {
  return definitions_.AddAction(name, std::move(action));
}

Status EngineImpl::DenyOwnListener(const std::string& host, int port) {
  auto listener = IpAddress::FromLiteral(host);
  if (!listener || port <= 0 || port > 65535) {
    return Status::InvalidArgument(host + ":" + std::to_string(port) +
                                   ": not an IP address and port");
  }
  listener->port = static_cast<uint16_t>(port);
  destinations_->AddOwnListener(*listener);
  if (!listener->IsUnspecified()) return Status::OK();
  // Every local address reaches a listener on 0.0.0.0 or ::.
  uv_interface_address_t* interfaces = nullptr;
  int count = 0;
  if (uv_interface_addresses(&interfaces, &count) == 0) {
    for (int i = 0; i < count; ++i) {
      if (auto local = IpAddress::FromSockaddr(
              reinterpret_cast<const sockaddr*>(&interfaces[i].address))) {
        local->port = listener->port;
        destinations_->AddOwnListener(*local);
      }
    }
    uv_free_interface_addresses(interfaces, count);
  }
  return Status::OK();
}

std::vector<std::shared_ptr<const WorkflowDefinition>>
EngineImpl::ListWorkflows() const {
  return definitions_.List();
}

void EngineImpl::RegisterWorkflow(const json& doc, DefinitionOrigin origin,
                                  const std::string& by,
                                  Callback<DefinitionRecord> done) {
  if (!health_.ok()) return done(health_);
  auto admitted = definitions_.Admit(
      doc, origin,
      {secrets_, options_.action_policy, *destinations_,
       limits_.definition_bytes, limits_.definition_steps, limits_.branches});
  if (!admitted.ok()) return done(admitted.status());
  if (admitted->unchanged) return done(*admitted->unchanged);
  DefinitionRecord record{
      admitted->name, admitted->version, Now(), doc, origin, by};
  Transition t;
  t.PutDefinition(record);
  Commit(std::move(t), [this, record, done](const Status& s) {
    definitions_.Release(record.name, record.version);
    if (!s.ok()) {
      health_ = s;
      done(s);
    } else if (Status loaded = definitions_.Load(record); !loaded.ok()) {
      done(loaded);
    } else {
      done(record);
      watchers_.DefinitionRegistered(record);
    }
  });
}

void EngineImpl::Start(StartRequest request, Callback<StartResult> done) {
  if (shutting_down_) {
    return done(Status::ShutdownInProgress(
        "the engine is shutting down and starts no new sagas"));
  }
  if (!health_.ok()) return done(health_);
  // Measured once: the limit, and where the input is kept (the snapshot,
  // or only its saga_started event).
  const size_t input_bytes = JsonTextSize(request.input);
  if (Status s = CheckJsonSize("input", input_bytes, limits_.input_bytes,
                               "limits.input_bytes");
      !s.ok()) {
    return done(s);
  }
  DefPtr def = definitions_.Find(request.workflow, request.version);
  if (!def) {
    return done(Status::NotFound(
        "no workflow '" + request.workflow + "'" +
        (request.version ? " version " + std::to_string(*request.version)
                         : std::string())));
  }
  if (!def->input_schema.is_null()) {
    Status valid = ValidateInput(def->input_schema, request.input);
    if (!valid.ok()) return done(valid);
  }
  if (request.idempotency_key.empty()) {
    return CreateSaga(std::move(request), std::move(def), input_bytes,
                      std::move(done));
  }
  const std::string key = request.idempotency_key;
  if (auto it = pending_keys_.find(key); it != pending_keys_.end()) {
    it->second.waiters.push_back(std::move(done));
    return;
  }
  // Not in memory: ask the store, off the loop thread.
  pending_keys_[key] = {};
  auto found = std::make_shared<Result<std::string>>(Status::NotFound(""));
  auto state = std::make_shared<SagaState>(SagaState::kRunning);
  OffLoop(
      [this, key, found, state] {
        *found = store_->LookupIdempotency(key);
        if (found->ok()) {
          auto saga = store_->GetSaga(**found);
          if (saga.ok()) *state = saga->state;
        }
      },
      [this, key, found, state, request = std::move(request), input_bytes,
       def = std::move(def), done = std::move(done)]() mutable {
        if (found->ok()) {
          done(StartResult{found->value(), *state, false});
          ResolveKey(key, StartResult{found->value(), *state, false});
        } else if (!found->status().IsNotFound()) {
          done(found->status());
          ResolveKey(key, found->status());
        } else if (shutting_down_) {
          Status s = Status::ShutdownInProgress("the engine is shutting down");
          done(s);
          ResolveKey(key, s);
        } else {
          CreateSaga(std::move(request), std::move(def), input_bytes,
                     std::move(done));
        }
      });
}

// Answers the starts that waited on `key` and forgets it.
void EngineImpl::ResolveKey(const std::string& key,
                            const Result<StartResult>& result) {
  auto it = pending_keys_.find(key);
  if (it == pending_keys_.end()) return;
  auto waiters = std::move(it->second.waiters);
  pending_keys_.erase(it);
  for (auto& w : waiters) {
    if (!result.ok()) {
      w(result.status());
    } else {
      StartResult r = result.value();
      r.created = false;
      w(r);
    }
  }
}

void EngineImpl::CreateSaga(StartRequest request, DefPtr def,
                            size_t input_bytes, Callback<StartResult> done) {
  const std::string id = ids_.Next(Now());
  const bool queued = !slots_.TakeOrWait(def->name, ConcurrencyLimit(*def), id);
  auto active = std::make_unique<Active>();
  active->def = def;
  active->holds_slot = !queued;
  Active& a = *active;
  Plan plan = PlanStart(
      Context(a), id, std::move(request.input), request.idempotency_key,
      request.correlation_id.empty() ? id : request.correlation_id,
      TraceIdFrom(request.traceparent, rng_), request.started_by, queued);
  // Where the input is kept is the store's concern, not the planner's.
  plan.saga.input_in_log = input_bytes > kSnapshotInputBytes;
  a.saga = plan.saga;
  a.saga.last_seq = 0;
  if (!request.idempotency_key.empty()) {
    pending_keys_[request.idempotency_key].saga_id = id;
  }
  active_[id] = std::move(active);
  const std::string key = request.idempotency_key;
  Apply(a, std::move(plan), [this, id, key, done](const Status& s) {
    if (!s.ok()) {
      done(s);
      if (!key.empty()) ResolveKey(key, s);
      return;
    }
    // Not FindActive: a first transition may already have finished the
    // saga (parked it), and it is then no longer active.
    StartResult r{id, committed_state_, true};
    done(r);
    if (!key.empty()) ResolveKey(key, r);
  });
}

namespace {
// As many as commits in flight at the concurrency the benchmarks run; a
// plan whose saga is large is let go rather than kept.
constexpr size_t kSparePlans = 256;
constexpr size_t kSparePlanBytes = 8192;
}  // namespace

void EngineImpl::Apply(Active& a, Plan&& planned,
                       std::function<void(const Status&)> after) {
  Apply(a, std::make_shared<Plan>(std::move(planned)), std::move(after));
}

// Held by pointer until it is committed: a plan holds a whole saga, which
// the continuation (a copyable std::function) would otherwise move again
// at every hand-off.
void EngineImpl::Apply(Active& a, std::shared_ptr<Plan> held,
                       std::function<void(const Status&)> after) {
  Plan& plan = *held;
  a.committing = true;
  plan.saga.checkpointed = false;  // it moves on from its checkpoint
  KeepEventsToLog(&plan);
  const Plan::Base base = PatchBase(a, plan);
  if (base.saga != nullptr) LendBodyBuffers(plan);
  Transition t = plan.Build(Now(), base);
  // Its snapshot's size (a patch's transition is smaller than its saga,
  // but then Build kept the snapshot body).
  const bool spare = t.ByteSize() + plan.body.size() <= kSparePlanBytes;
  Commit(std::move(t), [this, id = a.saga.id, held = std::move(held), spare,
                        after = std::move(after)](const Status& s) {
    OnCommitted(id, held, s, after);
    // Its continuation, which still holds it, has run: nothing reads it.
    if (spare && spare_plans_.size() < kSparePlans) {
      spare_plans_.push_back(held);
    }
  });
}

// A saga that goes straight on to an attempt writes a patch of its
// snapshot, not the snapshot: its next transition comes soon. One that
// waits (a timer, a slot, nothing) writes it whole, so that those that wait
// long, and the recovery that reads them, have whole snapshots; and so does
// every transition kPatchedEvents events after the last one, which bounds
// what a reader after a crash folds.
Plan::Base EngineImpl::PatchBase(const Active& a, const Plan& plan) {
  for (const PlanAction& action : plan.actions) {
    if (action.kind != PlanAction::Kind::kRunAttempt) continue;
    if (a.saga.last_seq - a.snapshot_seq >= kPatchedEvents) {
      // Whole, but patchable: the next ones patch it.
      static const std::string kNoBody;
      return {&a.saga, &kNoBody, nullptr};
    }
    return {&a.saga, &a.committed_body, &a.committed_layout};
  }
  return {};
}

namespace {
// Enough for every commit in flight at the concurrency the benchmarks run;
// a buffer a large snapshot grew is let go rather than kept.
constexpr size_t kSpareBodyBuffers = 256;
constexpr size_t kSpareBodyBytes = 4096;
}  // namespace

void EngineImpl::LendBodyBuffers(Plan& plan) {
  if (!spare_bodies_.empty()) {
    plan.body = std::move(spare_bodies_.back());
    spare_bodies_.pop_back();
  }
  if (!spare_layouts_.empty()) {
    plan.body_layout = std::move(spare_layouts_.back());
    spare_layouts_.pop_back();
  }
}

std::shared_ptr<Plan> EngineImpl::SparePlan() {
  if (spare_plans_.empty()) return std::make_shared<Plan>();
  std::shared_ptr<Plan> plan = std::move(spare_plans_.back());
  spare_plans_.pop_back();
  return plan;
}

void EngineImpl::TakeBackBodyBuffers(Plan& plan) {
  if (plan.body.capacity() > 0 && plan.body.capacity() <= kSpareBodyBytes &&
      spare_bodies_.size() < kSpareBodyBuffers) {
    spare_bodies_.push_back(std::move(plan.body));
  }
  if (plan.body_layout.fields.capacity() > 0 &&
      plan.body_layout.elements.capacity() <= kSpareBodyBytes / 4 &&
      spare_layouts_.size() < kSpareBodyBuffers) {
    spare_layouts_.push_back(std::move(plan.body_layout));
  }
}

void EngineImpl::OnCommitted(const std::string& id,
                             const std::shared_ptr<Plan>& held,
                             const Status& status,
                             const std::function<void(const Status&)>& after) {
  Plan& plan = *held;
  auto it = active_.find(id);
  if (it == active_.end()) return;  // cannot happen: only commits remove
  Active& a = *it->second;
  a.committing = false;
  if (!status.ok()) {
    // The store refuses writes from now on; nothing more can be logged.
    health_ = status;
    std::unique_ptr<Active> gone;
    if (plan.previous_state == std::nullopt) {
      ReleaseSlot(a);
      gone = std::move(it->second);
      active_.erase(it);
    }
    if (after) after(status);
    // What waited for this commit learns the store's refusal from its own
    // commit (or that the saga is gone).
    RunDeferred(a);  // `gone` keeps it alive meanwhile
    return;
  }
  ObserveCommitted(a, plan);
  if (plan.wrote_snapshot) a.snapshot_seq = plan.saga.last_seq;
  // The state it replaces stays in the plan: memory the next plan made in
  // it reuses (SparePlan), or freed with it once the loop is quiet
  // (LoopCommitter::Reap).
  swap(a.saga, plan.saga);
  // Empty unless Build had a base: then the next transition is likely soon.
  a.committed_body.swap(plan.body);
  std::swap(a.committed_layout, plan.body_layout);
  TakeBackBodyBuffers(plan);
  for (auto& [ref, write] : plan.items) {
    std::vector<ItemState>& items = a.items[ref.instance()];
    if (items.size() <= ref.index) items.resize(ref.index + 1);
    items[ref.index] = std::move(write.state);
  }
  ForgetRestartedMaps(a, plan);
  watchers_.SagaChanged(a.saga);
  const bool acting = !shutting_down_ && options_.run_sagas;
  bool dormant = false;
  bool finished = false;
  for (const PlanAction& action : plan.actions) {
    switch (action.kind) {
      case PlanAction::Kind::kArmTimer:
        if (!acting) break;
        if (dormancy_->MayLeaveMemory(a.saga) && a.deferred.empty() &&
            !watchers_.Watched(id)) {
          dormant = true;  // its timer row will bring it back; see Adopt
        } else {
          timers_->Add(
              {action.timer.due_ms, id, action.timer.kind, action.timer.path});
        }
        break;
      case PlanAction::Kind::kRunAttempt:
        if (acting) Dispatch(a, action.attempt);
        break;
      case PlanAction::Kind::kStopAttempt:
        if (acting) StopAttempt(a, action.attempt.path);
        break;
      case PlanAction::Kind::kFinish:
        finished = true;
        break;
    }
  }
  std::unique_ptr<Active> gone;
  if (finished) {
    AbandonAttempts(a);
    ReleaseSlot(a);
    if (const Wait* redrive = FindWait(a.saga, "");
        redrive != nullptr && redrive->kind == Wait::Kind::kRedrive) {
      QueueRedrive(id, redrive->due_ms);
    }
    gone = std::move(it->second);
    active_.erase(it);
  } else if (dormant) {
    // Still running and holding its concurrency slot, just not in memory.
    gone = std::move(it->second);
    active_.erase(it);
  }
  committed_state_ = a.saga.state;  // what `after` may ask for
  if (after) after(status);
  // A finished saga's events run too: each finds the saga gone and answers
  // so (a cancel that came too late is told the saga finished).
  RunDeferred(a);  // `gone` keeps it alive meanwhile
}

void EngineImpl::WhenIdle(Active& a, std::function<void()> event) {
  if (a.committing) {
    a.deferred.push_back(std::move(event));
    ++a.deferrals;
  } else {
    event();
  }
}

void EngineImpl::RunDeferred(Active& a) {
  // Until one of them commits again; the rest then wait for that commit.
  // `a` may be out of active_ (finished): then none of them commits.
  while (!a.committing && !a.deferred.empty()) {
    auto event = std::move(a.deferred.front());
    a.deferred.erase(a.deferred.begin());
    event();
  }
}

void EngineImpl::ReleaseSlot(Active& a) {
  if (!a.holds_slot) {
    slots_.StopWaiting(a.def->name, a.saga.id);
    return;
  }
  a.holds_slot = false;
  slots_.Free(a.def->name);
  FillSlots(a.def->name);
}

bool EngineImpl::WaitsFor(const Active& a, const AttemptRef& attempt) const {
  const Wait* w = FindWait(a.saga, attempt.path);
  return w != nullptr && w->kind == Wait::Kind::kAttempt &&
         w->compensation == attempt.compensation &&
         w->attempt == attempt.attempt;
}

void EngineImpl::Dispatch(Active& a, const AttemptRef& ref, bool resumed) {
  const StepInstance at = InstanceAt(*a.def, ref.path);
  if (at.step < 0) return;  // cannot happen: the planner names its steps
  const StepSpec& step = a.def->steps[static_cast<size_t>(at.step)];
  const ActionSpec& spec = ref.compensation ? *step.compensate : step.run;
  const std::string& id = a.saga.id;
  // Made only where something reads it (templates, an action run
  // elsewhere): a noop's or an echo's attempt needs none.
  std::string key;
  auto idempotency_key = [&]() -> const std::string& {
    if (key.empty()) {
      key = AttemptKey(id, ref.path, ref.compensation, ref.attempt);
    }
    return key;
  };
  const bool client = a.def->origin == DefinitionOrigin::kClient;
  // Checked again for every attempt, as the action policy is: a client's
  // definition registered while secrets.clients was on gets none once it
  // is off.
  const bool secrets_refused =
      client && !secrets_.clients() && NamesSecrets(spec.params);
  Result<json> params = spec.params;
  if (spec.templated) {
    TemplateScratch scratch;
    auto tc = TemplateContextAt(*a.def, a.saga, at, SourceOf(a), &scratch,
                                idempotency_key(), ref.attempt);
    if (tc.ok() && !secrets_refused) tc->secrets = &secrets_.values();
    params =
        tc.ok() ? RenderTemplates(spec.params, *tc) : Result<json>(tc.status());
  }
  Attempt& attempt = a.attempts[ref.path];
  // Let through its gate (the same attempt again), it keeps what it was.
  const bool again = attempt.ref == ref;
  Abandon(attempt);  // an earlier attempt of the step, if its result is late
  attempt.maybe_sent = resumed || (again && attempt.maybe_sent);
  attempt.ref = ref;
  attempt.step = at.step;
  // Stopped before a restart (Resume sends it again): awaited for a while
  // at most, at a gate too (and again once the gate lets it through). A new
  // attempt is never stopped yet: no need to look its wait up.
  if (resumed || again) {
    if (const Wait* w = FindWait(a.saga, ref.path);
        w != nullptr && w->stopped) {
      ArmStoppedDeadline(id, attempt);
    }
  }
  // Held back by a rate limit or an open breaker: not an attempt yet, so
  // it spends no retry; Dispatch runs again when the gate lets it through.
  if (params.ok() && !PassGates(id, attempt, step, spec, *params)) return;
  attempt.hold = attempts_.Enter();
  ObserveDispatch(a, attempt);
  if (secrets_refused) {
    DeliverOutcome(id, ref,
                   ActionResult::Failure(
                       kPolicyErrorKind,
                       "secrets are not available to definitions registered "
                       "by clients (secrets.clients is off)"));
    return;
  }
  if (!params.ok()) {
    DeliverOutcome(
        id, ref, ActionResult::Failure("template", params.status().message()));
    return;
  }
  if (client) {
    // Again with the rendered params: a template can build an argv.
    Status allowed = CheckClientAttempt(spec, *params, options_.action_policy);
    if (!allowed.ok()) {
      DeliverOutcome(
          id, ref, ActionResult::Failure(kPolicyErrorKind, allowed.message()));
      return;
    }
  }
  if (spec.timeout_ms) {
    attempt.timeout = clock_.NewTimer(
        [this, id, tag = AttemptOutcome{ref}, ms = *spec.timeout_ms] {
          AttemptOutcome o = tag;
          o.error = {"timeout",
                     "attempt timed out after " + std::to_string(ms) + " ms"};
          OnOutcome(id, std::move(o));
        });
    attempt.timeout->Start(static_cast<int64_t>(*spec.timeout_ms));
  }
  // noop, echo and fail answer at once, here on the loop: no request to
  // build, no callback to hand over (their result still arrives through
  // the inbox, after the continuation that dispatched them).
  if (std::optional<ActionResult> now =
          RunSimpleBuiltin(spec.action, *params, ref.attempt)) {
    DeliverOutcome(id, ref, std::move(*now));
    return;
  }
  AttemptRequest req{id, a.saga.workflow, ref.path, ref.compensation,
                     ref.attempt, idempotency_key(), std::move(params).value(),
                     // Sagas from before correlation ids defaulted: their id.
                     a.saga.correlation_id.empty() ? id : a.saga.correlation_id,
                     a.saga.trace_id, secrets_.redactions()};
  // Measured where the result arrives (a native action's own thread), with
  // the limit of the dispatch: a reload may change it meanwhile.
  // What comes back with a secret's value in it is redacted before it is
  // logged: whether or not these params named it (an operator's child
  // inherits the environment secrets.env reads).
  ActionDone deliver = [inbox = inbox_, this, id, ref, secrets = req.secrets,
                        max_output = limits_.output_bytes](ActionResult r) {
    PrepareResult(*secrets, max_output, ref.compensation, &r);
    inbox->Post([this, id, o = OutcomeOf(ref, std::move(r))]() mutable {
      OnOutcome(id, std::move(o));
    });
  };
  attempt.running = actions_->Run(spec.action, req, client, std::move(deliver));
}

// Redacts the secrets in what came back, and fails an output larger than
// the limit (a compensation's output is not kept).
void EngineImpl::PrepareResult(const std::vector<std::string>& secrets,
                               size_t max_output, bool compensation,
                               ActionResult* r) {
  RedactSecrets(secrets, r);
  if (r->ok && !compensation) {
    if (Status s = CheckJsonSize("the output", r->output, max_output,
                                 "limits.output_bytes");
        !s.ok()) {
      *r = ActionResult::Failure(kLimitErrorKind, s.message());
    }
  }
}

AttemptOutcome EngineImpl::OutcomeOf(const AttemptRef& ref, ActionResult r) {
  AttemptOutcome o{ref};
  o.ok = r.ok;
  o.output = std::move(r.output);
  o.error = std::move(r.error);
  return o;
}

// A result known on the loop thread: planned once the continuation that
// dispatched it has run (the inbox runs it then), as a result from another
// thread would be.
void EngineImpl::DeliverOutcome(const std::string& id, const AttemptRef& ref,
                                ActionResult r) {
  PrepareResult(*secrets_.redactions(), limits_.output_bytes, ref.compensation,
                &r);
  inbox_->Post([this, id, o = OutcomeOf(ref, std::move(r))]() mutable {
    OnOutcome(id, std::move(o));
  });
}

bool EngineImpl::Active::in_flight() const {
  for (const auto& [path, attempt] : attempts) {
    if (attempt.in_flight()) return true;
  }
  return false;
}

void EngineImpl::Abandon(Attempt& attempt) {
  attempt.timeout.reset();
  attempt.stopped_deadline.reset();
  // A no-op when the attempt already finished; kills or aborts it when it
  // is the timeout that decided the outcome.
  ActionRunner::Abort(attempt.running);
}

void EngineImpl::AbandonAttempts(Active& a) {
  for (auto& [path, attempt] : a.attempts) Abandon(attempt);
}

void EngineImpl::OnOutcome(const std::string& id, AttemptOutcome outcome) {
  auto it = active_.find(id);
  if (it == active_.end()) return;  // finished meanwhile: a stale result
  Active& a = *it->second;
  auto arrived = std::chrono::steady_clock::now();
  // Results that arrive while one transition commits are planned together
  // (those of a map's items, or of branches), but never ahead of an event
  // queued after the first of them (a cancel: no item may start after it).
  if (a.open_batch && a.open_batch_at == a.deferrals) {
    a.open_batch->Add(std::move(outcome), arrived);
    return;
  }
  if (!a.committing && !a.open_batch) {
    // Planned at once, as WhenIdle would: nothing to keep for later. In
    // the engine's batch, whose lists keep their room from one result to
    // the next (a nested result, should planning ever deliver one, finds
    // it taken and makes its own).
    Active::OutcomeBatch now;
    now.outcomes.swap(spare_batch_.outcomes);
    now.arrived.swap(spare_batch_.arrived);
    now.Add(std::move(outcome), arrived);
    PlanOutcomes(id, now);
    now.outcomes.clear();
    now.arrived.clear();
    spare_batch_.outcomes.swap(now.outcomes);
    spare_batch_.arrived.swap(now.arrived);
    return;
  }
  auto batch = std::make_shared<Active::OutcomeBatch>();
  batch->Add(std::move(outcome), arrived);
  a.open_batch = batch;
  // The count once its event is deferred (set first: planned at once, the
  // batch may end the saga).
  a.open_batch_at = a.deferrals + (a.committing ? 1 : 0);
  WhenIdle(a, [this, id, batch] { PlanOutcomes(id, *batch); });
}

void EngineImpl::PlanOutcomes(const std::string& id,
                              Active::OutcomeBatch& taken) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Active& a = *it->second;
  if (a.open_batch.get() == &taken) a.open_batch.reset();
  // During a shutdown's grace period results are still committed, so that
  // attempts which finished in time do not run again.
  if (a.checkpointed) return;
  std::vector<bool> applied;
  applied.swap(spare_applied_);  // its room, as for spare_batch_
  std::shared_ptr<Plan> plan = SparePlan();
  if (!PlanAttemptResultsInto(Context(a), a.saga, taken.outcomes, &applied,
                              plan.get())) {
    spare_plans_.push_back(std::move(plan));
    spare_applied_.swap(applied);
    return;  // stale: timed-out or superseded attempts
  }
  // The attempts are over; their results' commit holds work_ from here.
  WorkGate::Holder busy = work_.Enter();
  for (size_t i = 0; i < taken.outcomes.size(); ++i) {
    if (!applied[i]) continue;
    const AttemptOutcome& outcome = taken.outcomes[i];
    if (auto at = a.attempts.find(outcome.ref.path); at != a.attempts.end()) {
      Attempt& attempt = at->second;
      attempt.hold.Leave();
      RecordBreaker(attempt, outcome);
      ObserveOutcome(a, attempt, outcome, taken.arrived[i]);
      Abandon(attempt);
      a.attempts.erase(at);
    }
  }
  spare_applied_.swap(applied);
  Apply(a, std::move(plan), nullptr);
}

void EngineImpl::OnTimerDue(const TimerQueue::Entry& e) {
  if (e.kind == TimerKind::kRedrive) return Redrive(e);
  auto it = active_.find(e.saga_id);
  if (it == active_.end()) return;
  WhenIdle(*it->second, [this, e] {
    auto it = active_.find(e.saga_id);
    if (it == active_.end() || shutting_down_) return;
    Active& a = *it->second;
    auto plan = PlanTimerFired(Context(a), a.saga, {e.due_ms, e.kind, e.path});
    if (plan) Apply(a, std::move(*plan), nullptr);
  });
}

void EngineImpl::Cancel(const std::string& saga_id, bool compensate,
                        const std::string& by, Callback<SagaState> done) {
  if (!health_.ok()) return done(health_);
  if (active_.count(saga_id) != 0) {
    return CancelActive(saga_id, compensate, by, std::move(done));
  }
  // Not in memory: dormant (waiting on a far timer), or terminal, parked or
  // unknown. Read it off the loop to tell.
  auto found = std::make_shared<Result<SagaRecord>>(Status::NotFound(""));
  OffLoop([this, saga_id, found] { *found = ReadSagaWithInput(saga_id); },
          [this, saga_id, compensate, by, found, done] {
            if (!found->ok()) {
              done(found->status());
            } else if (auto saga = FromRecord(found->value()); !saga.ok()) {
              done(saga.status());
            } else if (active_.count(saga_id) != 0 ||
                       Adopt(std::move(saga).value()) != nullptr) {
              CancelActive(saga_id, compensate, by, done);
            } else {
              Status refusal = CheckCancellable(*FromRecord(found->value()));
              done(refusal.ok() ? Status::Busy("saga " + saga_id +
                                               " cannot be cancelled right now")
                                : refusal);
            }
          });
}

void EngineImpl::CancelActive(const std::string& saga_id, bool compensate,
                              const std::string& by, Callback<SagaState> done) {
  auto it = active_.find(saga_id);
  WhenIdle(*it->second, [this, saga_id, compensate, by, done] {
    auto it = active_.find(saga_id);
    if (it == active_.end()) {
      return done(Status::InvalidArgument("saga " + saga_id +
                                          " finished before the cancel"));
    }
    Active& a = *it->second;
    auto plan = PlanCancel(Context(a), a.saga, compensate, by);
    if (!plan.ok()) return done(plan.status());
    Apply(a, std::move(plan).value(), [this, saga_id, done](const Status& s) {
      if (!s.ok()) return done(s);
      const Saga* saga = FindActive(saga_id);
      done(saga ? saga->state : SagaState::kCancelled);
      if (saga) LeaveGates(saga_id);
    });
  });
}

}  // namespace cde
