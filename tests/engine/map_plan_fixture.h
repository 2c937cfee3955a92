// The planner over map steps, driven as the engine drives it but without
// I/O: a plan is committed by keeping its saga and its item rows, and each
// attempt's result is planned in turn. Shared by the map planner tests.
#ifndef CDE_TESTS_ENGINE_MAP_PLAN_FIXTURE_H_
#define CDE_TESTS_ENGINE_MAP_PLAN_FIXTURE_H_

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "engine/transitions.h"

namespace cde::test {

// {"orders": [{"id": 0}, ... {"id": n-1}]}
inline nlohmann::json Orders(int n) {
  std::vector<nlohmann::json> orders;
  for (int i = 0; i < n; ++i) orders.push_back({{"id", i}});
  return {{"orders", orders}};
}

// The indices of the items a plan writes, in write order.
inline std::vector<uint32_t> ItemIndices(const Plan& p) {
  std::vector<uint32_t> out;
  for (const auto& [ref, write] : p.items) out.push_back(ref.index);
  return out;
}

class MapPlanFixture : public ::testing::Test {
 protected:
  static constexpr int64_t kNow = 1'764'000'000'000;

  // The definition the saga runs (its steps' action is "book").
  void Use(const nlohmann::json& doc) {
    auto def = ParseDefinition(doc, {"book"});
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    def_ = std::move(def).value();
  }
  PlanContext Ctx() {
    PlanContext ctx{def_, kNow, 0.5};
    ctx.items = &items_;
    ctx.max_map_items = max_items_;
    return ctx;
  }
  // What the engine does once a plan has committed: keeps its items, each
  // written under its map instance's path.
  Saga Commit(const Plan& p) {
    for (const auto& [ref, write] : p.items) {
      auto& list = items_[ref.instance()];
      if (list.size() <= ref.index) list.resize(ref.index + 1);
      list[ref.index] = write.state;
      EXPECT_EQ(write.map_path,
                InstancePath(def_, MapStepInstance(ref.instance())));
    }
    return p.saga;
  }
  Plan Start(const nlohmann::json& input) {
    return PlanStart(Ctx(), "01SAGA", input, "", "", "", "", false);
  }
  // The result of attempt `attempt` at `path`: output {"done": path}, or
  // an error of `kind` with message "boom".
  Plan Result(const Saga& s, const std::string& path, bool ok,
              bool compensation = false, uint32_t attempt = 1,
              const std::string& kind = "http_404") {
    AttemptOutcome o{{path, compensation, attempt}, ok, nullptr, {}};
    if (ok) {
      o.output = {{"done", path}};
    } else {
      o.error = {kind, "boom"};
    }
    auto p = PlanAttemptResult(Ctx(), s, o);
    EXPECT_TRUE(p.has_value()) << path << " #" << attempt;
    return p ? std::move(*p) : Plan{};
  }
  // Starts a saga over `n` orders and lets prep succeed.
  Saga Begin(int n) {
    Saga s = Commit(Start(Orders(n)));
    return Commit(Result(s, "prep", true));
  }
  const StepState& Step(const Saga& s, const std::string& path) {
    return s.steps.at(static_cast<size_t>(def_.StepAtPath(path)));
  }

  WorkflowDefinition def_;
  ItemTable items_;
  uint32_t max_items_ = 10000;
};

}  // namespace cde::test

#endif  // CDE_TESTS_ENGINE_MAP_PLAN_FIXTURE_H_
