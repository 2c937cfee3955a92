// Fuzzes workflow definition validation and templating (engine/definition.h,
// engine/templating.h, engine/input_schema.h) with JSON parsed from the
// input; input that is not JSON is skipped.
//
// Checks beyond "no crash, no UB, no leak":
//   - ValidateDefinition finds no problem exactly when ParseDefinition
//     succeeds, and the parsed model is consistent (1..256 uniquely named
//     steps, each found by StepIndex);
//   - no API answers "internal error" (the catch-alls in definition.cc and
//     templating.cc turn an escaping exception, i.e. a bug, into one);
//   - a template string that does not parse (CollectTemplateRefs) does not
//     render either, and a step's params render against a fixed context;
//   - a definition's input_schema validates a few fixed inputs.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

#include "engine/definition.h"
#include "engine/input_schema.h"
#include "engine/templating.h"

namespace {

using namespace cde;
using nlohmann::json;

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_definition: %s: %s\n", what, detail.c_str());
  std::abort();
}

// Set when the input itself holds the words, which messages may quote.
bool input_says_internal_error = false;

void NoInternalError(const char* what, const std::string& message) {
  if (!input_says_internal_error &&
      message.find("internal error") != std::string::npos) {
    Fail(what, message);
  }
}

// A small fixed saga context, like tests/engine/templating_test.cc's.
struct Context {
  json input = json::parse(R"({
    "trip": {"id": "T-1", "nights": 3},
    "items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}],
    "map": {"0": "zero"}, "flag": true, "none": null, "price": 12.5,
    "text": "${saga.id}"
  })");
  std::map<std::string, json> outputs = {
      {"book", json::parse(R"({"id": "bk-7", "seats": [11, 12]})")},
      {"reserve.flight", json::parse(R"({"pnr": "XYZ"})")},
      {"a", json("plain")}};
  TemplateContext context;
  // Short inputs only: libstdc++'s std::regex backtracks, and a pattern is
  // the definition author's to choose.
  json inputs = json::array({json::object(), input,
                             json::parse(R"({"name": "ab", "qty": 2})"),
                             json("x"), json(7), json(nullptr)});
  std::map<std::string, const json*> output_refs;
  Context() {
    for (const auto& [name, output] : outputs) output_refs[name] = &output;
    context.input = &input;
    context.outputs = &output_refs;
    context.saga_id = "01J0SAGA0000000000000000AA";
    context.idempotency_key = "01J0SAGA0000000000000000AA/book/2";
    context.attempt = 2;
  }
};

// Renders `params`; checks the result against CollectTemplateRefs.
void RenderChecked(const json& params, const TemplateContext& context) {
  Result<std::vector<TemplateRef>> refs = CollectTemplateRefs(params, "params");
  if (!refs.ok())
    NoInternalError("CollectTemplateRefs", refs.status().message());
  Result<json> rendered = RenderTemplates(params, context);
  if (!rendered.ok()) {
    NoInternalError("RenderTemplates", rendered.status().message());
    if (!rendered.status().IsInvalidArgument()) {
      Fail("RenderTemplates",
           "error is not InvalidArgument: " + rendered.status().ToString());
    }
    return;
  }
  if (!refs.ok()) {
    Fail("RenderTemplates", "rendered what CollectTemplateRefs rejects (" +
                                refs.status().message() + ")");
  }
  // Rendering keeps the shape: strings may change type, nothing else.
  if (params.is_object() &&
      (!rendered->is_object() || rendered->size() != params.size())) {
    Fail("RenderTemplates", "an object changed shape");
  }
  if (params.is_array() &&
      (!rendered->is_array() || rendered->size() != params.size())) {
    Fail("RenderTemplates", "an array changed shape");
  }
  if (refs->empty() && *rendered != params && params == params) {
    // No reference: only `$${` escapes may change strings.
    if (params.dump(-1, ' ', false, json::error_handler_t::replace)
            .find("$${") == std::string::npos) {
      Fail("RenderTemplates", "params without references changed");
    }
  }
}

void CheckDefinition(const json& doc, const Context& ctx) {
  static const ActionNames kNative = {"held", "native-action"};
  const std::vector<DefinitionError> errors = ValidateDefinition(doc, kNative);
  for (const DefinitionError& e : errors) {
    NoInternalError("ValidateDefinition", e.ToString());
    if (e.message.empty()) Fail("ValidateDefinition", "an empty message");
  }
  Result<WorkflowDefinition> def = ParseDefinition(doc, kNative);
  if (def.ok() != errors.empty()) {
    Fail("ParseDefinition",
         def.ok() ? "accepted an invalid definition"
                  : "rejected a valid definition: " + def.status().ToString());
  }
  if (!def.ok()) {
    NoInternalError("ParseDefinition", def.status().message());
    return;
  }
  if (def->steps.empty() || def->steps.size() > 256) {
    Fail("ParseDefinition", std::to_string(def->steps.size()) + " steps");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < def->steps.size(); ++i) {
    const StepSpec& step = def->steps[i];
    if (!names.insert(step.name).second) Fail("ParseDefinition", "dup step");
    if (def->StepIndex(step.name) != static_cast<int>(i)) {
      Fail("ParseDefinition", "StepIndex disagrees");
    }
    if (step.run.retry.max_attempts < 1) Fail("ParseDefinition", "0 attempts");
    RenderChecked(step.run.params, ctx.context);
    if (step.compensate) RenderChecked(step.compensate->params, ctx.context);
    for (const std::string& kind : step.run.retry.non_retryable) {
      (void)ErrorKindMatches(kind, "http_404");
      (void)ErrorKindMatches(kind, kind);
    }
  }
  if (!def->input_schema.is_null()) {
    const std::vector<std::string> problems =
        CheckInputSchema(def->input_schema, "input_schema");
    if (!problems.empty()) {
      Fail("ParseDefinition", "accepted a bad input_schema: " + problems[0]);
    }
    for (const json& input : ctx.inputs) {
      Status s = ValidateInput(def->input_schema, input);
      if (!s.ok()) NoInternalError("ValidateInput", s.message());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Context* ctx = new Context();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;
  input_says_internal_error =
      doc.dump(-1, ' ', false, json::error_handler_t::replace)
          .find("internal error") != std::string::npos;

  CheckDefinition(doc, *ctx);
  // The document as params, and as an input schema of its own.
  RenderChecked(doc, ctx->context);
  const std::vector<std::string> problems = CheckInputSchema(doc, "schema");
  for (const std::string& p : problems) NoInternalError("CheckInputSchema", p);
  if (problems.empty()) {
    for (const json& input : ctx->inputs) {
      Status s = ValidateInput(doc, input);
      if (!s.ok()) NoInternalError("ValidateInput", s.message());
    }
  }
  return 0;
}
