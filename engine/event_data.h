// EventData: the data of a log event as the planner builds it, a handful of
// named fields written straight into the log row's CBOR. Every transition
// logs an event or two; built as nlohmann::json maps, their nodes, keys and
// strings were allocated, walked into CBOR and freed again, a sixth of the
// CPU of planning and building a step's transition. Values that are JSON
// already (a step's output, a saga's input) stay JSON.
//
// Written as a CBOR map with its keys in byte order: the bytes
// nlohmann::json::to_cbor writes for the same object, which is what readers
// (and the stored logs of earlier builds) have. Rendered as JSON only where
// something reads it as such: log lines, the tests.
#ifndef CDE_ENGINE_EVENT_DATA_H_
#define CDE_ENGINE_EVENT_DATA_H_

#include <concepts>
#include <cstdint>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/saga.h"
#include "storage/cbor_writer.h"

namespace cde {

class EventData {
 public:
  // A field's value; an ErrorInfo is written as {"kind", "message"}.
  using Value = std::variant<bool, int64_t, uint64_t, std::string, ErrorInfo,
                             nlohmann::json>;

  // Sets field `key` to `value`, replacing an earlier value. `key` is a
  // string literal: the field keeps a view of it.
  template <std::integral T>
  EventData& Set(const char* key, T value) {
    if constexpr (std::same_as<T, bool>) {
      return Put(key, Value(std::in_place_type<bool>, value));
    } else if constexpr (std::signed_integral<T>) {
      return Put(key, Value(std::in_place_type<int64_t>, value));
    } else {
      return Put(key, Value(std::in_place_type<uint64_t>, value));
    }
  }
  EventData& Set(const char* key, std::string value) {
    return Put(key, Value(std::in_place_type<std::string>, std::move(value)));
  }
  EventData& Set(const char* key, const char* value) {
    return Set(key, std::string(value));
  }
  EventData& Set(const char* key, ErrorInfo value) {
    return Put(key, Value(std::in_place_type<ErrorInfo>, std::move(value)));
  }
  EventData& Set(const char* key, nlohmann::json value) {
    return Put(key,
               Value(std::in_place_type<nlohmann::json>, std::move(value)));
  }

  bool contains(std::string_view key) const { return Find(key) != nullptr; }
  // The field `key`, or nullptr.
  const Value* Find(std::string_view key) const;
  // The field `key` as JSON; null if it is not set.
  nlohmann::json operator[](std::string_view key) const;
  // The same data without the fields named `drop`.
  EventData Without(std::initializer_list<std::string_view> drop) const;

  // One CBOR map, keys in byte order.
  void Write(CborWriter& w) const;
  nlohmann::json ToJson() const;

  friend bool operator==(const EventData& a, const nlohmann::json& b) {
    return a.ToJson() == b;
  }
  friend std::ostream& operator<<(std::ostream& os, const EventData& data);

  // Calls `f(key, value)` for each field, in the order they were set.
  template <typename F>
  void ForEach(F&& f) const {
    for (const Field& field : fields_) f(field.key, field.value);
  }

  static nlohmann::json ToJson(const Value& value);

 private:
  struct Field {
    std::string_view key;
    Value value;
  };
  EventData& Put(const char* key, Value value);

  std::vector<Field> fields_;
};

}  // namespace cde

#endif  // CDE_ENGINE_EVENT_DATA_H_
