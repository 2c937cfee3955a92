// Event and timer kinds and DLQ reasons: one name each, read back to the same
// kind, and the names the user's documentation lists are the engine's.
#include "engine/kinds.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace cde {
namespace {

constexpr int kEventKinds = static_cast<int>(EventKind::kSagaPoisoned) + 1;
constexpr int kTimerKinds = static_cast<int>(TimerKind::kRedrive) + 1;

std::string ReadDoc(const std::string& name) {
  std::ifstream in(std::string(CDE_DOCS_DIR) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(KindsTest, EveryEventKindHasOneNameThatReadsBack) {
  std::set<std::string_view> seen;
  for (int i = 0; i < kEventKinds; ++i) {
    const auto kind = static_cast<EventKind>(i);
    const std::string_view name = EventKindName(kind);
    EXPECT_NE(name, "unknown") << i;
    EXPECT_TRUE(seen.insert(name).second) << name << " names two kinds";
    EXPECT_EQ(EventKindFromName(name), kind) << name;
  }
  EXPECT_EQ(EventKindFromName("saga_exploded"), std::nullopt);
  EXPECT_EQ(EventKindFromName(""), std::nullopt);
}

TEST(KindsTest, EveryTimerKindHasOneNameThatReadsBack) {
  std::set<std::string_view> seen;
  for (int i = 0; i < kTimerKinds; ++i) {
    const auto kind = static_cast<TimerKind>(i);
    const std::string_view name = TimerKindName(kind);
    EXPECT_NE(name, "unknown") << i;
    EXPECT_TRUE(seen.insert(name).second) << name << " names two kinds";
    EXPECT_EQ(TimerKindFromName(name), kind) << name;
  }
  EXPECT_EQ(TimerKindFromName("alarm"), std::nullopt);
}

TEST(KindsTest, EveryDlqReasonHasOneNameThatReadsBackAndIsDocumented) {
  const std::string mcp = ReadDoc("mcp.md") + ReadDoc("cde-admin.md");
  std::set<std::string_view> seen;
  for (int i = 0; i <= static_cast<int>(DlqReason::kPoison); ++i) {
    const auto reason = static_cast<DlqReason>(i);
    const std::string_view name = DlqReasonName(reason);
    EXPECT_NE(name, "unknown") << i;
    EXPECT_TRUE(seen.insert(name).second) << name << " names two reasons";
    EXPECT_EQ(DlqReasonFromName(name), reason) << name;
    EXPECT_NE(mcp.find("`" + std::string(name) + "`"), std::string::npos)
        << "docs/mcp.md or docs/cde-admin.md should name DLQ reason " << name;
  }
  EXPECT_EQ(DlqReasonFromName("tired"), std::nullopt);
}

TEST(KindsTest, FailuresAndParksReadBadAndOnlyCompletionReadsGood) {
  EXPECT_EQ(ToneOf(EventKind::kAttemptFailed), EventTone::kBad);
  EXPECT_EQ(ToneOf(EventKind::kStepFailed), EventTone::kBad);
  EXPECT_EQ(ToneOf(EventKind::kCompensationFailed), EventTone::kBad);
  EXPECT_EQ(ToneOf(EventKind::kSagaParked), EventTone::kBad);
  EXPECT_EQ(ToneOf(EventKind::kSagaPoisoned), EventTone::kBad);
  EXPECT_EQ(ToneOf(EventKind::kSagaCompleted), EventTone::kGood);
  EXPECT_EQ(ToneOf(EventKind::kStepSucceeded), EventTone::kProgress);
}

// docs/mcp.md (get_saga_log's event types) and docs/operations.md (the log
// level of each event) name every event kind.
TEST(KindsTest, TheDocsNameEveryEventKind) {
  for (const char* doc : {"mcp.md", "operations.md"}) {
    const std::string text = ReadDoc(doc);
    ASSERT_FALSE(text.empty()) << doc;
    for (int i = 0; i < kEventKinds; ++i) {
      const std::string name(EventKindName(static_cast<EventKind>(i)));
      EXPECT_NE(text.find("`" + name + "`"), std::string::npos)
          << doc << " does not name the event " << name;
    }
  }
}

}  // namespace
}  // namespace cde
