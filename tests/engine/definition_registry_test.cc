// DefinitionRegistry: what a registration is admitted as (new, unchanged,
// refused), the claim that keeps two registrations of one new version from
// both committing, and what it finds once loaded.
#include "engine/definition_registry.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;

json Def(const std::string& name, uint32_t version, const char* action) {
  return {{"name", name},
          {"version", version},
          {"steps", {{{"name", "s"}, {"action", action}}}}};
}

class DefinitionRegistryTest : public ::testing::Test {
 protected:
  RegistrationRules Rules(uint64_t bytes = 1 << 20, uint32_t steps = 256,
                          uint32_t branches = 32) {
    return {secrets_, policy_, destinations_, bytes, steps, branches};
  }
  // Admits and loads `doc` as the engine does after its commit.
  void Register(const json& doc, DefinitionOrigin origin) {
    auto admitted = registry_.Admit(doc, origin, Rules());
    ASSERT_OK(admitted.status());
    ASSERT_FALSE(admitted->unchanged);
    ASSERT_OK(registry_.Load(
        {admitted->name, admitted->version, 1, doc, origin, "test"}));
    registry_.Release(admitted->name, admitted->version);
  }

  Secrets secrets_;
  ActionPolicy policy_;
  DestinationPolicy destinations_ =
      DestinationPolicy::Compile(HttpPolicy{}).value();
  DefinitionRegistry registry_{{{"native", NativeAction{}}}};
};

TEST_F(DefinitionRegistryTest,
       TheSameDocumentAgainIsUnchangedAndClaimsNothing) {
  Register(Def("w", 1, "noop"), DefinitionOrigin::kOperator);
  auto again = registry_.Admit(Def("w", 1, "noop"), DefinitionOrigin::kOperator,
                               Rules());
  ASSERT_OK(again.status());
  ASSERT_TRUE(again->unchanged);
  EXPECT_EQ(again->unchanged->registered_by, "test");
  // Not claimed: an unchanged registration can be repeated at once.
  EXPECT_OK(
      registry_.Admit(Def("w", 1, "noop"), DefinitionOrigin::kOperator, Rules())
          .status());
}

TEST_F(DefinitionRegistryTest, AVersionIsImmutable) {
  Register(Def("w", 1, "noop"), DefinitionOrigin::kOperator);
  auto changed = registry_.Admit(Def("w", 1, "echo"),
                                 DefinitionOrigin::kOperator, Rules());
  EXPECT_EQ(changed.status().code(), Status::Code::kAlreadyExists);
  EXPECT_NE(changed.status().message().find("register it as a new version"),
            std::string::npos);
}

TEST_F(DefinitionRegistryTest, AnOperatorAdoptsWhatAClientRegistered) {
  Register(Def("w", 1, "noop"), DefinitionOrigin::kClient);
  auto adopt = registry_.Admit(Def("w", 1, "noop"), DefinitionOrigin::kOperator,
                               Rules());
  ASSERT_OK(adopt.status());
  EXPECT_FALSE(adopt->unchanged) << "written again, as the operator's";
}

TEST_F(DefinitionRegistryTest, ANewVersionIsClaimedUntilReleased) {
  auto first = registry_.Admit(Def("w", 1, "noop"), DefinitionOrigin::kOperator,
                               Rules());
  ASSERT_OK(first.status());
  auto second = registry_.Admit(Def("w", 1, "noop"),
                                DefinitionOrigin::kOperator, Rules());
  EXPECT_EQ(second.status().code(), Status::Code::kBusy);
  registry_.Release("w", 1);
  EXPECT_OK(
      registry_.Admit(Def("w", 1, "noop"), DefinitionOrigin::kOperator, Rules())
          .status());
}

TEST_F(DefinitionRegistryTest, ParallelStepsOverTheBranchLimitAreRefused) {
  json doc = Def("w", 1, "noop");
  json branches = json::object();
  for (const char* b : {"a", "b", "c"}) {
    branches[b] = {{{"name", std::string("s-") + b}, {"action", "noop"}}};
  }
  doc["steps"].push_back(
      {{"name", "fan"}, {"parallel", {{"branches", branches}}}});
  auto refused = registry_.Admit(doc, DefinitionOrigin::kOperator,
                                 Rules(1 << 20, 256, /*branches=*/2));
  EXPECT_EQ(refused.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(refused.status().message(),
            "invalid workflow definition: steps[1].parallel.branches: 3 "
            "branches, more than limits.branches allows (2)");
  // Nested steps count towards limits.definition_steps: 1 + 1 + 3.
  auto steps =
      registry_.Admit(doc, DefinitionOrigin::kOperator, Rules(1 << 20, 4, 32));
  EXPECT_NE(steps.status().message().find("5 steps"), std::string::npos);
  EXPECT_OK(
      registry_.Admit(doc, DefinitionOrigin::kOperator, Rules(1 << 20, 5, 3))
          .status());
}

TEST_F(DefinitionRegistryTest, SizeAndStepLimitsApplyToNewContentOnly) {
  auto big = registry_.Admit(Def("w", 1, "noop"), DefinitionOrigin::kOperator,
                             Rules(/*bytes=*/10));
  EXPECT_EQ(big.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(big.status().message().find("limits.definition_bytes"),
            std::string::npos);
  auto steps = registry_.Admit(Def("w", 1, "noop"), DefinitionOrigin::kOperator,
                               Rules(1 << 20, 0));
  EXPECT_NE(steps.status().message().find("limits.definition_steps"),
            std::string::npos);
  Register(Def("w", 1, "noop"), DefinitionOrigin::kOperator);
  EXPECT_OK(registry_
                .Admit(Def("w", 1, "noop"), DefinitionOrigin::kOperator,
                       Rules(/*bytes=*/10))
                .status());
}

TEST_F(DefinitionRegistryTest, FindsTheLatestOrAGivenVersionAndNativeActions) {
  Register(Def("w", 1, "noop"), DefinitionOrigin::kOperator);
  Register(Def("w", 2, "native"), DefinitionOrigin::kOperator);
  ASSERT_NE(registry_.Find("w", std::nullopt), nullptr);
  EXPECT_EQ(registry_.Find("w", std::nullopt)->version, 2u);
  EXPECT_EQ(registry_.Find("w", 1)->version, 1u);
  EXPECT_EQ(registry_.Find("w", 3), nullptr);
  EXPECT_EQ(registry_.Find("x", std::nullopt), nullptr);
  EXPECT_EQ(registry_.List().size(), 2u);
  EXPECT_NE(registry_.FindAction("native"), nullptr);
  EXPECT_EQ(registry_.FindAction("noop"), nullptr) << "built-ins are not here";
  EXPECT_EQ(registry_.AddAction("noop", NativeAction{}).code(),
            Status::Code::kAlreadyExists);
}

TEST_F(DefinitionRegistryTest, TheSchemaNamesActionsAddedSinceItWasMade) {
  const std::string before = registry_.Schema().dump();
  EXPECT_EQ(before.find("\"later\""), std::string::npos);
  ASSERT_OK(registry_.AddAction("later", NativeAction{}));
  EXPECT_NE(registry_.Schema().dump().find("\"later\""), std::string::npos);
}

}  // namespace
}  // namespace cde
