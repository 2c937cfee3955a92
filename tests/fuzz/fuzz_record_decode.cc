// Fuzzes the store's record decoders (storage/records.h) with arbitrary
// bytes, as a corrupt or hostile value read back from RocksDB would be.
//
// Every decoder sees every input (the seed corpus holds records of each
// kind, encoded by the project's own encoders). A decode error is fine; a
// crash, an escaping exception, UB or a leak is not. What decodes must
// survive a round trip: decode(encode(decoded)) succeeds and encodes to the
// same bytes (compared as bytes so that a NaN in a JSON body is no false
// alarm). A decoded snapshot goes on to FromRecord (engine/saga.h), and a
// saga it accepts must survive ToRecord / FromRecord the same way.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "engine/saga.h"
#include "storage/keys.h"
#include "storage/records.h"
#include "storage/saga_id.h"

namespace {

using namespace cde;

constexpr std::string_view kWhere = "fuzz key";

[[noreturn]] void Fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_record_decode: %s: %s\n", what, detail.c_str());
  std::abort();
}

// decode(encode(r)) must succeed and encode to the same bytes.
template <typename Record, typename Encode, typename Decode>
void RoundTrip(const char* kind, const Record& rec, Encode encode,
               Decode decode) {
  const std::string once = encode(rec);
  auto again = decode(once, kWhere);
  if (!again.ok()) {
    Fail(kind,
         "re-encoded record does not decode: " + again.status().ToString());
  }
  if (encode(*again) != once) Fail(kind, "round trip changed the record");
}

template <typename Record, typename Encode, typename Decode>
void Check(const char* kind, std::string_view value, Encode encode,
           Decode decode) {
  auto rec = decode(value, kWhere);
  if (!rec.ok()) {
    if (!rec.status().IsCorruption()) {
      Fail(kind, "decode error is not Corruption: " + rec.status().ToString());
    }
    return;
  }
  RoundTrip<Record>(kind, *rec, encode, decode);
}

void CheckSnapshot(std::string_view value) {
  auto rec = DecodeSaga(value, kWhere);
  if (!rec.ok()) return;  // Check() covers the decode itself
  auto saga = FromRecord(*rec);
  if (!saga.ok()) {
    if (!saga.status().IsCorruption()) {
      Fail("saga",
           "FromRecord error is not Corruption: " + saga.status().ToString());
    }
    return;
  }
  // What the engine writes back for this saga must read back as the same.
  const SagaRecord written = ToRecord(*saga);
  auto reread = FromRecord(written);
  if (!reread.ok()) {
    Fail("saga", "ToRecord output does not pass FromRecord: " +
                     reread.status().ToString());
  }
  if (EncodeSaga(ToRecord(*reread)) != EncodeSaga(written)) {
    Fail("saga", "ToRecord/FromRecord round trip changed the saga");
  }
  // The names the engine derives from a saga must be printable.
  (void)SagaStateName(saga->state);
  for (const Wait& w : saga->waits) {
    (void)WaitKindName(w.kind);
    (void)TimerKindOf(w.kind);
  }
  for (const StepState& st : saga->steps) (void)StepStatusName(st.status);
}

// An item row: it decodes or is Corruption; a decoded item the engine reads
// writes back as the same item.
void CheckItem(std::string_view value) {
  auto body = DecodeItem(value, kWhere);
  if (!body.ok()) {
    if (!body.status().IsCorruption()) {
      Fail("item",
           "decode error is not Corruption: " + body.status().ToString());
    }
    return;
  }
  auto item = ItemFromJson(*body, "item");
  if (!item.ok()) {
    if (!item.status().IsCorruption()) {
      Fail("item",
           "ItemFromJson error is not Corruption: " + item.status().ToString());
    }
    return;
  }
  auto again = ItemFromJson(ItemToJson(*item), "item");
  if (!again.ok() || !(*again == *item)) {
    Fail("item", "ItemToJson/ItemFromJson round trip changed the item");
  }
}

// A log row with a snapshot patch (format 8): it decodes or is Corruption,
// and its patch applied to a saga's record succeeds or is Corruption; a
// record it patched that the engine reads writes back as the same saga.
void CheckPatchedRow(std::string_view value) {
  auto row = DecodeLogRowWithPatch(value, kWhere);
  if (!row.ok()) {
    if (!row.status().IsCorruption()) {
      Fail("patched log row",
           "decode error is not Corruption: " + row.status().ToString());
    }
    return;
  }
  if (!row->snapshot_patch) return;
  SagaRecord rec;
  rec.id = "01JFUZZ";
  rec.workflow = "w";
  rec.last_seq = 0;
  rec.body = {{"input", {{"n", 1}}},
              {"steps",
               {{{"attempts", 1}, {"status", "succeeded"}},
                {{"attempts", 0}, {"status", "pending"}}}},
              {"waits", {{{"kind", "attempt"}, {"path", "b"}}}}};
  const Status s = ApplySnapshotPatch(*row->snapshot_patch,
                                      row->events.back().seq, &rec, kWhere);
  if (!s.ok()) {
    if (!s.IsCorruption()) {
      Fail("snapshot patch", "apply error is not Corruption: " + s.ToString());
    }
    return;
  }
  auto saga = FromRecord(rec);
  if (!saga.ok()) {
    if (!saga.status().IsCorruption()) {
      Fail("snapshot patch",
           "FromRecord error is not Corruption: " + saga.status().ToString());
    }
    return;
  }
  auto reread = FromRecord(ToRecord(*saga));
  if (!reread.ok() ||
      EncodeSaga(ToRecord(*reread)) != EncodeSaga(ToRecord(*saga))) {
    Fail("snapshot patch", "a patched saga does not read back the same");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view value(reinterpret_cast<const char*>(data), size);

  Check<SagaRecord>("saga", value, EncodeSaga, DecodeSaga);
  Check<LogRecord>("log", value, EncodeLog, DecodeLog);
  Check<std::vector<LogRecord>>("log row", value, EncodeLogRow, DecodeLogRow);
  Check<DlqRecord>("dlq", value, EncodeDlq, DecodeDlq);
  Check<TimerRecord>("timer", value, EncodeTimer, DecodeTimer);
  Check<DefinitionRecord>("definition", value, EncodeDefinition,
                          DecodeDefinition);
  Check<std::string>(
      "idempotency", value,
      [](const std::string& id) { return EncodeIdempotency(id); },
      DecodeIdempotency);
  Check<uint32_t>("format_version", value, EncodeFormatVersion,
                  DecodeFormatVersion);
  CheckSnapshot(value);
  CheckItem(value);
  CheckPatchedRow(value);

  // The key and id decoders that read stored bytes or client strings.
  if (auto seq = LogKeySeq(value)) {
    // saga_id 0x00 seq(8): the separator is the ninth byte from the end.
    if (LogKey(value.substr(0, value.size() - 9), *seq) != value) {
      Fail("log key", "LogKey(LogKeySeq(key)) is not the key");
    }
  }
  if (auto ms = SagaIdTimeMs(value)) {
    if (!IsSagaId(value)) Fail("saga id", "a time from a non-id");
    (void)SagaIdFloor(*ms);
  }
  const std::string trace = TraceIdOf(value);
  if (!trace.empty() && trace.size() != 32) {
    Fail("traceparent",
         "trace id of " + std::to_string(trace.size()) + " characters");
  }
  if (auto item = ParseItemKey(value)) {
    if (ItemKey(item->saga_id, item->map_path, item->index) != value) {
      Fail("item key", "ItemKey(ParseItemKey(key)) is not the key");
    }
  }
  (void)PrintableKey(value);
  return 0;
}
