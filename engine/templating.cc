#include "engine/templating.h"

#include <string_view>
#include <utility>

#include "engine/json_text.h"
#include "storage/json_depth.h"

namespace cde {
namespace {

using nlohmann::json;

// One piece of a template string: literal text, or a reference.
struct Piece {
  bool is_ref = false;
  std::string text;  // the literal text, or the reference's source "${...}"
  TemplateRef ref;
};

// "path: message", or just the message at an unnamed root.
Status ErrorAt(const std::string& path, const std::string& message) {
  return Status::InvalidArgument(path.empty() ? message
                                              : path + ": " + message);
}

std::vector<std::string> SplitDots(std::string_view s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = s.find('.', start);
    parts.emplace_back(s.substr(start, dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

std::string JoinDots(const std::vector<std::string>& parts, size_t from,
                     size_t to) {
  std::string out;
  for (size_t i = from; i < to; ++i) {
    if (i > from) out += '.';
    out += parts[i];
  }
  return out;
}

// The reference between `${` and `}`. Step names may contain dots, so the
// step name runs up to the first `output` segment after `steps`.
Result<TemplateRef> ParseRef(std::string_view body) {
  const std::string source = "${" + std::string(body) + "}";
  const Status unknown =
      Status::InvalidArgument("unknown reference '" + source + "'");
  const std::vector<std::string> parts = SplitDots(body);
  for (const std::string& part : parts) {
    if (part.empty()) return unknown;
  }
  TemplateRef ref;
  if (parts[0] == "input") {
    ref.root = TemplateRef::Root::kInput;
    ref.path.assign(parts.begin() + 1, parts.end());
    return ref;
  }
  if (parts[0] == "item") {
    ref.root = TemplateRef::Root::kItem;
    ref.path.assign(parts.begin() + 1, parts.end());
    return ref;
  }
  if (parts.size() == 1 && parts[0] == "index") {
    ref.root = TemplateRef::Root::kIndex;
    return ref;
  }
  if (parts.size() == 2 && parts[0] == "saga" && parts[1] == "id") {
    ref.root = TemplateRef::Root::kSagaId;
    return ref;
  }
  if (parts.size() == 2 && parts[0] == "step") {
    if (parts[1] == "idempotency_key") {
      ref.root = TemplateRef::Root::kIdempotencyKey;
      return ref;
    }
    if (parts[1] == "attempt") {
      ref.root = TemplateRef::Root::kAttempt;
      return ref;
    }
  }
  if (parts.size() == 2 && parts[0] == "secret") {
    ref.root = TemplateRef::Root::kSecret;
    ref.path = {parts[1]};
    return ref;
  }
  if (parts[0] == "steps") {
    for (size_t i = 2; i < parts.size(); ++i) {
      if (parts[i] != "output") continue;
      ref.root = TemplateRef::Root::kStepOutput;
      ref.step = JoinDots(parts, 1, i);
      ref.path.assign(parts.begin() + i + 1, parts.end());
      return ref;
    }
  }
  return unknown;
}

// Splits `s` into literal text and references; `$${` is a literal `${`.
// The error message carries no path: the caller knows where `s` is.
Result<std::vector<Piece>> ParsePieces(std::string_view s) {
  std::vector<Piece> pieces;
  std::string literal;
  size_t i = 0;
  while (i < s.size()) {
    if (s.substr(i, 3) == "$${") {
      literal += "${";
      i += 3;
      continue;
    }
    if (s.substr(i, 2) != "${") {
      literal += s[i++];
      continue;
    }
    const size_t close = s.find('}', i + 2);
    if (close == std::string_view::npos) {
      return Status::InvalidArgument("unterminated ${");
    }
    const std::string_view body = s.substr(i + 2, close - i - 2);
    if (body.empty()) return Status::InvalidArgument("empty reference '${}'");
    Result<TemplateRef> ref = ParseRef(body);
    if (!ref.ok()) return ref.status();
    if (!literal.empty()) pieces.push_back({false, std::move(literal), {}});
    literal.clear();
    pieces.push_back({true, std::string(s.substr(i, close - i + 1)), *ref});
    i = close + 1;
  }
  if (!literal.empty()) pieces.push_back({false, std::move(literal), {}});
  return pieces;
}

// Calls `fn(path, text)` for every string value below `value`, in order,
// stopping at the first error.
template <typename Fn>
Status ForEachString(const json& value, const std::string& path, Fn& fn) {
  if (value.is_string()) return fn(path, value.get_ref<const std::string&>());
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) {
      CDE_RETURN_IF_ERROR(ForEachString(child, JoinKey(path, key), fn));
    }
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      CDE_RETURN_IF_ERROR(ForEachString(value[i], JoinIndex(path, i), fn));
    }
  }
  return Status::OK();
}

bool IsIndex(const std::string& segment) {
  if (segment.empty() || segment.size() > 18) return false;  // no overflow
  for (char c : segment) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::string Describe(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "a number";
  }
}

// Follows `path` below `root`, whose name in messages is `name`
// ("input", "steps.book.output").
Result<json> Descend(const json& root, std::string name,
                     const std::vector<std::string>& path) {
  const json* current = &root;
  for (const std::string& segment : path) {
    if (current->is_object()) {
      const auto it = current->find(segment);
      if (it == current->end()) {
        return Status::InvalidArgument(name + " has no field '" + segment +
                                       "'");
      }
      current = &*it;
    } else if (current->is_array() && IsIndex(segment)) {
      const size_t index = std::stoull(segment);
      if (index >= current->size()) {
        return Status::InvalidArgument(name + " has no element " + segment +
                                       " (it has " +
                                       std::to_string(current->size()) + ")");
      }
      current = &(*current)[index];
    } else {
      return Status::InvalidArgument(name + " is " + Describe(*current) +
                                     " and has no field '" + segment + "'");
    }
    name += "." + segment;
  }
  return *current;
}

Result<json> Resolve(const TemplateRef& ref, const TemplateContext& context) {
  switch (ref.root) {
    case TemplateRef::Root::kInput: {
      static const json kNull;
      return Descend(context.input ? *context.input : kNull, "input", ref.path);
    }
    case TemplateRef::Root::kStepOutput: {
      if (context.outputs == nullptr) break;
      const auto it = context.outputs->find(ref.step);
      if (it == context.outputs->end()) break;
      return Descend(*it->second, "steps." + ref.step + ".output", ref.path);
    }
    case TemplateRef::Root::kItem:
      if (context.item == nullptr) {
        return Status::InvalidArgument("there is no item outside a map step");
      }
      return Descend(*context.item, "item", ref.path);
    case TemplateRef::Root::kIndex:
      if (context.index < 0) {
        return Status::InvalidArgument("there is no index outside a map step");
      }
      return json(context.index);
    case TemplateRef::Root::kSagaId:
      return json(context.saga_id);
    case TemplateRef::Root::kIdempotencyKey:
      return json(context.idempotency_key);
    case TemplateRef::Root::kAttempt:
      return json(context.attempt);
    case TemplateRef::Root::kSecret: {
      if (context.secrets == nullptr) {
        return Status::InvalidArgument(
            "secrets can be named in action params only");
      }
      const auto it = context.secrets->find(ref.path[0]);
      if (it == context.secrets->end()) {
        return Status::InvalidArgument("no secret " + ref.path[0] +
                                       " is configured");
      }
      return json(it->second);
    }
  }
  return Status::InvalidArgument("step '" + ref.step + "' has no output");
}

Result<json> RenderString(const std::string& text, const std::string& path,
                          const TemplateContext& context) {
  Result<std::vector<Piece>> pieces = ParsePieces(text);
  if (!pieces.ok()) return ErrorAt(path, pieces.status().message());
  std::string out;
  for (const Piece& piece : *pieces) {
    if (!piece.is_ref) {
      out += piece.text;
      continue;
    }
    Result<json> value = Resolve(piece.ref, context);
    if (!value.ok()) {
      return ErrorAt(path, piece.text + ": " + value.status().message());
    }
    // A string that is exactly one reference keeps the value's type.
    if (pieces->size() == 1) return std::move(value).value();
    out += value->is_string() ? value->get<std::string>() : DumpJson(*value);
  }
  return json(std::move(out));
}

Result<json> Render(const json& value, const std::string& path,
                    const TemplateContext& context) {
  if (value.is_string()) {
    return RenderString(value.get_ref<const std::string&>(), path, context);
  }
  if (value.is_object()) {
    json out = json::object();
    for (const auto& [key, child] : value.items()) {
      Result<json> rendered = Render(child, JoinKey(path, key), context);
      if (!rendered.ok()) return rendered.status();
      out[key] = std::move(rendered).value();
    }
    return out;
  }
  if (value.is_array()) {
    json out = json::array();
    for (size_t i = 0; i < value.size(); ++i) {
      Result<json> rendered = Render(value[i], JoinIndex(path, i), context);
      if (!rendered.ok()) return rendered.status();
      out.push_back(std::move(rendered).value());
    }
    return out;
  }
  return value;
}

}  // namespace

Result<std::vector<TemplateRef>> CollectTemplateRefs(
    const nlohmann::json& params, const std::string& where) {
  std::vector<TemplateRef> refs;
  auto collect = [&refs](const std::string& path, const std::string& text) {
    Result<std::vector<Piece>> pieces = ParsePieces(text);
    if (!pieces.ok()) return ErrorAt(path, pieces.status().message());
    for (Piece& piece : *pieces) {
      if (piece.is_ref) refs.push_back(std::move(piece.ref));
    }
    return Status::OK();
  };
  try {
    CDE_RETURN_IF_ERROR(ForEachString(params, where, collect));
  } catch (const std::exception& e) {  // a bug must not escape as a crash
    return ErrorAt(where, std::string("internal error: ") + e.what());
  }
  return refs;
}

bool HasTemplateSyntax(const nlohmann::json& params) {
  if (params.is_string()) {
    return params.get_ref<const std::string&>().find("${") != std::string::npos;
  }
  if (!params.is_structured()) return false;
  for (const json& v : params) {
    if (HasTemplateSyntax(v)) return true;
  }
  return false;
}

Result<nlohmann::json> RenderTemplates(const nlohmann::json& params,
                                       const TemplateContext& context) {
  try {
    Result<json> rendered = Render(params, "params", context);
    // Splicing outputs into params can deepen them step after step (an echo
    // of an echo); the engine keeps what it logs within its limit.
    if (rendered.ok()) {
      if (const size_t depth = JsonValueDepth(*rendered);
          depth > kMaxJsonDepth) {
        return ErrorAt("params", "once rendered, " + TooDeepMessage(depth));
      }
    }
    return rendered;
  } catch (const std::exception& e) {  // a bug must not escape as a crash
    return ErrorAt("params", std::string("internal error: ") + e.what());
  }
}

}  // namespace cde
