// Inbox: how results reach the loop thread from anywhere. Actions complete
// on any thread, possibly after the engine has shut down; they hold a
// shared_ptr to the inbox, and a push after Close() is dropped instead of
// touching a closed handle.
#ifndef CDE_ENGINE_INBOX_H_
#define CDE_ENGINE_INBOX_H_

#include <uv.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace cde {

class Inbox : public std::enable_shared_from_this<Inbox> {
 public:
  using Item = std::function<void()>;  // runs on the loop thread

  // REQUIRES: on the loop thread. The inbox owns its uv_async_t; Close()
  // must be called before the loop closes.
  static std::shared_ptr<Inbox> Create(uv_loop_t* loop);

  // Any thread. Dropped after Close().
  void Post(Item item);
  // Loop thread: runs the items posted so far now, rather than in the
  // loop's next pass (their async callback then finds fewer or none).
  void RunPosted();
  // Loop thread. Runs `on_closed` once the handle is closed.
  void Close(std::function<void()> on_closed);

 private:
  Inbox() = default;
  static void OnAsync(uv_async_t* handle);
  static void OnClose(uv_handle_t* handle);

  uv_async_t async_;
  std::mutex mu_;
  bool open_ = true;         // GUARDED_BY(mu_)
  std::vector<Item> items_;  // GUARDED_BY(mu_)
  // Loop thread: the emptied list of the last run, swapped in for the next,
  // so that neither side allocates a list for every run.
  std::vector<Item> spare_;
  std::function<void()> on_closed_;
  std::shared_ptr<Inbox> self_;  // keeps the handle alive until it closes
};

}  // namespace cde

#endif  // CDE_ENGINE_INBOX_H_
