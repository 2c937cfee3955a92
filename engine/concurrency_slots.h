// ConcurrencySlots: a workflow's max_concurrency. Each running saga of a
// workflow holds one of its slots (a dormant one too: it is still running,
// only not in memory); a saga that starts when all are taken waits in the
// workflow's FIFO, and the oldest waiting saga takes the next slot freed.
//
// The slots decide; the engine commits the dequeue of the saga that got
// one. Thread safety: loop thread only.
#ifndef CDE_ENGINE_CONCURRENCY_SLOTS_H_
#define CDE_ENGINE_CONCURRENCY_SLOTS_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cde {

class ConcurrencySlots {
 public:
  // A saga of `workflow` starts: takes a slot if fewer than `limit` hold one
  // (no limit: always), else waits in the FIFO. True if it took a slot.
  bool TakeOrWait(const std::string& workflow, std::optional<uint32_t> limit,
                  const std::string& saga_id);
  // A saga that holds its slot whatever the limit says now (a recovered
  // running or dormant saga, a replayed one).
  void Hold(const std::string& workflow);
  // A recovered saga that was waiting for a slot waits again, in order.
  void Wait(const std::string& workflow, const std::string& saga_id);
  // A saga that held a slot has ended.
  void Free(const std::string& workflow);
  // A waiting saga ended before it got a slot.
  void StopWaiting(const std::string& workflow, const std::string& saga_id);

  // The oldest waiting saga of `workflow`, if any (it still waits).
  const std::string* Front(const std::string& workflow) const;
  // Gives the front a slot if fewer than `limit` hold one: true, and it no
  // longer waits. False: it waits on.
  bool PromoteFront(const std::string& workflow, std::optional<uint32_t> limit);
  // The front no longer waits for anything (it finished meanwhile).
  void DropFront(const std::string& workflow);

  // Workflows with sagas waiting.
  std::vector<std::string> Waiting() const;
  uint64_t waiting_count() const;

 private:
  std::map<std::string, uint32_t> running_;
  std::map<std::string, std::deque<std::string>> waiting_;
};

}  // namespace cde

#endif  // CDE_ENGINE_CONCURRENCY_SLOTS_H_
