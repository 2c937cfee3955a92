// Templating: which references parse, what a rendered string becomes (the
// value itself, or spliced text), escapes, and the exact error for every way
// a template can be wrong or unresolvable.
#include "engine/templating.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "engine/definition.h"
#include "storage/json_depth.h"

namespace cde {
namespace {

using nlohmann::json;

class TemplatingTest : public ::testing::Test {
 protected:
  TemplatingTest() {
    input_ = json::parse(R"({
      "trip": {"id": "T-1", "nights": 3},
      "items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}],
      "map": {"0": "zero"},
      "flag": true,
      "none": null,
      "price": 12.5,
      "text": "${saga.id}"
    })");
    outputs_["book"] = json::parse(R"({"id": "bk-7", "seats": [11, 12]})");
    outputs_["reserve.flight"] = json::parse(R"({"pnr": "XYZ"})");
    for (const auto& [name, output] : outputs_) output_refs_[name] = &output;
    context_.input = &input_;
    context_.outputs = &output_refs_;
    context_.saga_id = "01J0SAGA";
    context_.idempotency_key = "01J0SAGA/book/2";
    context_.attempt = 2;
  }

  // The rendered params; fails the test on an error.
  json Render(const json& params) {
    Result<json> out = RenderTemplates(params, context_);
    EXPECT_TRUE(out.ok()) << out.status().ToString();
    return out.ok() ? *out : json();
  }

  // The error message rendering gives, or "OK".
  std::string RenderError(const json& params) {
    Result<json> out = RenderTemplates(params, context_);
    if (out.ok()) return "OK";
    EXPECT_TRUE(out.status().IsInvalidArgument());
    return out.status().message();
  }

  json input_;
  std::map<std::string, json> outputs_;
  std::map<std::string, const json*> output_refs_;
  TemplateContext context_;
};

TEST_F(TemplatingTest, ItemAndIndexAreThoseOfTheMapStepsItem) {
  const json item = {{"sku", "A1"}, {"qty", 2}};
  EXPECT_EQ(RenderError({{"x", "${item}"}}),
            "params.x: ${item}: there is no item outside a map step");
  EXPECT_EQ(RenderError({{"x", "${index}"}}),
            "params.x: ${index}: there is no index outside a map step");
  context_.item = &item;
  context_.index = 4;
  EXPECT_EQ(Render({{"x", "${item}"},
                    {"q", "${item.qty}"},
                    {"i", "${index}"},
                    {"s", "item ${index}: ${item.sku}"}}),
            json({{"x", item}, {"q", 2}, {"i", 4}, {"s", "item 4: A1"}}));
  EXPECT_EQ(RenderError({{"x", "${item.price}"}}),
            "params.x: ${item.price}: item has no field 'price'");
  EXPECT_EQ(RenderError({{"x", "${index.x}"}}),
            "params.x: unknown reference '${index.x}'");
}

TEST_F(TemplatingTest, ExactReferenceKeepsTheValuesType) {
  const json params = {
      {"nights", "${input.trip.nights}"}, {"trip", "${input.trip}"},
      {"items", "${input.items}"},        {"flag", "${input.flag}"},
      {"none", "${input.none}"},          {"price", "${input.price}"},
      {"attempt", "${step.attempt}"}};
  EXPECT_EQ(Render(params), json::parse(R"({
    "nights": 3,
    "trip": {"id": "T-1", "nights": 3},
    "items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}],
    "flag": true,
    "none": null,
    "price": 12.5,
    "attempt": 2
  })"));
}

TEST_F(TemplatingTest, WholeInputAndWholeOutput) {
  EXPECT_EQ(Render("${input}"), input_);
  EXPECT_EQ(Render("${steps.book.output}"), outputs_["book"]);
}

TEST_F(TemplatingTest, EmbeddedReferencesAreSplicedAsText) {
  EXPECT_EQ(Render("trip ${input.trip.id} for ${input.trip.nights} nights"),
            "trip T-1 for 3 nights");
  EXPECT_EQ(Render("flag=${input.flag} none=${input.none} p=${input.price}"),
            "flag=true none=null p=12.5");
  EXPECT_EQ(Render("seats: ${steps.book.output.seats}"), "seats: [11,12]");
  EXPECT_EQ(Render("x${input.trip}"), R"(x{"id":"T-1","nights":3})");
  EXPECT_EQ(Render("${input.trip.id}${input.trip.id}"), "T-1T-1");
}

TEST_F(TemplatingTest, SagaIdIdempotencyKeyAndAttempt) {
  EXPECT_EQ(Render(json::array({"${saga.id}", "${step.idempotency_key}",
                                "${step.attempt}", "try ${step.attempt}"})),
            json::array({"01J0SAGA", "01J0SAGA/book/2", 2, "try 2"}));
}

TEST_F(TemplatingTest, DigitSegmentsIndexArraysAndNameObjectKeys) {
  EXPECT_EQ(Render("${input.items.1.sku}"), "B2");
  EXPECT_EQ(Render("${steps.book.output.seats.0}"), 11);
  EXPECT_EQ(Render("${input.map.0}"), "zero");
}

TEST_F(TemplatingTest, StepNamesMayContainDots) {
  EXPECT_EQ(Render("${steps.reserve.flight.output.pnr}"), "XYZ");
}

TEST_F(TemplatingTest, RendersNestedObjectsAndArraysButNotKeys) {
  const json params = json::parse(R"({
    "${input.trip.id}": "key stays",
    "headers": {"X-Trip": "${input.trip.id}"},
    "argv": ["echo", "${input.items.0.sku}", 7, null, false]
  })");
  EXPECT_EQ(Render(params), json::parse(R"({
    "${input.trip.id}": "key stays",
    "headers": {"X-Trip": "T-1"},
    "argv": ["echo", "A1", 7, null, false]
  })"));
}

TEST_F(TemplatingTest, DoubleDollarIsALiteralTemplateStart) {
  EXPECT_EQ(Render("$${input.trip.id}"), "${input.trip.id}");
  EXPECT_EQ(Render("a $${x} b ${input.trip.id}"), "a ${x} b T-1");
  // The escape wins over a reference right after a '$'.
  EXPECT_EQ(Render("$$${input.trip.id}"), "$${input.trip.id}");
  EXPECT_EQ(Render("cost: $5 and $$"), "cost: $5 and $$");
}

TEST_F(TemplatingTest, RenderedValuesAreNotRenderedAgain) {
  EXPECT_EQ(Render("${input.text}"), "${saga.id}");
  EXPECT_EQ(Render("t=${input.text}"), "t=${saga.id}");
}

TEST_F(TemplatingTest, NonStringValuesAreUnchanged) {
  const json params = json::parse(R"({"n": 1, "b": true, "z": null})");
  EXPECT_EQ(Render(params), params);
  EXPECT_EQ(Render(json::object()), json::object());
}

TEST_F(TemplatingTest, MissingInputRendersAsNull) {
  context_.input = nullptr;
  EXPECT_EQ(Render("${input}"), json());
  EXPECT_EQ(RenderError("${input.a}"),
            "params: ${input.a}: input is null and has no field 'a'");
}

struct ErrorCase {
  json params;
  std::string error;
};

TEST_F(TemplatingTest, ResolutionErrorsNameThePathAndTheReference) {
  const std::vector<ErrorCase> cases = {
      {{{"body", {{"trip", "${input.trip_id}"}}}},
       "params.body.trip: ${input.trip_id}: input has no field 'trip_id'"},
      {{{"a", "${input.trip.id.x}"}},
       "params.a: ${input.trip.id.x}: input.trip.id is a string and has no "
       "field 'x'"},
      {{{"a", "${input.trip.code}"}},
       "params.a: ${input.trip.code}: input.trip has no field 'code'"},
      {{{"argv", json::array({"x", "${input.items.5.sku}"})}},
       "params.argv[1]: ${input.items.5.sku}: input.items has no element 5 "
       "(it has 2)"},
      {{{"a", "${input.items.first}"}},
       "params.a: ${input.items.first}: input.items is an array and has no "
       "field 'first'"},
      {{{"a", "${input.none.x}"}},
       "params.a: ${input.none.x}: input.none is null and has no field 'x'"},
      {{{"a", "${input.trip.nights.x}"}},
       "params.a: ${input.trip.nights.x}: input.trip.nights is a number and "
       "has no field 'x'"},
      {{{"a", "${input.flag.x}"}},
       "params.a: ${input.flag.x}: input.flag is a boolean and has no field "
       "'x'"},
      {{{"a", "id=${steps.book.output.ref}"}},
       "params.a: ${steps.book.output.ref}: steps.book.output has no field "
       "'ref'"},
      {{{"a", "${steps.pay.output.id}"}},
       "params.a: ${steps.pay.output.id}: step 'pay' has no output"},
      {"${input.x}", "params: ${input.x}: input has no field 'x'"},
  };
  for (const ErrorCase& c : cases) {
    EXPECT_EQ(RenderError(c.params), c.error) << c.params.dump();
  }
}

TEST_F(TemplatingTest, StepWithoutOutputsMapHasNoOutput) {
  context_.outputs = nullptr;
  EXPECT_EQ(RenderError({{"a", "${steps.book.output}"}}),
            "params.a: ${steps.book.output}: step 'book' has no output");
}

TEST_F(TemplatingTest, SyntaxErrorsFailRendering) {
  const std::vector<ErrorCase> cases = {
      {{{"a", "x ${input.trip"}}, "params.a: unterminated ${"},
      {{{"a", {1, "${}"}}}, "params.a[1]: empty reference '${}'"},
      {{{"a", "${foo}"}}, "params.a: unknown reference '${foo}'"},
  };
  for (const ErrorCase& c : cases) {
    EXPECT_EQ(RenderError(c.params), c.error) << c.params.dump();
  }
}

// ---- CollectTemplateRefs ----------------------------------------------------

std::string CollectError(const json& params, const std::string& where) {
  Result<std::vector<TemplateRef>> refs = CollectTemplateRefs(params, where);
  return refs.ok() ? "OK" : refs.status().message();
}

TEST_F(TemplatingTest, ParamsNestedTooDeepOnceRenderedAreAnError) {
  // Each within the limit, together beyond it: an echo of an echo could
  // otherwise deepen a saga's outputs step after step.
  json deep_output = json::array();
  for (int i = 0; i < 400; ++i) deep_output = json::array({deep_output});
  outputs_["book"] = deep_output;
  json params = "${steps.book.output}";
  for (int i = 0; i < 200; ++i) params = json{{"wrap", params}};
  EXPECT_EQ(RenderError(params),
            "params: once rendered, arrays and objects nest 601 levels deep; "
            "at most 512 are accepted");
  for (int i = 0; i < 100; ++i) deep_output = deep_output[0];
  outputs_["book"] = deep_output;
  EXPECT_EQ(JsonValueDepth(Render(params)), 501u);
}

// What the engine renders at each attempt: params with a "${" anywhere in a
// string (a reference, or the escape, which renders to something else);
// the others are sent as they are, without building a context.
TEST(HasTemplateSyntaxTest, OnlyParamsWhoseStringsHoldDollarBraceRender) {
  for (const char* plain :
       {R"({})", R"({"a": "b", "n": 1, "l": [true, null, "$5", "{x}"]})",
        R"("cost: $ {x}")", R"({"${input}": "a key is never rendered"})"}) {
    EXPECT_FALSE(HasTemplateSyntax(json::parse(plain))) << plain;
  }
  for (const char* templated :
       {R"("${input}")", R"({"a": {"b": ["x", "id ${saga.id}"]}})",
        R"({"a": "$${x}, not a reference, renders as another string"})"}) {
    EXPECT_TRUE(HasTemplateSyntax(json::parse(templated))) << templated;
  }
}

TEST(HasTemplateSyntaxTest, TheParserMarksEachActionOnce) {
  auto def =
      ParseDefinition(json::parse(R"({"name": "w", "version": 1, "steps": [
        {"name": "plain", "action": "echo", "params": {"a": 1},
         "compensate": {"action": "echo", "params": {"b": "${saga.id}"}}},
        {"name": "escaped", "action": "echo", "params": {"a": "$${x}"}},
        {"name": "none", "action": "noop"}]})"),
                      {});
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  EXPECT_FALSE(def->steps[0].run.templated);
  EXPECT_TRUE(def->steps[0].compensate->templated);
  EXPECT_TRUE(def->steps[1].run.templated);
  EXPECT_FALSE(def->steps[2].run.templated);
}

TEST(CollectTemplateRefsTest, ParsesEveryKindOfReference) {
  const json params = json::parse(R"({
    "a": "${input}",
    "b": ["${input.items.0.sku} and ${steps.book.output}"],
    "c": {"d": "${steps.reserve.flight.output.id.0}"},
    "e": "${saga.id}/${step.idempotency_key}/${step.attempt}",
    "f": "$${input.not_a_ref}"
  })");
  Result<std::vector<TemplateRef>> refs = CollectTemplateRefs(params, "p");
  ASSERT_TRUE(refs.ok()) << refs.status().ToString();
  using Root = TemplateRef::Root;
  ASSERT_EQ(refs->size(), 7u);
  const std::vector<TemplateRef>& r = *refs;
  EXPECT_EQ(r[0].root, Root::kInput);
  EXPECT_TRUE(r[0].path.empty());
  EXPECT_EQ(r[1].root, Root::kInput);
  EXPECT_EQ(r[1].path, (std::vector<std::string>{"items", "0", "sku"}));
  EXPECT_EQ(r[2].root, Root::kStepOutput);
  EXPECT_EQ(r[2].step, "book");
  EXPECT_TRUE(r[2].path.empty());
  EXPECT_EQ(r[3].root, Root::kStepOutput);
  EXPECT_EQ(r[3].step, "reserve.flight");
  EXPECT_EQ(r[3].path, (std::vector<std::string>{"id", "0"}));
  EXPECT_EQ(r[4].root, Root::kSagaId);
  EXPECT_EQ(r[5].root, Root::kIdempotencyKey);
  EXPECT_EQ(r[6].root, Root::kAttempt);
}

TEST(CollectTemplateRefsTest, EveryInvalidReferenceIsAnError) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"${foo}", "unknown reference '${foo}'"},
      {"${}", "empty reference '${}'"},
      {"abc ${input", "unterminated ${"},
      {"${input.}", "unknown reference '${input.}'"},
      {"${input..a}", "unknown reference '${input..a}'"},
      {"${.input}", "unknown reference '${.input}'"},
      {"${Input}", "unknown reference '${Input}'"},
      {"${ input }", "unknown reference '${ input }'"},
      {"${steps}", "unknown reference '${steps}'"},
      {"${steps.book}", "unknown reference '${steps.book}'"},
      {"${steps.book.input}", "unknown reference '${steps.book.input}'"},
      {"${steps.output}", "unknown reference '${steps.output}'"},
      {"${saga}", "unknown reference '${saga}'"},
      {"${saga.name}", "unknown reference '${saga.name}'"},
      {"${saga.id.x}", "unknown reference '${saga.id.x}'"},
      {"${step}", "unknown reference '${step}'"},
      {"${step.attempt.x}", "unknown reference '${step.attempt.x}'"},
      {"${step.name}", "unknown reference '${step.name}'"},
      {"ok ${input} then ${bad}", "unknown reference '${bad}'"},
  };
  for (const auto& [text, error] : cases) {
    EXPECT_EQ(CollectError({{"k", text}}, "steps[1].params"),
              "steps[1].params.k: " + error)
        << text;
  }
}

TEST(CollectTemplateRefsTest, ErrorPathsFollowObjectsAndArrays) {
  EXPECT_EQ(CollectError(json::parse(R"({"a": [{"b": ["x", "${"]}]})"),
                         "steps[1].params"),
            "steps[1].params.a[0].b[1]: unterminated ${");
  EXPECT_EQ(CollectError("${x}", "where"), "where: unknown reference '${x}'");
  EXPECT_EQ(CollectError("${x}", ""), "unknown reference '${x}'");
  EXPECT_EQ(CollectError({{"k", "${x}"}}, ""), "k: unknown reference '${x}'");
}

TEST(CollectTemplateRefsTest, StringsWithoutTemplatesHaveNoRefs) {
  Result<std::vector<TemplateRef>> refs = CollectTemplateRefs(
      json::parse(R"({"a": "plain", "b": [1, "$${x}", "$ {y}"], "${k}": 2})"),
      "p");
  ASSERT_TRUE(refs.ok());
  EXPECT_TRUE(refs->empty());
}

}  // namespace
}  // namespace cde
