// Parallel steps in the definition language: what a valid one parses into,
// and the exact error for each rule (names unique across branches, paths,
// branch names and counts, nesting depth, and which outputs a template may
// read from inside and after a parallel step).
#include <gmock/gmock.h>

#include "engine/definition.h"
#include "tests/engine/definition_test_util.h"

namespace cde {
namespace {

using nlohmann::json;
using Strings = std::vector<std::string>;

using test::Doc;
using test::Errors;
using test::Step;

json Parallel(const std::string& name, json branches) {
  return {{"name", name}, {"parallel", {{"branches", std::move(branches)}}}};
}

json List(std::vector<json> steps) { return json(std::move(steps)); }

TEST(ParallelDefinitionTest, NestedParallelStepsParseIntoPathsInPreOrder) {
  auto def = ParseDefinition(
      Doc({Parallel("deploy", {{"eu",
                                {Step("eu-push"),
                                 Parallel("eu-checks",
                                          {{"a", List({Step("check-a")})},
                                           {"b", List({Step("check-b")})}})}},
                               {"us", List({Step("us-push")})}}),
           Step("done")}),
      {});
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  std::vector<std::string> paths;
  for (const StepSpec& s : def->steps) paths.push_back(s.path);
  EXPECT_THAT(paths, ::testing::ElementsAre("deploy", "deploy.eu.eu-push",
                                            "deploy.eu.eu-checks",
                                            "deploy.eu.eu-checks.a.check-a",
                                            "deploy.eu.eu-checks.b.check-b",
                                            "deploy.us.us-push", "done"));
  EXPECT_EQ(def->steps[0].kind, StepKind::kParallel);
  ASSERT_EQ(def->steps[0].branches.size(), 2u);
  EXPECT_EQ(def->steps[0].branches[0], (Branch{"eu", {1, 2}}));
  EXPECT_EQ(def->steps[3].where,
            "steps[0].parallel.branches.eu[1].parallel.branches.a[0]");
  EXPECT_EQ(def->Depth(3), 2);
  EXPECT_EQ(def->StepAtPath("deploy.us.us-push"), 5);
  EXPECT_EQ(def->StepIndex("us-push"), 5);
}

TEST(ParallelDefinitionTest, ShapeRules) {
  EXPECT_EQ(Errors(Doc({Parallel("p", json::object())})),
            Strings{"steps[0].parallel.branches: must have at least one "
                    "branch"});
  EXPECT_EQ(Errors(Doc({Parallel("p", {{"a", json::array()}})})),
            Strings{"steps[0].parallel.branches.a: must have at least one "
                    "step"});
  EXPECT_EQ(Errors(Doc({Parallel("p", {{"a.b", List({Step("x")})}})})),
            Strings{"steps[0].parallel.branches: branch name 'a.b' must "
                    "match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"});
  EXPECT_EQ(Errors(Doc({{{"name", "p"}, {"parallel", {{"branch", 1}}}}})),
            (Strings{"steps[0].parallel: unknown key 'branch'",
                     "steps[0].parallel.branches: is required"}));
  // A parallel step takes no action of its own.
  json with_action = Parallel("p", {{"a", List({Step("x")})}});
  with_action["action"] = "noop";
  EXPECT_EQ(Errors(Doc({with_action})),
            Strings{"steps[0]: unknown key 'action'"});
  EXPECT_EQ(Errors(Doc({Parallel("p", {{"a", List({json{{"name", "x"}}})}})})),
            Strings{"steps[0].parallel.branches.a[0].action: is required"});
}

TEST(ParallelDefinitionTest, NamesAndPathsAreUniqueAcrossBranches) {
  EXPECT_EQ(Errors(Doc({Parallel(
                "p", {{"a", List({Step("x")})}, {"b", List({Step("x")})}})})),
            Strings{"steps[0].parallel.branches.b[0].name: duplicate step "
                    "name 'x' (also steps[0].parallel.branches.a[0])"});
  // "p.a.x" at the top level and step x in branch a of p.
  EXPECT_EQ(
      Errors(Doc({Step("p.a.x"), Parallel("p", {{"a", List({Step("x")})}})})),
      Strings{"steps[1].parallel.branches.a[0].name: step path 'p.a.x' "
              "is also the path of steps[0]"});
}

TEST(ParallelDefinitionTest, NestingIsBounded) {
  json step = Step("leaf");
  for (size_t depth = 0; depth <= kMaxNestingDepth; ++depth) {
    step = Parallel("p" + std::to_string(depth), {{"b", List({step})}});
  }
  // kMaxNestingDepth + 1 parallel steps, one inside the other: the
  // innermost is one too deep.
  const Strings errors = Errors(Doc({step}));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0],
              ::testing::EndsWith(
                  "parallel.branches: parallel and map steps nest at most " +
                  std::to_string(kMaxNestingDepth) + " deep"));
  // kMaxNestingDepth of them, the documented limit, are fine.
  json ok = Step("leaf");
  for (size_t depth = 0; depth < kMaxNestingDepth; ++depth) {
    ok = Parallel("p" + std::to_string(depth), {{"b", List({ok})}});
  }
  EXPECT_EQ(Errors(Doc({ok})), Strings{});
}

TEST(ParallelDefinitionTest, TemplatesReadOnlyStepsThatFinishedBefore) {
  const json branches = {
      {"a", {Step("a1"), Step("a2", {{"x", "${steps.a1.output}"}})}},
      {"b", List({Step("b1", {{"x", "${steps.before.output}"}})})}};
  json ok = Doc({Step("before"), Parallel("p", branches),
                 Step("after", {{"all", "${steps.p.output.a}"},
                                {"one", "${steps.b1.output}"}})});
  EXPECT_EQ(Errors(ok), Strings{});

  // Another branch's step runs beside it.
  json beside = Doc(
      {Parallel("p", {{"a", List({Step("a1", {{"x", "${steps.b1.output}"}})})},
                      {"b", List({Step("b1")})}})});
  EXPECT_EQ(Errors(beside),
            Strings{"steps[0].parallel.branches.a[0].params.x: "
                    "${steps.b1.output} refers to step 'b1', which does not "
                    "run before this step"});
  // The parallel step that holds it ends after it.
  json holder = Doc({Parallel(
      "p", {{"a", List({Step("a1", {{"x", "${steps.p.output}"}})})}})});
  EXPECT_EQ(Errors(holder),
            Strings{"steps[0].parallel.branches.a[0].params.x: "
                    "${steps.p.output} refers to step 'p', which does not "
                    "run before this step"});
}

TEST(ParallelDefinitionTest, TheJsonSchemaOffersBothKindsOfStep) {
  const json schema = DefinitionJsonSchema({});
  const json& step = schema["properties"]["steps"]["items"];
  // One object: an action step's keys and a parallel step's, and either
  // `action` or `parallel`.
  EXPECT_EQ(step["required"], json({"name"}));
  EXPECT_EQ(step["oneOf"][0]["required"], json({"action"}));
  EXPECT_EQ(step["oneOf"][1]["required"], json({"parallel"}));
  EXPECT_TRUE(step["properties"].contains("action"));
  EXPECT_EQ(
      step["properties"]["parallel"]["properties"]["branches"]["maxProperties"],
      kMaxBranches);
}

}  // namespace
}  // namespace cde
