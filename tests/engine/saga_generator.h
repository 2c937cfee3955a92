// Sagas for the tests of what renders a saga (its snapshot, its MCP view):
// one with every field set, and generated ones, each optional field set or
// not as its seed decides (deterministic: a failure names its seed).
#ifndef CDE_TESTS_ENGINE_SAGA_GENERATOR_H_
#define CDE_TESTS_ENGINE_SAGA_GENERATOR_H_

#include <cstdint>

#include "engine/saga.h"

namespace cde::test {

Saga SagaWithEveryField();
Saga GeneratedSaga(uint64_t seed);

}  // namespace cde::test

#endif  // CDE_TESTS_ENGINE_SAGA_GENERATOR_H_
