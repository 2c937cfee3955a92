// The one JSON of a DLQ entry: every field, and read back to the same
// record; what is missing or mistyped in an answer reads as its default.
#include "engine/dlq_entry.h"

#include <gtest/gtest.h>

namespace cde {
namespace {

TEST(DlqEntryTest, TheJsonHasEveryFieldAndReadsBackToTheSameRecord) {
  const DlqRecord d{"01ABC", "trip",           3, "step_failed",
                    "hotel", "http_503: down", 5, 1796359075286,
                    2};
  const nlohmann::json j = DlqEntryJson(d);
  EXPECT_EQ(j.size(), 9u);
  EXPECT_EQ(j["reason"], "step_failed");
  EXPECT_EQ(j["parked_ms"], 1796359075286);
  EXPECT_EQ(DlqEntryFromJson(j), d);
}

TEST(DlqEntryTest, AMissingOrMistypedFieldReadsAsItsDefault) {
  const DlqRecord d =
      DlqEntryFromJson({{"workflow", "trip"}, {"version", "three"}});
  EXPECT_EQ(d.workflow, "trip");
  EXPECT_EQ(d.version, 0u);
  EXPECT_EQ(d.saga_id, "");
  EXPECT_EQ(DlqEntryFromJson(nlohmann::json::array()), DlqRecord{});
}

}  // namespace
}  // namespace cde
