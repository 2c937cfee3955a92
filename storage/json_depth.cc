#include "storage/json_depth.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace cde {

size_t JsonTextDepth(std::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

size_t JsonValueDepth(const nlohmann::json& value) {
  std::vector<std::pair<const nlohmann::json*, size_t>> pending{{&value, 0}};
  size_t deepest = 0;
  while (!pending.empty()) {
    auto [v, depth] = pending.back();
    pending.pop_back();
    if (!v->is_structured()) continue;
    deepest = std::max(deepest, depth + 1);
    for (const nlohmann::json& child : *v) {
      if (child.is_structured()) pending.emplace_back(&child, depth + 1);
    }
  }
  return deepest;
}

namespace {

// Walks CBOR item heads (RFC 8949, section 3) keeping, per open container,
// how many items it still holds.
class CborWalker {
 public:
  explicit CborWalker(std::string_view cbor) : cbor_(cbor) {}

  size_t Deepest() {
    while (pos_ < cbor_.size()) {
      if (!Step()) break;
    }
    return deepest_;
  }

 private:
  static constexpr uint64_t kIndefinite = std::numeric_limits<uint64_t>::max();

  // One item head; false when the bytes stop being well-formed.
  bool Step() {
    const auto head = static_cast<uint8_t>(cbor_[pos_++]);
    const int major = head >> 5;
    const int info = head & 31;
    if (head == 0xFF) {  // "break": ends the innermost indefinite container
      if (open_.empty() || open_.back() != kIndefinite) return false;
      Close();
      return true;
    }
    if (info == 31) {
      // Indefinite arrays, maps and (chunked) strings run to a break.
      if (major == 0 || major == 1 || major == 6 || major == 7) return false;
      Open(kIndefinite);
      return true;
    }
    uint64_t arg = 0;
    if (!Argument(info, &arg)) return false;
    switch (major) {
      case 2:
      case 3:  // byte and text strings
        if (arg > cbor_.size() - pos_) return false;
        pos_ += arg;
        ItemDone();
        return true;
      case 4:
      case 5: {  // arrays, maps (two items per entry)
        if (major == 5 && arg > kIndefinite / 2 - 1) return false;
        const uint64_t items = major == 5 ? 2 * arg : arg;
        Open(items);  // an empty one counts as a level too, as in JSON
        if (items == 0) Close();
        return true;
      }
      case 6:  // a tag wraps the one item that follows
        Open(1);
        return true;
      default:  // integers, simple values, floats
        ItemDone();
        return true;
    }
  }

  bool Argument(int info, uint64_t* arg) {
    if (info < 24) {
      *arg = static_cast<uint64_t>(info);
      return true;
    }
    if (info > 27) return false;  // 28..30 are reserved
    const size_t bytes = size_t{1} << (info - 24);
    if (bytes > cbor_.size() - pos_) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; ++i) {
      v = (v << 8) | static_cast<uint8_t>(cbor_[pos_++]);
    }
    *arg = v;
    return true;
  }

  void Open(uint64_t items) {
    open_.push_back(items);
    deepest_ = std::max(deepest_, open_.size());
  }

  // Ends the innermost container (empty, or indefinite at its break).
  void Close() {
    open_.pop_back();
    ItemDone();
  }

  // An item ended: it counts against its container, which may end too.
  void ItemDone() {
    while (!open_.empty() && open_.back() != kIndefinite) {
      if (--open_.back() > 0) return;
      open_.pop_back();
    }
  }

  std::string_view cbor_;
  size_t pos_ = 0;
  std::vector<uint64_t> open_;
  size_t deepest_ = 0;
};

}  // namespace

size_t CborDepth(std::string_view cbor) { return CborWalker(cbor).Deepest(); }

std::string TooDeepMessage(size_t depth, size_t limit) {
  return "arrays and objects nest " + std::to_string(depth) +
         " levels deep; at most " + std::to_string(limit) + " are accepted";
}

nlohmann::json ParseBoundedJson(std::string_view text) {
  if (JsonTextDepth(text) > kMaxJsonDepth) {
    return nlohmann::json(nlohmann::json::value_t::discarded);
  }
  try {
    return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  } catch (const nlohmann::json::exception&) {
    return nlohmann::json(nlohmann::json::value_t::discarded);
  }
}

}  // namespace cde
