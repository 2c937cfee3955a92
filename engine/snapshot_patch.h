// SnapshotPatch: what a transition changed in its saga's snapshot, written
// into its log row instead of the whole snapshot (store format 8; see
// ApplySnapshotPatch in storage/records.h for the patch's form).
//
// A step of a running saga changes a few fields of a snapshot of a few
// hundred bytes: its step's and the next step's entries and the waits.
// Rewriting all of it on every transition cost the writer a row (a memtable
// insert, and the bytes) for each commit. The patch is found by comparing
// the encodings of the snapshot before and after, field by field and a
// list's elements one by one (where WriteSnapshotBody noted they are), so
// that it covers every field the snapshot has without a list of them to
// keep in step.
#ifndef CDE_ENGINE_SNAPSHOT_PATCH_H_
#define CDE_ENGINE_SNAPSHOT_PATCH_H_

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/saga.h"
#include "storage/cbor_writer.h"

namespace cde {

// An encoded snapshot body and where its parts are.
struct LaidOutBody {
  std::string_view bytes;
  const BodyLayout* layout;
};

class SnapshotPatch {
 public:
  // Compares the saga's snapshot body as committed with the one after the
  // transition. True if the patch is worth writing: it is smaller than the
  // snapshot it replaces. The patch keeps views of both until Write.
  bool Make(LaidOutBody base, LaidOutBody body);

  // The patch (a CBOR map) with the snapshot's new updated_ms.
  void Write(CborWriter& w, int64_t updated_ms) const;

 private:
  struct Part {
    std::string_view key;    // the text
    std::string_view value;  // the encoded value
  };
  struct Elements {
    std::string_view key;
    std::vector<std::pair<uint64_t, std::string_view>> changed;
  };

  std::vector<Part> set_;
  std::vector<std::string_view> unset_;
  // The first elements_used_ are this patch's; the rest keep their room
  // for the next.
  std::vector<Elements> elements_;
  size_t elements_used_ = 0;
};

}  // namespace cde

#endif  // CDE_ENGINE_SNAPSHOT_PATCH_H_
