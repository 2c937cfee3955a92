#include "storage/commit_writer.h"

#include <vector>

namespace cde {

CommitWriter::CommitWriter(Store* store, CommitWriterOptions options)
    : store_(store), options_(options), thread_([this] { Run(); }) {}

CommitWriter::~CommitWriter() { Stop(); }

void CommitWriter::Enqueue(Transition transition, Done done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back({std::move(transition), std::move(done)});
      ++stats_.queued;
      // Only the writer waits on work_, and it rechecks the queue under mu_.
      if (queue_.size() == 1) work_.notify_one();
      return;
    }
  }
  done(Status::ShutdownInProgress("commit writer is stopped"));
}

void CommitWriter::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_.notify_one();
  if (thread_.joinable()) thread_.join();
}

CommitWriterStats CommitWriter::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void CommitWriter::Run() {
  std::vector<Waiter> group;
  std::vector<const Transition*> batch;
  for (;;) {
    size_t bytes = 0;
    {
      std::unique_lock lock(mu_);
      work_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is written
      while (!queue_.empty()) {
        const size_t next = queue_.front().transition.ByteSize();
        if (!group.empty() && bytes + next > options_.max_batch_bytes) break;
        bytes += next;
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      stats_.queued -= group.size();
      stats_.groups += 1;
      stats_.transitions += group.size();
      stats_.bytes += bytes;
      if (group.size() > stats_.largest_group) {
        stats_.largest_group = group.size();
      }
    }
    // The lock is released for the write: callers keep enqueuing, and their
    // transitions form the next group while this one syncs.
    batch.clear();
    for (const Waiter& w : group) batch.push_back(&w.transition);
    const Status status = store_->Write(batch, options_.sync);
    if (options_.on_group_written) {
      options_.on_group_written(group.size(), bytes);
    }
    for (Waiter& w : group) w.done(status);
    group.clear();
  }
}

}  // namespace cde
