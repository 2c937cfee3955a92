#include "engine/event_data.h"

#include <algorithm>
#include <array>
#include <ostream>

namespace cde {

namespace {

// The fields an event has at most, in practice; more are written through a
// heap list.
constexpr size_t kUsualFields = 8;

void WriteValue(CborWriter& w, const EventData::Value& value) {
  struct Visit {
    CborWriter& w;
    void operator()(bool v) { w.Bool(v); }
    void operator()(int64_t v) { w.Int(v); }
    void operator()(uint64_t v) { w.Uint(v); }
    void operator()(const std::string& v) { w.Text(v); }
    void operator()(const ErrorInfo& v) {
      w.MapHead(2);
      w.Field("kind", v.kind).Field("message", v.message);
    }
    void operator()(const nlohmann::json& v) { w.Json(v); }
  };
  std::visit(Visit{w}, value);
}

}  // namespace

EventData& EventData::Put(const char* key, Value value) {
  const std::string_view name(key);
  for (Field& f : fields_) {
    if (f.key == name) {
      f.value = std::move(value);
      return *this;
    }
  }
  if (fields_.empty()) fields_.reserve(4);
  fields_.push_back({name, std::move(value)});
  return *this;
}

const EventData::Value* EventData::Find(std::string_view key) const {
  for (const Field& f : fields_) {
    if (f.key == key) return &f.value;
  }
  return nullptr;
}

nlohmann::json EventData::operator[](std::string_view key) const {
  const Value* v = Find(key);
  return v == nullptr ? nlohmann::json() : ToJson(*v);
}

EventData EventData::Without(
    std::initializer_list<std::string_view> drop) const {
  EventData kept;
  for (const Field& f : fields_) {
    if (std::find(drop.begin(), drop.end(), f.key) == drop.end()) {
      kept.fields_.push_back(f);
    }
  }
  return kept;
}

void EventData::Write(CborWriter& w) const {
  // The fields in key order, as a JSON object's map would hold them.
  std::array<const Field*, kUsualFields> usual;
  std::vector<const Field*> more;
  const Field** order = usual.data();
  if (fields_.size() > usual.size()) {
    more.resize(fields_.size());
    order = more.data();
  }
  for (size_t i = 0; i < fields_.size(); ++i) order[i] = &fields_[i];
  // Most keys differ in their first letter: decided there, without a call
  // to compare them.
  auto first = [](std::string_view key) -> int {
    return key.empty() ? -1 : static_cast<unsigned char>(key[0]);
  };
  std::sort(order, order + fields_.size(),
            [&first](const Field* a, const Field* b) {
              const int x = first(a->key);
              const int y = first(b->key);
              return x != y ? x < y : a->key < b->key;
            });
  w.MapHead(fields_.size());
  for (size_t i = 0; i < fields_.size(); ++i) {
    w.Text(order[i]->key);
    WriteValue(w, order[i]->value);
  }
}

nlohmann::json EventData::ToJson(const Value& value) {
  struct Visit {
    nlohmann::json operator()(bool v) { return v; }
    nlohmann::json operator()(int64_t v) { return v; }
    nlohmann::json operator()(uint64_t v) { return v; }
    nlohmann::json operator()(const std::string& v) { return v; }
    nlohmann::json operator()(const ErrorInfo& v) {
      return {{"kind", v.kind}, {"message", v.message}};
    }
    nlohmann::json operator()(const nlohmann::json& v) { return v; }
  };
  return std::visit(Visit{}, value);
}

nlohmann::json EventData::ToJson() const {
  nlohmann::json j = nlohmann::json::object();
  for (const Field& f : fields_) j[std::string(f.key)] = ToJson(f.value);
  return j;
}

std::ostream& operator<<(std::ostream& os, const EventData& data) {
  return os << data.ToJson().dump();
}

}  // namespace cde
