// Map steps in the definition language: what a valid one parses into (the
// steps inside with template paths, an item's instance paths), and the
// exact error for each rule (items, max_concurrency, tolerated_failures,
// no map inside a map, ${item} and ${index} only inside one, and which
// outputs may be read from inside and after it).
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

json Map(const std::string& name, std::vector<json> steps,
         json extra = json::object()) {
  json map = {{"items", "${input.list}"}, {"steps", std::move(steps)}};
  map.update(extra);
  return {{"name", name}, {"map", std::move(map)}};
}

TEST(MapDefinitionTest, ParsesIntoTemplatePathsAndInstancePaths) {
  auto def = ParseDefinition(
      Doc({Step("prep"),
           Map("fan",
               {Step("charge", {{"order", "${item}"}, {"i", "${index}"}}),
                {{"name", "ship"},
                 {"parallel",
                  {{"branches",
                    {{"a", std::vector<json>{Step("ship-a")}},
                     {"b", std::vector<json>{Step("ship-b")}}}}}}}},
               {{"max_concurrency", 4}, {"tolerated_failures", "10%"}}),
           Step("done", {{"all", "${steps.fan.output}"}})}),
      {});
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  std::vector<std::string> paths;
  for (const StepSpec& s : def->steps) paths.push_back(s.path);
  EXPECT_THAT(paths, ::testing::ElementsAre("prep", "fan", "fan.charge",
                                            "fan.ship", "fan.ship.a.ship-a",
                                            "fan.ship.b.ship-b", "done"));
  const StepSpec& fan = def->steps[1];
  EXPECT_EQ(fan.kind, StepKind::kMap);
  EXPECT_EQ(fan.map.steps, (std::vector<int>{2, 3}));
  EXPECT_EQ(fan.map.size, 4);
  EXPECT_EQ(fan.map.max_concurrency, 4u);
  EXPECT_EQ(fan.map.tolerated_percent, std::optional<uint32_t>(10));
  EXPECT_EQ(fan.map.items, "${input.list}");
  EXPECT_EQ(def->steps[4].in_map, 1);
  EXPECT_EQ(def->steps[4].parent, 3);
  EXPECT_EQ(def->steps[2].where, "steps[1].map.steps[0]");
  EXPECT_EQ(def->steps[0].in_map, -1);

  EXPECT_EQ(InstancePath(*def, {4, 12}), "fan[12].ship.a.ship-a");
  EXPECT_EQ(InstancePath(*def, {0, -1}), "prep");
  EXPECT_EQ(InstanceAt(*def, "fan[12].ship.a.ship-a"), (StepInstance{4, 12}));
  EXPECT_EQ(InstanceAt(*def, "fan[0].charge"), (StepInstance{2, 0}));
  EXPECT_EQ(InstanceAt(*def, "done"), (StepInstance{6, -1}));
  for (const char* bad :
       {"fan[01].charge", "fan[x].charge", "fan[].charge", "fan[3]", "prep[0]",
        "fan[3].nope", "fan[3.charge", "fan[12345678].charge"}) {
    EXPECT_EQ(InstanceAt(*def, bad).step, -1) << bad;
  }
}

TEST(MapDefinitionTest, Defaults) {
  auto def = ParseDefinition(Doc({Map("fan", {Step("a")})}), {});
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  EXPECT_EQ(def->steps[0].map.max_concurrency, kDefaultMapConcurrency);
  EXPECT_EQ(def->steps[0].map.tolerated_count, 0u);
  EXPECT_FALSE(def->steps[0].map.tolerated_percent.has_value());
  auto counted = ParseDefinition(
      Doc({Map("fan", {Step("a")}, {{"tolerated_failures", 3}})}), {});
  ASSERT_TRUE(counted.ok()) << counted.status().ToString();
  EXPECT_EQ(counted->steps[0].map.tolerated_count, 3u);
}

TEST(MapDefinitionTest, ShapeRules) {
  json no_items = Map("fan", {Step("a")});
  no_items["map"].erase("items");
  EXPECT_EQ(Errors(Doc({no_items})),
            Strings{"steps[0].map.items: is required"});
  EXPECT_EQ(Errors(Doc({Map("fan", {Step("a")}, {{"items", 5}})})),
            Strings{"steps[0].map.items: must be an array"});
  EXPECT_TRUE(
      Errors(Doc({Map("fan", {Step("a")}, {{"items", json{1, 2}}})})).empty());
  EXPECT_EQ(Errors(Doc({Map("fan", {}, json::object())})),
            Strings{"steps[0].map.steps: must have at least one step"});
  EXPECT_EQ(Errors(Doc({Map("fan", {Step("a")}, {{"max_concurrency", 0}})})),
            Strings{"steps[0].map.max_concurrency: must be >= 1"});
  EXPECT_EQ(Errors(Doc({Map("fan", {Step("a")}, {{"max_concurrency", 1025}})})),
            Strings{"steps[0].map.max_concurrency: must be <= 1024"});
  const std::string tolerated =
      "steps[0].map.tolerated_failures: must be a count of items (an "
      "integer from 0 to 1000000) or a percentage of them (\"0%\" to "
      "\"100%\")";
  for (const json& bad : {json("abc"), json("101%"), json(-1), json(1.5),
                          json("5 %"), json(2000000)}) {
    EXPECT_EQ(
        Errors(Doc({Map("fan", {Step("a")}, {{"tolerated_failures", bad}})})),
        Strings{tolerated})
        << bad.dump();
  }
  EXPECT_EQ(Errors(Doc({Map("fan", {Step("a")}, {{"zz", 1}})})),
            Strings{"steps[0].map: unknown key 'zz'"});
}

TEST(MapDefinitionTest, AMapInsideAMapRunsPerItemWithAnIndexPerMap) {
  auto def = ParseDefinition(
      Doc({Map("orders",
               {Step("check", {{"order", "${item.id}"}}),
                Map("lines",
                    {Step("pick", {{"line", "${item}"},
                                   {"checked", "${steps.check.output}"}})},
                    {{"items", "${item.lines}"}}),
                Step("ship", {{"picked", "${steps.lines.output}"}})})}),
      {});
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  std::vector<std::string> paths;
  for (const StepSpec& s : def->steps) paths.push_back(s.path);
  EXPECT_THAT(paths,
              ::testing::ElementsAre("orders", "orders.check", "orders.lines",
                                     "orders.lines.pick", "orders.ship"));
  EXPECT_EQ(def->steps[2].in_map, 0);
  EXPECT_EQ(def->steps[3].in_map, 2);
  EXPECT_EQ(EnclosingMaps(*def, 3), (std::vector<int>{0, 2}));

  const StepInstance pick{3, 7, {2}};
  EXPECT_EQ(InstancePath(*def, pick), "orders[2].lines[7].pick");
  EXPECT_EQ(InstanceAt(*def, "orders[2].lines[7].pick"), pick);
  EXPECT_EQ(InstancePath(*def, {2, 2, {}}), "orders[2].lines");
  EXPECT_EQ(InstanceAt(*def, "orders[2].lines"), (StepInstance{2, 2, {}}));
  EXPECT_EQ(InstanceAt(*def, "orders.lines.pick"), (StepInstance{3, -1, {}}));
  for (const char* bad :
       {"orders[2].lines.pick", "orders.lines[7].pick", "orders[2].lines[7]",
        "orders[2][7].lines.pick", "orders[2].lines[7].pick[1]"}) {
    EXPECT_EQ(InstanceAt(*def, bad).step, -1) << bad;
  }
}

TEST(MapDefinitionTest, AStepInsideAnInnerMapReadsItsItemsAndTheOuterItem) {
  // Its own item's steps, the outer item's earlier steps, steps before.
  EXPECT_TRUE(
      Errors(Doc({Step("prep"),
                  Map("orders",
                      {Step("check"),
                       Map("lines",
                           {Step("a", {{"p", "${steps.prep.output}"},
                                       {"c", "${steps.check.output}"}}),
                            Step("b", {{"a", "${steps.a.output}"}})},
                           {{"items", "${steps.check.output.lines}"}})})}))
          .empty());
  // The outer item's steps after the inner map read its output, not the
  // steps inside it.
  EXPECT_EQ(Errors(Doc({Map("orders",
                            {Map("lines", {Step("a")}),
                             Step("after", {{"x", "${steps.a.output}"}})})})),
            Strings{"steps[0].map.steps[1].params.x: ${steps.a.output} "
                    "refers to step 'a', which runs once per item of map step "
                    "'orders.lines': read ${steps.lines.output} after it "
                    "instead"});
  // Nested max_concurrency multiply: at most 1024 items at a time in all.
  EXPECT_EQ(
      Errors(Doc(
          {Map("orders", {Map("lines", {Step("a")}, {{"max_concurrency", 64}})},
               {{"max_concurrency", 32}})})),
      Strings{"steps[0].map.steps[0].map.max_concurrency: with the map steps "
              "around it, 2048 items at a time (orders: 32, orders.lines: "
              "64); the max_concurrency of nested map steps multiply, and "
              "may come to at most 1024"});
  EXPECT_TRUE(
      Errors(Doc({Map("orders",
                      {Map("lines", {Step("a")}, {{"max_concurrency", 64}})},
                      {{"max_concurrency", 16}})}))
          .empty());
  // Nesting counts towards the depth limit, as parallel steps do.
  json doc = Step("leaf");
  for (int i = 0; i < 9; ++i) {
    doc = Map("m" + std::to_string(i), {doc});
  }
  EXPECT_THAT(Errors(Doc({doc})),
              ::testing::Contains(::testing::HasSubstr("nest at most 8 deep")));
}

TEST(MapDefinitionTest, ItemAndIndexOnlyInsideAMapStep) {
  EXPECT_EQ(Errors(Doc({Step("a", {{"x", "${item.id}"}})})),
            Strings{"steps[0].params.x: ${item} is a map step's item, and "
                    "this step is not one of a map step's steps"});
  EXPECT_EQ(Errors(Doc({Map("fan", {Step("a")}, {{"items", "${index}"}})})),
            Strings{"steps[0].map.items: ${index} is a map step's item, and "
                    "this step is not one of a map step's steps"});
}

TEST(MapDefinitionTest, TemplatesReadWhatRanBefore) {
  // Inside an item: earlier steps of the item and steps before the map.
  EXPECT_TRUE(
      Errors(Doc({Step("prep"),
                  Map("fan", {Step("a", {{"p", "${steps.prep.output}"}}),
                              Step("b", {{"a", "${steps.a.output}"}})})}))
          .empty());
  // After the map: its output, not the steps inside it (one per item).
  EXPECT_EQ(Errors(Doc({Map("fan", {Step("a")}),
                        Step("after", {{"x", "${steps.a.output}"}})})),
            Strings{"steps[1].params.x: ${steps.a.output} refers to step 'a', "
                    "which runs once per item of map step 'fan': read "
                    "${steps.fan.output} after it instead"});
  // Not the map's own output from inside it.
  EXPECT_EQ(
      Errors(Doc({Map("fan", {Step("a", {{"x", "${steps.fan.output}"}})})})),
      Strings{"steps[0].map.steps[0].params.x: ${steps.fan.output} "
              "refers to step 'fan', which does not run before this "
              "step"});
  // The items come from steps before the map.
  EXPECT_EQ(
      Errors(Doc({Map("fan", {Step("a")}, {{"items", "${steps.later.output}"}}),
                  Step("later")})),
      Strings{"steps[0].map.items: ${steps.later.output} refers to step "
              "'later', which does not run before this step"});
}

TEST(MapDefinitionTest, TheJsonSchemaOffersThreeKindsOfStep) {
  const json schema = DefinitionJsonSchema({});
  const json& step = schema["properties"]["steps"]["items"];
  EXPECT_EQ(step["required"], json({"name"}));
  EXPECT_EQ(step["oneOf"].size(), 3u);
  EXPECT_EQ(step["oneOf"][2]["required"], json({"map"}));
  const json& map = step["properties"]["map"];
  EXPECT_EQ(map["required"], json({"items", "steps"}));
  EXPECT_EQ(map["properties"]["max_concurrency"]["maximum"],
            kMaxMapConcurrency);
  EXPECT_EQ(map["properties"]["tolerated_failures"]["oneOf"][1]["pattern"],
            "^(100|[1-9]?[0-9])%$");
}

}  // namespace
}  // namespace cde
