#include "engine/inbox.h"

namespace cde {

std::shared_ptr<Inbox> Inbox::Create(uv_loop_t* loop) {
  std::shared_ptr<Inbox> inbox(new Inbox());
  uv_async_init(loop, &inbox->async_, &Inbox::OnAsync);
  inbox->async_.data = inbox.get();
  inbox->self_ = inbox;
  return inbox;
}

void Inbox::Post(Item item) {
  std::lock_guard lock(mu_);
  if (!open_) return;
  items_.push_back(std::move(item));
  // Under the lock, so Close() cannot close the handle in between.
  uv_async_send(&async_);
}

void Inbox::OnAsync(uv_async_t* handle) {
  static_cast<Inbox*>(handle->data)->RunPosted();
}

void Inbox::RunPosted() {
  std::vector<Item> items;
  items.swap(spare_);  // empty; a nested run finds no spare and allocates
  {
    std::lock_guard lock(mu_);
    if (!items_.empty()) items.swap(items_);
  }
  for (Item& item : items) item();
  items.clear();
  if (items.capacity() > spare_.capacity()) spare_.swap(items);
}

void Inbox::Close(std::function<void()> on_closed) {
  {
    std::lock_guard lock(mu_);
    open_ = false;
    items_.clear();
  }
  on_closed_ = std::move(on_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), &Inbox::OnClose);
}

void Inbox::OnClose(uv_handle_t* handle) {
  auto* self = static_cast<Inbox*>(handle->data);
  auto keep = std::move(self->self_);  // may be the last reference
  if (self->on_closed_) self->on_closed_();
}

}  // namespace cde
