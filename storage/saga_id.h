// Saga ids: 26-character, time-sortable identifiers in the ULID layout
// (10 Crockford base32 characters of milliseconds since the epoch, then 16
// of randomness). Byte order of ids is creation order, which is what lets the
// `sagas` column family and every saga index list runs by creation time
// without a separate time index.
#ifndef CDE_STORAGE_SAGA_ID_H_
#define CDE_STORAGE_SAGA_ID_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace cde {

inline constexpr size_t kSagaIdLength = 26;

// Makes ids that are strictly increasing for one generator, even within one
// millisecond or when the clock steps back. Not thread-safe: one per thread.
class SagaIdGenerator {
 public:
  SagaIdGenerator();
  explicit SagaIdGenerator(uint64_t seed);

  std::string Next(int64_t now_ms);

 private:
  std::mt19937_64 rng_;
  int64_t last_ms_ = -1;
  uint64_t last_hi_ = 0;  // top 16 bits of the 80 random bits
  uint64_t last_lo_ = 0;  // low 64 bits
};

// The smallest id that a saga created at `ms` can have.
std::string SagaIdFloor(int64_t ms);

// The creation time encoded in `id`, or nullopt if `id` is not a saga id.
std::optional<int64_t> SagaIdTimeMs(std::string_view id);

// True if `id` has the saga id shape (26 Crockford base32 characters).
bool IsSagaId(std::string_view id);

}  // namespace cde

#endif  // CDE_STORAGE_SAGA_ID_H_
