// Nesting limits for JSON and CBOR that come from outside the process.
//
// nlohmann::json parses iteratively, but copying, comparing, dumping and
// encoding a value recurse once per level, and so does its CBOR reader: a
// document of a few hundred kilobytes nested 10^5 deep overflows the stack
// of whichever thread touches it. So everything the server takes in
// (JSON-RPC messages, admin request bodies, the responses of endpoints that
// http steps call, exec stdout, workflow and config files, rendered params)
// is held to kMaxJsonDepth, and a record read back from the store to
// kMaxRecordDepth, which leaves room for the record's own structure around
// values of kMaxJsonDepth.
#ifndef CDE_STORAGE_JSON_DEPTH_H_
#define CDE_STORAGE_JSON_DEPTH_H_

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace cde {

inline constexpr size_t kMaxJsonDepth = 512;
inline constexpr size_t kMaxRecordDepth = 2 * kMaxJsonDepth;

// The deepest nesting of arrays and objects in `text`, read as JSON (strings
// are skipped; the text need not be valid).
size_t JsonTextDepth(std::string_view text);

// The deepest nesting of arrays and objects in `value`, without recursion.
size_t JsonValueDepth(const nlohmann::json& value);

// The deepest nesting of arrays, maps and tags in `cbor`, counted as far as
// the bytes are well-formed (the decoder reports what follows).
size_t CborDepth(std::string_view cbor);

// What is wrong with a document nested `depth` deep ("arrays and objects
// nest 600 levels deep; at most 512 are accepted").
std::string TooDeepMessage(size_t depth, size_t limit = kMaxJsonDepth);

// `text` parsed as JSON, or a discarded value (is_discarded()) when it is
// not JSON or nests deeper than kMaxJsonDepth. Never throws.
nlohmann::json ParseBoundedJson(std::string_view text);

}  // namespace cde

#endif  // CDE_STORAGE_JSON_DEPTH_H_
