#include "storage/keys.h"

namespace cde {

std::string_view CfName(Cf cf) {
  switch (cf) {
    case Cf::kMeta:
      return "meta";
    case Cf::kDefinitions:
      return "definitions";
    case Cf::kSagas:
      return "sagas";
    case Cf::kLog:
      return "log";
    case Cf::kDlq:
      return "dlq";
    case Cf::kTimers:
      return "timers";
    case Cf::kIdempotency:
      return "idempotency";
    case Cf::kIdxState:
      return "idx_state";
    case Cf::kIdxWorkflow:
      return "idx_workflow";
    case Cf::kIdxWorkflowState:
      return "idx_workflow_state";
    case Cf::kItems:
      return "items";
  }
  return "unknown";
}

uint32_t FormatOfCf(Cf cf) { return cf == Cf::kItems ? 4 : 1; }

// One append, not a push_back a byte: rows and keys are built with these
// on every transition.
void PutBigEndian64(std::string* out, uint64_t v) {
  const uint64_t be = __builtin_bswap64(v);
  out->append(reinterpret_cast<const char*>(&be), sizeof be);
}

void PutBigEndian32(std::string* out, uint32_t v) {
  const uint32_t be = __builtin_bswap32(v);
  out->append(reinterpret_cast<const char*>(&be), sizeof be);
}

uint64_t GetBigEndian64(std::string_view in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

uint32_t GetBigEndian32(std::string_view in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

std::string ItemPrefix(std::string_view saga_id) {
  std::string key(saga_id);
  key.push_back('\0');
  return key;
}

std::string ItemKey(std::string_view saga_id, std::string_view map_path,
                    uint32_t index) {
  std::string key = ItemPrefix(saga_id);
  key.append(map_path);
  key.push_back('\0');
  PutBigEndian32(&key, index);
  return key;
}

std::optional<ItemKeyParts> ParseItemKey(std::string_view key) {
  const size_t first = key.find('\0');
  if (first == std::string_view::npos || first == 0 || key.size() < 4) {
    return std::nullopt;
  }
  const std::string_view rest = key.substr(first + 1);
  if (rest.size() < 5 || rest[rest.size() - 5] != '\0') return std::nullopt;
  const std::string_view map_path = rest.substr(0, rest.size() - 5);
  if (map_path.empty() || map_path.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  return ItemKeyParts{key.substr(0, first), map_path,
                      GetBigEndian32(rest.substr(rest.size() - 4))};
}

std::string LogPrefix(std::string_view saga_id) {
  std::string key(saga_id);
  key.push_back('\0');
  return key;
}

std::string LogKey(std::string_view saga_id, uint64_t seq) {
  std::string key;
  AppendLogKey(&key, saga_id, seq);
  return key;
}

void AppendLogKey(std::string* out, std::string_view saga_id, uint64_t seq) {
  out->append(saga_id);
  out->push_back('\0');
  PutBigEndian64(out, seq);
}

std::optional<uint64_t> LogKeySeq(std::string_view key) {
  if (key.size() < 10 || key[key.size() - 9] != '\0') return std::nullopt;
  return GetBigEndian64(key.substr(key.size() - 8));
}

namespace {
// Flipping the sign bit makes two's-complement order match byte order.
constexpr uint64_t kSignBit = uint64_t{1} << 63;
}  // namespace

std::string TimerKey(int64_t due_ms, std::string_view saga_id,
                     std::string_view name) {
  std::string key;
  PutBigEndian64(&key, static_cast<uint64_t>(due_ms) ^ kSignBit);
  key.append(saga_id);
  key.push_back('\0');
  key.append(name);
  return key;
}

std::string TimerKeyAfter(int64_t due_ms) {
  std::string key;
  PutBigEndian64(&key, (static_cast<uint64_t>(due_ms) ^ kSignBit) + 1);
  return key;
}

std::string DefinitionPrefix(std::string_view name) {
  std::string key(name);
  key.push_back('\0');
  return key;
}

std::string DefinitionKey(std::string_view name, uint32_t version) {
  std::string key = DefinitionPrefix(name);
  PutBigEndian32(&key, version);
  return key;
}

std::string IdxStatePrefix(SagaState state) {
  return std::string(1, static_cast<char>(state));
}

std::string IdxWorkflowPrefix(std::string_view workflow) {
  std::string key(workflow);
  key.push_back('\0');
  return key;
}

bool IsRetiredIndex(Cf cf) {
  return cf == Cf::kIdxState || cf == Cf::kIdxWorkflow;
}

std::string IdxWorkflowStatePrefix(std::string_view workflow, SagaState state) {
  std::string key = IdxWorkflowPrefix(workflow);
  key.push_back(static_cast<char>(state));
  return key;
}

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last != 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return end;  // empty: no upper bound
}

std::string PrintableKey(std::string_view key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : key) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string AuditKey(std::string_view kind, std::string_view saga_id) {
  std::string key(kAuditPrefix);
  key.append(kind);
  key.push_back('/');
  key.append(saga_id);
  return key;
}

}  // namespace cde
