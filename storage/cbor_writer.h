// CborWriter: writes a record's CBOR map straight into its value buffer.
// Records are encoded on every transition, so building a temporary
// nlohmann::json for each (and deep-copying the saga body into it) would cost
// more than the write itself; only free-form JSON values (a saga's input, a
// step's output) go through nlohmann. The engine writes a saga snapshot's
// body with it too (EncodeSagaWith). The output
// is plain CBOR (RFC 8949) that nlohmann::json::from_cbor reads back, and the
// same bytes nlohmann::json::to_cbor writes for the same value when maps are
// written with their keys in byte order.
#ifndef CDE_STORAGE_CBOR_WRITER_H_
#define CDE_STORAGE_CBOR_WRITER_H_

#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace cde {

class CborWriter {
 public:
  // Starts `out` with the record version byte and a map of `fields` pairs.
  CborWriter(std::string* out, uint8_t record_version, size_t fields)
      : out_(out) {
    Put(static_cast<char>(record_version));
    Head(5, fields);
  }
  // Writes into `out` without a record's framing: for the items inside a
  // record written by hand (a log row of several events).
  explicit CborWriter(std::string* out) : out_(out) {}
  // What is still staged reaches `out` here: read `out` only once the
  // writer is gone.
  ~CborWriter() { Flush(); }
  CborWriter(const CborWriter&) = delete;
  CborWriter& operator=(const CborWriter&) = delete;

  CborWriter& Field(std::string_view key, std::string_view value) {
    Text(key);
    Text(value);
    return *this;
  }
  CborWriter& Field(std::string_view key, const std::string& value) {
    return Field(key, std::string_view(value));
  }
  CborWriter& Field(std::string_view key, const char* value) {
    return Field(key, std::string_view(value));
  }
  CborWriter& Field(std::string_view key, uint64_t value) {
    Text(key);
    Head(0, value);
    return *this;
  }
  CborWriter& Field(std::string_view key, uint32_t value) {
    return Field(key, static_cast<uint64_t>(value));
  }
  CborWriter& Field(std::string_view key, int64_t value) {
    Text(key);
    Int(value);
    return *this;
  }
  CborWriter& Field(std::string_view key, const nlohmann::json& value) {
    Text(key);
    Json(value);
    return *this;
  }

  // Single data items, for nested values.
  void Text(std::string_view s) {
    Head(3, s.size());
    Append(s.data(), s.size());
  }
  void Uint(uint64_t v) { Head(0, v); }
  void Int(int64_t v) {
    if (v >= 0) {
      Head(0, static_cast<uint64_t>(v));
    } else {
      Head(1, static_cast<uint64_t>(-(v + 1)));
    }
  }
  void Bool(bool v) { Put(static_cast<char>(v ? 0xf5 : 0xf4)); }
  // Data items already encoded (copied from another CBOR value).
  void Raw(std::string_view items) { Append(items.data(), items.size()); }
  // The bytes nlohmann::json::to_cbor writes for `v`. Walked here for the
  // common kinds: to_cbor goes through a shared output adapter and a virtual
  // call per byte, a tenth of a transition's CPU on the loop when event
  // data is small. Floats and binary values (rare in a saga) are still
  // written by to_cbor itself, so their compact encodings cannot drift.
  void Json(const nlohmann::json& v) {
    using Type = nlohmann::json::value_t;
    switch (v.type()) {
      case Type::null:
        Put(static_cast<char>(0xf6));
        return;
      case Type::boolean:
        Bool(v.get_ref<const bool&>());
        return;
      case Type::number_unsigned:
        Uint(v.get_ref<const uint64_t&>());
        return;
      case Type::number_integer:
        Int(v.get_ref<const int64_t&>());
        return;
      case Type::string:
        Text(v.get_ref<const std::string&>());
        return;
      case Type::array:
        ArrayHead(v.size());
        for (const nlohmann::json& e :
             v.get_ref<const nlohmann::json::array_t&>()) {
          Json(e);
        }
        return;
      case Type::object:
        Head(5, v.size());
        for (const auto& [key, value] :
             v.get_ref<const nlohmann::json::object_t&>()) {
          Text(key);
          Json(value);
        }
        return;
      default:  // floats, binary; a discarded value writes nothing
        Flush();
        nlohmann::json::to_cbor(v, *out_);
        return;
    }
  }
  void ArrayHead(uint64_t size) { Head(4, size); }
  // Where the next byte will be in `out`.
  size_t offset() const { return out_->size() + staged_; }
  void MapHead(uint64_t pairs) { Head(5, pairs); }
  // A map whose size is known once its pairs are written: OpenMap leaves a
  // one-byte head, CloseMap fills it in. At most 23 pairs (one-byte head).
  size_t OpenMap() {
    const size_t at = offset();
    Put(static_cast<char>(5 << 5));
    return at;
  }
  void CloseMap(size_t head_at, uint64_t pairs) {
    const char head = static_cast<char>((5 << 5) | static_cast<char>(pairs));
    if (head_at >= out_->size()) {
      stage_[head_at - out_->size()] = head;
    } else {
      (*out_)[head_at] = head;
    }
  }
  static constexpr uint64_t kMaxOpenMapPairs = 23;

 private:
  // Bytes are staged here and appended to `out` a stage at a time. Written
  // into the string one push_back at a time, each byte cost a call and,
  // since a stored char may alias the string's own pointer and length, a
  // reload of both: a sixth of the loop thread's CPU.
  static constexpr size_t kStage = 256;

  void Put(char c) {
    if (staged_ == kStage) Flush();
    stage_[staged_++] = c;
  }
  void Append(const char* p, size_t n) {
    if (n > kStage - staged_) {
      Flush();
      if (n > kStage / 2) {
        out_->append(p, n);
        return;
      }
    }
    if (n == 0) return;  // `p` may be null then (an empty string_view)
    std::memcpy(stage_ + staged_, p, n);
    staged_ += n;
  }
  void Flush() {
    if (staged_ != 0) out_->append(stage_, staged_);
    staged_ = 0;
  }
  // The initial byte(s) of a data item: major type and argument. Most are
  // one byte (a key's or a short text's length, a small count), written
  // inline; the rest go through HeadLong, kept out of line so that this
  // stays small enough to inline at every call. (Two-byte heads inline as
  // well measured no better: the larger function inlined less elsewhere.)
  void Head(uint8_t major, uint64_t arg) {
    if (arg < 24 && staged_ < kStage) [[likely]] {
      stage_[staged_++] =
          static_cast<char>((major << 5) | static_cast<uint8_t>(arg));
      return;
    }
    HeadLong(major, arg);
  }
  [[gnu::noinline]] void HeadLong(uint8_t major, uint64_t arg) {
    if (kStage - staged_ < 9) Flush();
    char* p = stage_ + staged_;
    const char m = static_cast<char>(major << 5);
    if (arg < 24) {
      p[0] = static_cast<char>(m | static_cast<char>(arg));
      staged_ += 1;
    } else if (arg <= 0xff) {
      p[0] = static_cast<char>(m | 24);
      p[1] = static_cast<char>(arg);
      staged_ += 2;
    } else if (arg <= 0xffff) {
      p[0] = static_cast<char>(m | 25);
      const uint16_t be = __builtin_bswap16(static_cast<uint16_t>(arg));
      std::memcpy(p + 1, &be, sizeof be);
      staged_ += 3;
    } else if (arg <= 0xffffffff) {
      p[0] = static_cast<char>(m | 26);
      const uint32_t be = __builtin_bswap32(static_cast<uint32_t>(arg));
      std::memcpy(p + 1, &be, sizeof be);
      staged_ += 5;
    } else {
      p[0] = static_cast<char>(m | 27);
      const uint64_t be = __builtin_bswap64(arg);
      std::memcpy(p + 1, &be, sizeof be);
      staged_ += 9;
    }
  }

  std::string* out_;
  size_t staged_ = 0;
  char stage_[kStage];
};

}  // namespace cde

#endif  // CDE_STORAGE_CBOR_WRITER_H_
