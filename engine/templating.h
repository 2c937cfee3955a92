// Templates in action params: `${...}` references rendered just before an
// attempt, from logged data only (the saga's input, earlier steps' logged
// outputs, the saga id and the attempt's idempotency key), so a re-run after
// a crash renders the same params.
//
// References:
//   ${input}                 the whole saga input
//   ${input.a.b}             a field of the input (objects; arrays by index:
//                            ${input.items.0.sku})
//   ${steps.NAME.output}     the logged output of step NAME
//   ${steps.NAME.output.x}   a field of it
//   ${saga.id}               the saga id
//   ${step.idempotency_key}  "<saga>/<step>/<attempt>" of this attempt
//   ${step.attempt}          the attempt number (1-based)
//   ${item}, ${item.a.b}     inside a map step's steps: the item they run for
//   ${index}                 ... and its position in the items (0-based)
//   ${secret.NAME}           a configured secret (secrets.h), in action
//                            params only; the value is never logged
// A string that is exactly one reference becomes the referenced JSON value
// (keeping its type); a reference inside a longer string is spliced in as
// text (strings as is, other values as compact JSON). `$${` is a literal
// `${`. Templates are rendered in string values only, never in keys.
#ifndef CDE_ENGINE_TEMPLATING_H_
#define CDE_ENGINE_TEMPLATING_H_

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "storage/status.h"

namespace cde {

// A parsed reference, e.g. ${steps.book.output.id} -> root "steps",
// step "book", path {"id"}.
struct TemplateRef {
  enum class Root {
    kInput,
    kStepOutput,
    kSagaId,
    kIdempotencyKey,
    kAttempt,
    kSecret,
    kItem,
    kIndex,
  };
  Root root;
  std::string step;               // kStepOutput only
  std::vector<std::string> path;  // fields below input / output / item;
                                  // kSecret: {NAME}
};

// Every reference in the strings of `params`, or InvalidArgument naming the
// JSON path below `where` ("steps[1].params.url: unterminated ${").
Result<std::vector<TemplateRef>> CollectTemplateRefs(
    const nlohmann::json& params, const std::string& where);

struct TemplateContext {
  const nlohmann::json* input = nullptr;
  // Logged outputs of the steps that have one, by step name (pointers
  // into the saga, which must outlive the context: an attempt's params
  // copy only what they name).
  const std::map<std::string, const nlohmann::json*>* outputs = nullptr;
  // Inside a map step's steps: the item and its index; null outside.
  const nlohmann::json* item = nullptr;
  int64_t index = -1;
  std::string saga_id;
  std::string idempotency_key;
  uint32_t attempt = 1;
  // Secret values by name; null: none may be named here.
  const std::map<std::string, std::string>* secrets = nullptr;
};

// Whether a string of `params` holds "${" (a reference, or the escape
// "$${"): only then can rendering change them.
bool HasTemplateSyntax(const nlohmann::json& params);

// `params` with every reference replaced, or InvalidArgument naming the JSON
// path and the reference that cannot be resolved
// ("params.body.trip: ${input.trip_id}: input has no field 'trip_id'").
Result<nlohmann::json> RenderTemplates(const nlohmann::json& params,
                                       const TemplateContext& context);

}  // namespace cde

#endif  // CDE_ENGINE_TEMPLATING_H_
