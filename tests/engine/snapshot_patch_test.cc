// A transition that writes a patch of its saga's snapshot instead of the
// snapshot (store format 8) must leave readers with exactly the snapshot it
// replaced: the patch applied to the previous snapshot's record is the new
// snapshot's record. Over hand-made changes (a step, the waits, a field
// set and cleared) and generated pairs of sagas (deterministic seeds).
#include "engine/snapshot_patch.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "storage/records.h"
#include "tests/engine/saga_generator.h"

namespace cde {
namespace {

using nlohmann::json;

std::string Body(const Saga& saga, BodyLayout* layout) {
  std::string out;
  CborWriter w(&out);
  WriteSnapshotBody(saga, w, layout);
  return out;
}

// Make over the two sagas' encoded bodies (which it keeps views of).
struct Made {
  Made(const Saga& was, const Saga& now)
      : was_body(Body(was, &was_layout)), now_body(Body(now, &now_layout)) {
    worth = patch.Make({was_body, &was_layout}, {now_body, &now_layout});
  }
  BodyLayout was_layout, now_layout;
  std::string was_body, now_body;
  SnapshotPatch patch;
  bool worth = false;
};

// The layout names each field's and element's bytes as the body has them:
// checked against the body decoded.
void ExpectLayoutAgrees(const Saga& s) {
  BodyLayout layout;
  const std::string body = Body(s, &layout);
  const json want = ToRecord(s).body;
  ASSERT_EQ(layout.fields.size(), want.size());
  size_t i = 0;
  for (const auto& [key, value] : want.items()) {
    const BodyLayout::Field& f = layout.fields[i++];
    EXPECT_EQ(json::from_cbor(body.substr(f.key, f.value - f.key)), key);
    EXPECT_EQ(json::from_cbor(body.substr(f.value, f.end - f.value)), value)
        << key;
    EXPECT_EQ(f.list, value.is_array()) << key;
    if (!f.list) continue;
    ASSERT_EQ(f.element_count, value.size()) << key;
    for (uint32_t e = 0; e < f.element_count; ++e) {
      const uint32_t begin = layout.elements[f.first_element + e];
      const uint32_t end = e + 1 < f.element_count
                               ? layout.elements[f.first_element + e + 1]
                               : f.end;
      EXPECT_EQ(json::from_cbor(body.substr(begin, end - begin)), value[e])
          << key << "[" << e << "]";
    }
  }
  EXPECT_EQ(layout.fields.back().end, body.size());
}

json PatchJson(const SnapshotPatch& patch, int64_t updated_ms) {
  std::string bytes;
  {
    CborWriter w(&bytes);
    patch.Write(w, updated_ms);
  }
  return json::from_cbor(bytes);
}

// `now` as the patch of `was` makes it; returns Make's verdict.
bool ExpectPatchGives(const Saga& was, const Saga& now,
                      const std::string& what) {
  SCOPED_TRACE(what);
  Made made(was, now);
  SagaRecord rec = ToRecord(was);
  const Status s = ApplySnapshotPatch(PatchJson(made.patch, now.updated_ms),
                                      was.last_seq + 2, &rec, "log row");
  EXPECT_TRUE(s.ok()) << s.ToString();
  SagaRecord want = ToRecord(now);
  want.last_seq = was.last_seq + 2;
  EXPECT_EQ(rec, want);
  return made.worth;
}

// The head a patch cannot change, copied from `from`.
Saga WithHeadOf(Saga s, const Saga& from) {
  s.id = from.id;
  s.workflow = from.workflow;
  s.version = from.version;
  s.state = from.state;
  s.created_ms = from.created_ms;
  s.idempotency_key = from.idempotency_key;
  s.last_seq = from.last_seq;
  s.updated_ms = from.updated_ms + 5;
  return s;
}

TEST(SnapshotPatchTest, TheLayoutNamesEachFieldAndElementOfTheBody) {
  ExpectLayoutAgrees(test::SagaWithEveryField());
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    SCOPED_TRACE(seed);
    ExpectLayoutAgrees(test::GeneratedSaga(seed));
    if (HasFailure()) return;
  }
}

TEST(SnapshotPatchTest, AStepThatSucceededIsAPatchOfItsElementsOnly) {
  Saga was = test::SagaWithEveryField();
  was.steps.resize(3, was.steps[0]);
  Saga now = was;
  now.updated_ms += 7;
  now.steps[1].status = StepStatus::kSucceeded;
  now.steps[1].output = json{{"booked", true}};
  now.steps[2].attempts += 1;
  EXPECT_TRUE(ExpectPatchGives(was, now, "two steps changed"));
  Made made(was, now);
  ASSERT_TRUE(made.worth);
  const json p = PatchJson(made.patch, now.updated_ms);
  EXPECT_EQ(p.size(), 2u) << p.dump();  // elements, updated_ms
  ASSERT_TRUE(p.contains("elements")) << p.dump();
  ASSERT_EQ(p["elements"]["steps"].size(), 2u) << p.dump();
  EXPECT_EQ(p["elements"]["steps"][0][0], 1);
  EXPECT_EQ(p["elements"]["steps"][1][0], 2);
  EXPECT_EQ(p["updated_ms"], now.updated_ms);
}

TEST(SnapshotPatchTest, FieldsSetAndClearedAreSetAndUnset) {
  Saga was = test::SagaWithEveryField();
  Saga now = was;
  now.checkpointed = !was.checkpointed;
  now.replayed_by = was.replayed_by.empty() ? "ops" : "";
  now.waits.push_back({Wait::Kind::kSleep, "later", false, 0, 99});
  ExpectPatchGives(was, now, "set, cleared, resized");
  Made made(was, now);
  const json p = PatchJson(made.patch, now.updated_ms);
  EXPECT_TRUE(p.contains("set")) << p.dump();
  EXPECT_TRUE(p.contains("unset")) << p.dump();
  EXPECT_TRUE(p["set"].contains("waits")) << "a list that changed size is "
                                             "set whole: "
                                          << p.dump();
}

TEST(SnapshotPatchTest, NothingChangedIsAPatchOfTheTimeAlone) {
  const Saga was = test::SagaWithEveryField();
  Saga now = was;
  now.updated_ms += 1;
  EXPECT_TRUE(ExpectPatchGives(was, now, "unchanged"));
  Made made(was, now);
  EXPECT_EQ(PatchJson(made.patch, 12), json({{"updated_ms", 12}}));
}

TEST(SnapshotPatchTest, APatchAsLargeAsTheSnapshotIsNotWorthWriting) {
  // Every field new: the patch holds all of the snapshot and then some.
  const Saga now = test::SagaWithEveryField();
  Saga was = WithHeadOf(Saga{}, now);
  was.input = json{{"other", 1}};
  EXPECT_FALSE(ExpectPatchGives(was, now, "everything new"));
}

TEST(SnapshotPatchTest, GeneratedPairsPatchToTheNewerSnapshot) {
  for (uint64_t seed = 1; seed <= 400; ++seed) {
    const Saga was = test::GeneratedSaga(seed);
    // Another generated saga of the same head: fields, steps and waits of
    // any shape, set or not.
    ExpectPatchGives(was, WithHeadOf(test::GeneratedSaga(seed + 1000), was),
                     "seed " + std::to_string(seed));
    // And a few changes to the same saga, as a transition makes them.
    std::mt19937_64 rng(seed);
    Saga now = was;
    for (StepState& st : now.steps) {
      if (rng() % 4 == 0) st.attempts += 1;
      if (rng() % 5 == 0) st.output = json{{"n", rng() % 100}};
      if (rng() % 7 == 0) st.error = {};
    }
    if (rng() % 2 == 0 && !now.waits.empty()) now.waits.pop_back();
    if (rng() % 3 == 0) now.failure = {"boom", "went wrong"};
    ExpectPatchGives(was, now, "changes, seed " + std::to_string(seed));
    if (HasFailure()) return;  // one seed's story, not 400
  }
}

}  // namespace
}  // namespace cde
