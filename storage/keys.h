// Column families and key layouts. docs/storage-format.md specifies them.
//
// Names (saga ids, workflow names, timer names) are joined with a 0x00
// separator, so they must not contain a NUL byte; the engine validates names
// before they reach the store. Integers are big-endian so that byte order is
// numeric order.
#ifndef CDE_STORAGE_KEYS_H_
#define CDE_STORAGE_KEYS_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "storage/records.h"

namespace cde {

enum class Cf : uint8_t {
  kMeta = 0,
  kDefinitions,
  kSagas,
  kLog,
  kDlq,
  kTimers,
  kIdempotency,
  kIdxState,
  kIdxWorkflow,
  kIdxWorkflowState,
  kItems,
};
inline constexpr size_t kCfCount = 11;

// The RocksDB column family name of `cf` ("sagas", "idx_state", ...).
std::string_view CfName(Cf cf);
// The store format that brought `cf`: a store of an older format lacks it
// until it is opened for writing (read-only users read it as empty).
uint32_t FormatOfCf(Cf cf);
inline constexpr std::array<Cf, kCfCount> kAllCfs = {
    Cf::kMeta,        Cf::kDefinitions,      Cf::kSagas,       Cf::kLog,
    Cf::kDlq,         Cf::kTimers,           Cf::kIdempotency, Cf::kIdxState,
    Cf::kIdxWorkflow, Cf::kIdxWorkflowState, Cf::kItems};

inline constexpr std::string_view kFormatVersionKey = "format_version";
// meta: present while an upgrade runs, holding the version it upgrades from
// (a format version record). The store already says kFormatVersion, so an
// older build refuses it; a newer one finishes the upgrade.
inline constexpr std::string_view kFormatUpgradeKey = "format_upgrade_from";
// meta: audit records of operator actions, "audit/" kind "/" saga_id (e.g.
// "audit/dlq_purge/01M8..."), each a CBOR map saying what was done.
inline constexpr std::string_view kAuditPrefix = "audit/";
std::string AuditKey(std::string_view kind, std::string_view saga_id);

void PutBigEndian64(std::string* out, uint64_t v);
void PutBigEndian32(std::string* out, uint32_t v);
uint64_t GetBigEndian64(std::string_view in);  // REQUIRES: in.size() >= 8
uint32_t GetBigEndian32(std::string_view in);  // REQUIRES: in.size() >= 4

// log: saga_id 0x00 seq(8, BE). All events of a saga are one prefix.
std::string LogKey(std::string_view saga_id, uint64_t seq);
// Appends LogKey(saga_id, seq) to `out`.
void AppendLogKey(std::string* out, std::string_view saga_id, uint64_t seq);
std::string LogPrefix(std::string_view saga_id);
// The seq of a log key, or nullopt if the key is malformed.
std::optional<uint64_t> LogKeySeq(std::string_view key);

// timers: due_ms(8, BE, sign bit flipped) saga_id 0x00 name.
std::string TimerKey(int64_t due_ms, std::string_view saga_id,
                     std::string_view name);
// The smallest timer key with a due time after `due_ms`.
std::string TimerKeyAfter(int64_t due_ms);

// items: saga_id 0x00 map_path 0x00 index(4, BE). The state of one item of
// a map step, one row per item that started, so that an item's transition
// writes a row of its own size whatever the number of items. All items of a
// saga are one prefix, those of one map step a longer one.
std::string ItemKey(std::string_view saga_id, std::string_view map_path,
                    uint32_t index);
std::string ItemPrefix(std::string_view saga_id);
struct ItemKeyParts {
  std::string_view saga_id;
  std::string_view map_path;
  uint32_t index = 0;
};
// The parts of an item key, or nullopt if the key is malformed.
std::optional<ItemKeyParts> ParseItemKey(std::string_view key);

// definitions: name 0x00 version(4, BE).
std::string DefinitionKey(std::string_view name, uint32_t version);
std::string DefinitionPrefix(std::string_view name);

// idx_workflow_state: workflow 0x00 state(1) saga_id, the sagas' one index
// (values are empty). Saga ids sort by creation time, so each prefix lists
// sagas in creation order and a reverse scan lists the newest first; a
// query by state alone or by workflow alone merges the prefixes of every
// workflow or every state (store_impl.cc).
// Retired by format 7 (a row per saga per transition of state that the
// one index answers as well), emptied by the upgrade to it:
// idx_state: state(1) saga_id. idx_workflow: workflow 0x00 saga_id.
std::string IdxStatePrefix(SagaState state);
std::string IdxWorkflowPrefix(std::string_view workflow);
std::string IdxWorkflowStatePrefix(std::string_view workflow, SagaState state);
// Whether `cf` is an index that format 7 retired.
bool IsRetiredIndex(Cf cf);

// The smallest key greater than every key that starts with `prefix`.
std::string PrefixEnd(std::string_view prefix);

// Renders a key for error messages: printable ASCII as is, the rest as \xNN.
std::string PrintableKey(std::string_view key);

}  // namespace cde

#endif  // CDE_STORAGE_KEYS_H_
