#include "storage/saga_id.h"

namespace cde {
namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int DecodeChar(char c) {
  for (int i = 0; i < 32; ++i) {
    if (kAlphabet[i] == c) return i;
  }
  return -1;
}

// The 10 characters of an id's time: milliseconds, most significant first.
constexpr int kTimeChars = 10;
void WriteTime(char* out, uint64_t ms) {
  for (int i = 0; i < kTimeChars; ++i) {
    out[i] = kAlphabet[(ms >> (5 * (kTimeChars - 1 - i))) & 31];
  }
}

}  // namespace

SagaIdGenerator::SagaIdGenerator() : rng_(std::random_device{}()) {}
SagaIdGenerator::SagaIdGenerator(uint64_t seed) : rng_(seed) {}

std::string SagaIdGenerator::Next(int64_t now_ms) {
  if (now_ms <= last_ms_) {
    // Same millisecond (or the clock stepped back): keep the last time and
    // increment the random part so ids stay strictly increasing.
    if (++last_lo_ == 0) last_hi_ = (last_hi_ + 1) & 0xffff;
  } else {
    last_ms_ = now_ms;
    last_hi_ = rng_() & 0x7fff;  // a zero top bit leaves room to increment
    last_lo_ = rng_();
  }
  // Written into a buffer, made a string once (an id per start).
  char id[kSagaIdLength];
  WriteTime(id, static_cast<uint64_t>(last_ms_));
  // 80 random bits as 16 base32 characters: hi supplies the first 16 bits.
  for (int i = 15; i >= 0; --i) {
    const int bit = 5 * i;
    uint64_t chunk;
    if (bit >= 64) {
      chunk = last_hi_ >> (bit - 64);
    } else if (bit + 5 > 64) {
      chunk = (last_lo_ >> bit) | (last_hi_ << (64 - bit));
    } else {
      chunk = last_lo_ >> bit;
    }
    id[kTimeChars + (15 - i)] = kAlphabet[chunk & 31];
  }
  return std::string(id, kSagaIdLength);
}

std::string SagaIdFloor(int64_t ms) {
  std::string id(kSagaIdLength, '0');
  WriteTime(id.data(), static_cast<uint64_t>(ms < 0 ? 0 : ms));
  return id;
}

std::optional<int64_t> SagaIdTimeMs(std::string_view id) {
  if (!IsSagaId(id)) return std::nullopt;
  uint64_t ms = 0;
  for (int i = 0; i < 10; ++i) ms = (ms << 5) | DecodeChar(id[i]);
  return static_cast<int64_t>(ms);
}

bool IsSagaId(std::string_view id) {
  if (id.size() != kSagaIdLength) return false;
  if (DecodeChar(id[0]) > 7) return false;  // 48-bit time fits in 10 chars
  for (char c : id) {
    if (DecodeChar(c) < 0) return false;
  }
  return true;
}

}  // namespace cde
