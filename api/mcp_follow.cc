// One follower per session and saga (SagaFollower): the engine watch that
// waits, resource subscriptions, task status and tasks/result share, and
// the dispatch of each committed change to the parts that follow it.
#include "api/mcp_session.h"

namespace cde {

SagaFollower& McpSession::FollowerOf(const std::string& saga_id) {
  auto [it, made] = followers_.try_emplace(saga_id);
  if (made) {
    std::weak_ptr<McpSession> weak = weak_from_this();
    it->second.watch = WatchSaga(saga_id, [weak, saga_id](const Saga& saga) {
      auto self = weak.lock();
      if (self && !self->closed_) self->OnSagaChange(saga_id, saga);
    });
  }
  return it->second;
}

Status McpSession::MayFollow(const std::string& saga_id) const {
  if (!saga_id.empty() && followers_.count(saga_id) != 0) return Status::OK();
  // A waiting start follows its saga once the start is durable.
  const size_t most = options_.max_followed_sagas;
  if (followers_.size() + waiting_calls_.size() < most) return Status::OK();
  return Status::Busy(
      "this session already follows " + std::to_string(most) +
      " sagas (waits, subscriptions, tasks), the most one session may: "
      "unsubscribe, or let some end, before following another");
}

void McpSession::DropIfIdle(const std::string& saga_id) {
  auto it = followers_.find(saga_id);
  if (it == followers_.end() || !it->second.Idle()) return;
  UnwatchSaga(it->second.watch);
  followers_.erase(it);
}

void McpSession::OnSagaChange(const std::string& saga_id, const Saga& saga) {
  // Each part may answer, notify (and so close the session) or drop the
  // follower: it is looked up again before the next.
  auto follower = [&]() -> SagaFollower* {
    if (closed_) return nullptr;
    auto it = followers_.find(saga_id);
    return it == followers_.end() ? nullptr : &it->second;
  };
  if (SagaFollower* f = follower()) {
    f->state = saga.state;
    if (f->steps) OnFollowedChange(saga_id, saga);
  }
  if (SagaFollower* f = follower(); f && f->subscribed) {
    const std::set<std::string> uris = f->uris;
    for (const std::string& uri : uris) {
      if (closed_) return;
      Notify("notifications/resources/updated", {{"uri", uri}});
    }
  }
  if (follower()) OnTaskChange(saga_id, saga);
  if (follower()) DropIfIdle(saga_id);
}

bool McpSession::busy() const {
  if (!waiting_calls_.empty()) return true;
  for (const auto& [saga_id, f] : followers_) {
    if (!f.task_status.empty() || !f.result_waiters.empty()) return true;
  }
  return false;
}

}  // namespace cde
