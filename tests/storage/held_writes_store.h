// HeldWritesStore: a store whose writes a test holds back, then lets
// through or fails, so that an engine's commit stays in flight as long as
// the test wants.
#ifndef CDE_TESTS_STORAGE_HELD_WRITES_STORE_H_
#define CDE_TESTS_STORAGE_HELD_WRITES_STORE_H_

#include <condition_variable>
#include <memory>
#include <mutex>

#include "tests/storage/store_wrapper.h"

namespace cde::test {

class HeldWritesStore : public StoreWrapper {
 public:
  explicit HeldWritesStore(std::unique_ptr<Store> target)
      : StoreWrapper(target.get()), owned_(std::move(target)) {}

  Status Write(std::span<const Transition* const> batch, bool sync) override {
    Status result = PassGate();
    if (!result.ok()) return result;
    return StoreWrapper::Write(batch, sync);
  }
  // The pipelined commit writer's write (engine.commit_pipeline): held the
  // same way, so that a commit stays in flight under either writer.
  Status WriteUnsynced(std::span<const Transition* const> batch) override {
    Status result = PassGate();
    if (!result.ok()) return result;
    return StoreWrapper::WriteUnsynced(batch);
  }

  void Hold() {
    std::lock_guard lock(mu_);
    hold_ = true;
  }
  // Lets the held writes (and all later ones) through, or fails them with
  // `status`.
  void Release(Status status = Status::OK()) {
    std::lock_guard lock(mu_);
    hold_ = false;
    fail_ = std::move(status);
    changed_.notify_all();
  }
  int waiting() {
    std::lock_guard lock(mu_);
    return waiting_;
  }

 private:
  // Waits while writes are held; then what the write returns, if not OK.
  Status PassGate() {
    std::unique_lock lock(mu_);
    ++waiting_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return !hold_; });
    --waiting_;
    return fail_;
  }

  std::unique_ptr<Store> owned_;
  std::mutex mu_;
  std::condition_variable changed_;
  bool hold_ = false;
  int waiting_ = 0;
  Status fail_;
};

}  // namespace cde::test

#endif  // CDE_TESTS_STORAGE_HELD_WRITES_STORE_H_
