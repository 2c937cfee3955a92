// SagaView, the read model every surface renders: steps named by their
// path (by index when the definition is not the one the saga ran), what
// the saga waits for, where it is (the waited step, or what parked it),
// and the work still to do.
#include "engine/saga_view.h"

#include <gtest/gtest.h>

#include "engine/definition.h"

namespace cde {
namespace {

WorkflowDefinition ThreeSteps() {
  WorkflowDefinition def;
  def.name = "trip";
  def.version = 1;
  for (const char* name : {"flight", "hotel", "car"}) {
    StepSpec s;
    s.name = name;
    s.run.action = "noop";
    s.run.retry.max_attempts = 4;
    s.path = s.name;
    def.steps.push_back(s);
  }
  ActionSpec undo;
  undo.action = "noop";
  undo.retry.max_attempts = 2;
  def.steps[0].compensate = undo;
  def.steps[1].compensate = undo;
  return def;
}

Saga SagaOf(const WorkflowDefinition& def) {
  Saga s;
  s.id = "s1";
  s.workflow = def.name;
  s.version = def.version;
  s.steps.resize(def.steps.size());
  return s;
}

TEST(SagaViewTest, StepsAreNamedByTheirPathOrByIndexWithoutTheirDefinition) {
  const WorkflowDefinition def = ThreeSteps();
  const Saga saga = SagaOf(def);
  const SagaView named(saga, &def);
  ASSERT_EQ(named.steps().size(), 3u);
  EXPECT_EQ(named.steps()[1].path, "hotel");
  EXPECT_EQ(named.steps()[1].spec, &def.steps[1]);
  EXPECT_EQ(named.steps()[1].state, &saga.steps[1]);
  EXPECT_EQ(named.Find("car"), &named.steps()[2]);
  EXPECT_EQ(named.Find("boat"), nullptr);

  const SagaView unnamed(saga, nullptr);
  EXPECT_EQ(unnamed.steps()[2].path, "step[2]");
  EXPECT_EQ(unnamed.steps()[2].spec, nullptr);
  EXPECT_EQ(unnamed.definition(), nullptr);

  // A definition of another shape is not the one the saga ran.
  WorkflowDefinition other = def;
  other.steps.pop_back();
  const SagaView mismatched(saga, &other);
  EXPECT_EQ(mismatched.steps()[0].path, "step[0]");
  EXPECT_EQ(mismatched.definition(), nullptr);
}

TEST(SagaViewTest, AWaitOnAStepNamesItsPathAndTheSagasOwnWaitsNone) {
  const WorkflowDefinition def = ThreeSteps();
  Saga saga = SagaOf(def);
  saga.waits = {{Wait::Kind::kBackoff, "hotel", false, 2, 5000}};
  saga.steps[1].attempts = 2;
  SagaView view(saga, &def);
  ASSERT_EQ(view.waits().size(), 1u);
  const WaitView& w = view.waits()[0];
  EXPECT_EQ(w.kind, Wait::Kind::kBackoff);
  EXPECT_EQ(w.path, "hotel");
  EXPECT_FALSE(w.compensation);
  EXPECT_EQ(w.attempt, 2u);
  EXPECT_EQ(w.due_ms, 5000);
  auto at = view.position();
  ASSERT_TRUE(at.has_value());
  EXPECT_EQ(at->step->path, "hotel");
  EXPECT_EQ(at->attempts, 2u);
  EXPECT_EQ(at->max_attempts, 4u);

  saga.waits = {{Wait::Kind::kQueued, "", false, 0, 0}};
  const SagaView queued(saga, &def);
  ASSERT_EQ(queued.waits().size(), 1u);
  EXPECT_EQ(queued.waits()[0].path, "");
  EXPECT_FALSE(queued.position().has_value());

  saga.waits.clear();
  EXPECT_TRUE(SagaView(saga, &def).waits().empty());
}

// A compensating saga that still awaits a stopped attempt (the result of a
// step of another branch) is at the compensation under way, not at the
// stopped step; with only the stopped attempt left, it is there.
TEST(SagaViewTest, AStoppedAttemptIsThePositionOnlyWhenNothingElseIsUnderWay) {
  const WorkflowDefinition def = ThreeSteps();
  Saga saga = SagaOf(def);
  saga.state = SagaState::kCompensating;
  saga.steps[0].compensation_attempts = 1;
  saga.waits = {{Wait::Kind::kAttempt, "hotel", false, 1, 0, true},
                {Wait::Kind::kAttempt, "flight", true, 1, 0}};
  const SagaView both(saga, &def);
  auto at = both.position();
  ASSERT_TRUE(at.has_value());
  EXPECT_EQ(at->step->path, "flight");
  EXPECT_TRUE(at->compensation);
  EXPECT_EQ(at->max_attempts, 2u);

  saga.waits.pop_back();
  const SagaView stopped_only(saga, &def);
  at = stopped_only.position();
  ASSERT_TRUE(at.has_value());
  EXPECT_EQ(at->step->path, "hotel");
  EXPECT_FALSE(at->compensation);
}

// A step inside a map step waits as one item's ("fan[2].charge"): the
// saga is at that step of the map ("fan.charge").
TEST(SagaViewTest, AnItemsWaitIsAtTheMapsStep) {
  auto def = ParseDefinition(nlohmann::json::parse(R"({
    "name": "fan", "version": 1,
    "steps": [{"name": "fan", "map": {"items": [1, 2, 3],
      "steps": [{"name": "charge", "action": "noop",
                 "retry": {"max_attempts": 3}}]}}]})"),
                             {});
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  Saga saga = SagaOf(*def);
  saga.waits = {{Wait::Kind::kAttempt, "fan[2].charge", false, 1, 0}};
  const SagaView view(saga, &*def);
  auto at = view.position();
  ASSERT_TRUE(at.has_value());
  EXPECT_EQ(at->step->path, "fan.charge");
  EXPECT_EQ(at->max_attempts, 3u);
}

TEST(SagaViewTest, AParkedSagaIsAtTheCompensationThatFailedElseTheFailedStep) {
  const WorkflowDefinition def = ThreeSteps();
  Saga saga = SagaOf(def);
  saga.state = SagaState::kParked;
  saga.failed_step = 2;
  saga.failure = {"http_503", "down"};
  saga.steps[2].status = StepStatus::kFailed;
  saga.steps[2].attempts = 4;
  // Its automatic replay waits on no step.
  saga.waits = {{Wait::Kind::kRedrive, "", false, 0, 9000}};
  {
    const SagaView view(saga, &def);
    auto at = view.position();
    ASSERT_TRUE(at.has_value());
    EXPECT_EQ(at->step->path, "car");
    EXPECT_FALSE(at->compensation);
    EXPECT_EQ(at->attempts, 4u);
    EXPECT_EQ(view.failed_step()->path, "car");
    EXPECT_EQ(view.failed_compensation(), nullptr);
  }
  saga.steps[0].status = StepStatus::kSucceeded;
  saga.steps[0].compensation = CompensationStatus::kFailed;
  saga.steps[0].compensation_attempts = 2;
  const SagaView view(saga, &def);
  auto at = view.position();
  ASSERT_TRUE(at.has_value());
  EXPECT_EQ(at->step->path, "flight");
  EXPECT_TRUE(at->compensation);
  EXPECT_EQ(at->attempts, 2u);
  EXPECT_EQ(at->max_attempts, 2u);
  EXPECT_EQ(view.failed_compensation()->path, "flight");
}

TEST(SagaViewTest, RemainingCountsStepsToRunOrCompensationsStillDue) {
  const WorkflowDefinition def = ThreeSteps();
  Saga saga = SagaOf(def);
  saga.steps[0].status = StepStatus::kSucceeded;
  saga.steps[0].attempts = 1;
  saga.steps[1].attempts = 3;
  EXPECT_EQ(SagaView(saga, &def).remaining(), 2u);
  EXPECT_EQ(SagaView(saga, &def).total_attempts(), 4u);

  // Compensating after hotel timed out: flight and hotel (whose effect
  // may have happened) are to be undone; car never ran.
  saga.state = SagaState::kCompensating;
  saga.steps[1].status = StepStatus::kFailed;
  saga.steps[1].error = {"timeout", "attempt timed out"};
  EXPECT_EQ(SagaView(saga, &def).remaining(), 2u);
  saga.steps[1].compensation = CompensationStatus::kSucceeded;
  EXPECT_EQ(SagaView(saga, &def).remaining(), 1u);

  saga.state = SagaState::kCompensated;
  EXPECT_EQ(SagaView(saga, &def).remaining(), 0u);
}

WorkflowDefinition ParallelTrip() {
  nlohmann::json doc = nlohmann::json::parse(R"({
    "name": "trip", "version": 1,
    "steps": [
      {"name": "book", "parallel": {"branches": {
        "flight": [{"name": "flight", "action": "noop"},
                   {"name": "seat", "action": "noop"}],
        "hotel": [{"name": "hotel", "action": "noop",
                   "compensate": {"action": "noop"}}]}}},
      {"name": "notify", "action": "noop"}]})");
  auto def = ParseDefinition(doc, {});
  EXPECT_TRUE(def.ok()) << def.status().ToString();
  return std::move(def).value();
}

TEST(SagaViewTest, AParallelStepHoldsItsBranchesStepsAsATreeOfPaths) {
  const WorkflowDefinition def = ParallelTrip();
  const Saga saga = SagaOf(def);
  const SagaView view(saga, &def);
  ASSERT_EQ(view.top(), (std::vector<size_t>{0, 4}));
  const StepView& book = view.steps()[0];
  EXPECT_TRUE(book.parallel());
  ASSERT_EQ(book.branches.size(), 2u);
  EXPECT_EQ(book.branches[0].name, "flight");
  std::vector<std::string> flight;
  for (size_t i : book.branches[0].steps)
    flight.push_back(view.steps()[i].path);
  EXPECT_EQ(flight, (std::vector<std::string>{"book.flight.flight",
                                              "book.flight.seat"}));
  EXPECT_EQ(view.Find("book.hotel.hotel"), &view.steps()[3]);
  // Work left counts the action steps only: the parallel step is done when
  // its branches are.
  EXPECT_EQ(view.remaining(), 4u);
}

}  // namespace
}  // namespace cde
