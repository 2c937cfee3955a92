// Size limits (EngineLimits): a definition, its steps, a saga's input and a
// step's output. Over a limit: a clear error naming the setting, nothing
// stored, and for an output a failed step of kind `limit`, never a wedged
// saga.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/engine.h"
#include "tests/engine/engine_harness.h"
#include "tests/test_util.h"

namespace cde {
namespace {

using nlohmann::json;
using test::EngineHarness;
using ::testing::HasSubstr;

using test::Workflow;

// One echo step whose output is {"data": input.data}: 11 bytes plus data.
json Echoes() {
  return Workflow(
      "echoes",
      json::array(
          {{{"name", "say"},
            {"action", "echo"},
            {"params", {{"data", "${input.data}"}}},
            {"retry", {{"max_attempts", 3}, {"initial_backoff_ms", 1}}}}}));
}

class SizeLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(h_.Open("")); }
  void Limit(const std::function<void(EngineLimits&)>& change) {
    EngineLimits limits;
    change(limits);
    h_.engine().SetLimits(limits);
  }
  size_t SagaCount() {
    auto sagas = h_.engine().store().ListActiveSagas();
    EXPECT_OK(sagas.status());
    return sagas.ok() ? sagas->sagas.size() : 0;
  }

  EngineHarness h_;
};

TEST_F(SizeLimitsTest, ADefinitionOverTheLimitIsRefusedAndNotStored) {
  Limit([](EngineLimits& l) { l.definition_bytes = 1024; });
  json big = Echoes();
  big["description"] = std::string(1100, 'd');
  auto r = h_.Register(big);
  ASSERT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(r.status().message(),
            "the definition is " + std::to_string(big.dump().size()) +
                " bytes of JSON, more than limits.definition_bytes allows "
                "(1024)");
  EXPECT_TRUE(h_.engine().ListWorkflows().empty());
  ASSERT_OK(h_.Register(Echoes()).status());  // a small one is fine
}

// The workflows directory registers its files again at every start: what
// was registered under larger limits must not stop the server then.
TEST_F(SizeLimitsTest, LoweredLimitsKeepWhatIsRegistered) {
  json big = Echoes();
  big["description"] = std::string(2000, 'd');
  ASSERT_OK(h_.Register(big).status());
  Limit([](EngineLimits& l) {
    l.definition_bytes = 1024;
    l.definition_steps = 1;
  });
  ASSERT_OK(h_.Register(big).status());  // the same content: a no-op
  json bigger = big;
  bigger["version"] = 2;
  EXPECT_TRUE(h_.Register(bigger).status().IsInvalidArgument());
}

TEST_F(SizeLimitsTest, MoreStepsThanTheLimitAreRefused) {
  Limit([](EngineLimits& l) { l.definition_steps = 2; });
  json steps = json::array();
  for (const char* name : {"a", "b", "c"}) {
    steps.push_back({{"name", name}, {"action", "noop"}});
  }
  auto r = h_.Register(Workflow("three", steps));
  ASSERT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(r.status().message(),
            "invalid workflow definition: steps: 3 steps, more than "
            "limits.definition_steps allows (2)");
  EXPECT_TRUE(h_.engine().ListWorkflows().empty());
  steps.erase(2);
  ASSERT_OK(h_.Register(Workflow("two", steps)).status());
}

TEST_F(SizeLimitsTest, AnInputOverTheLimitIsRefusedAndNothingStarts) {
  ASSERT_OK(h_.Register(Echoes()).status());
  Limit([](EngineLimits& l) { l.input_bytes = 100; });
  const json input = {{"data", std::string(100, 'x')}};
  auto r = h_.Start({.workflow = "echoes", .input = input});
  ASSERT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(r.status().message(),
            "input is 111 bytes of JSON, more than limits.input_bytes allows "
            "(100)");
  EXPECT_EQ(SagaCount(), 0u);
  auto fits = h_.Start(
      {.workflow = "echoes", .input = {{"data", std::string(89, 'x')}}});
  ASSERT_OK(fits.status());  // exactly 100 bytes
}

TEST_F(SizeLimitsTest, AnOutputOverTheLimitFailsTheStepWithKindLimitOnce) {
  ASSERT_OK(h_.Register(Echoes()).status());
  Limit([](EngineLimits& l) { l.output_bytes = 50; });
  auto over = h_.Start(
      {.workflow = "echoes", .input = {{"data", std::string(40, 'x')}}});
  ASSERT_OK(over.status());
  auto rec = h_.AwaitInactive(over->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompensated);
  const json& step = rec->body["steps"][0];
  EXPECT_EQ(step["error"]["kind"], "limit");
  EXPECT_EQ(step["error"]["message"],
            "the output is 51 bytes of JSON, more than limits.output_bytes "
            "allows (50)");
  EXPECT_EQ(step["attempts"], 1) << "the same call would answer as much";
  EXPECT_FALSE(step.contains("output"));

  auto fits = h_.Start(
      {.workflow = "echoes", .input = {{"data", std::string(39, 'x')}}});
  ASSERT_OK(fits.status());
  rec = h_.AwaitInactive(fits->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted);  // exactly 50 bytes

  // A reload raises the limit for the attempts dispatched after it.
  Limit([](EngineLimits& l) { l.output_bytes = 51; });
  auto again = h_.Start(
      {.workflow = "echoes", .input = {{"data", std::string(40, 'x')}}});
  ASSERT_OK(again.status());
  rec = h_.AwaitInactive(again->saga_id);
  ASSERT_OK(rec.status());
  EXPECT_EQ(rec->state, SagaState::kCompleted) << rec->body.dump();
}

}  // namespace
}  // namespace cde
