#include "engine/concurrency_slots.h"

#include <algorithm>

namespace cde {

bool ConcurrencySlots::TakeOrWait(const std::string& workflow,
                                  std::optional<uint32_t> limit,
                                  const std::string& saga_id) {
  uint32_t& running = running_[workflow];
  if (limit && running >= *limit) {
    waiting_[workflow].push_back(saga_id);
    return false;
  }
  ++running;
  return true;
}

void ConcurrencySlots::Hold(const std::string& workflow) {
  ++running_[workflow];
}

void ConcurrencySlots::Wait(const std::string& workflow,
                            const std::string& saga_id) {
  waiting_[workflow].push_back(saga_id);
}

void ConcurrencySlots::Free(const std::string& workflow) {
  uint32_t& running = running_[workflow];
  if (running > 0) --running;
}

void ConcurrencySlots::StopWaiting(const std::string& workflow,
                                   const std::string& saga_id) {
  auto it = waiting_.find(workflow);
  if (it == waiting_.end()) return;
  auto& q = it->second;
  q.erase(std::remove(q.begin(), q.end(), saga_id), q.end());
  if (q.empty()) waiting_.erase(it);
}

const std::string* ConcurrencySlots::Front(const std::string& workflow) const {
  auto it = waiting_.find(workflow);
  return it == waiting_.end() || it->second.empty() ? nullptr
                                                    : &it->second.front();
}

bool ConcurrencySlots::PromoteFront(const std::string& workflow,
                                    std::optional<uint32_t> limit) {
  uint32_t& running = running_[workflow];
  if (limit && running >= *limit) return false;
  ++running;
  DropFront(workflow);
  return true;
}

void ConcurrencySlots::DropFront(const std::string& workflow) {
  auto it = waiting_.find(workflow);
  if (it == waiting_.end()) return;
  it->second.pop_front();
  if (it->second.empty()) waiting_.erase(it);
}

std::vector<std::string> ConcurrencySlots::Waiting() const {
  std::vector<std::string> out;
  for (const auto& [workflow, q] : waiting_) out.push_back(workflow);
  return out;
}

uint64_t ConcurrencySlots::waiting_count() const {
  uint64_t n = 0;
  for (const auto& [workflow, q] : waiting_) n += q.size();
  return n;
}

}  // namespace cde
