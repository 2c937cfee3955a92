#include "tools/test_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace cde {
namespace {

std::string Lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\r") - begin + 1);
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 404:
      return "Not Found";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

void SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n =
        send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the client went away
    sent += static_cast<size_t>(n);
  }
}

}  // namespace

std::string TestHttpServer::Request::header(const std::string& name) const {
  const auto it = headers.find(Lower(name));
  return it == headers.end() ? "" : it->second;
}

void TestHttpServer::Start(int port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof(addr);
  const int on = 1;
  if (listen_fd_ >= 0 && port != 0) {
    // A fixed port can be taken again at once after a restart.
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  }
  if (listen_fd_ < 0 ||
      bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd_, 256) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    // Nothing to stop: Stop() (and so the destructor) must not join an
    // acceptor that never started.
    if (listen_fd_ >= 0) close(listen_fd_);
    listen_fd_ = -1;
    throw std::runtime_error("TestHttpServer: " + why);
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

void TestHttpServer::Stop() {
  if (listen_fd_ < 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    // Wakes the threads blocked in accept() and recv().
    shutdown(listen_fd_, SHUT_RDWR);
    for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
  }
  stopped_cv_.notify_all();
  acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    workers.swap(workers_);
  }
  for (std::thread& t : workers) t.join();
  close(listen_fd_);
  listen_fd_ = -1;
}

std::string TestHttpServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void TestHttpServer::Handle(const std::string& path, Handler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  handlers_[path] = std::move(handler);
}

void TestHttpServer::Respond(const std::string& path, int status,
                             std::string body, int delay_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  scripts_[path] = {status, std::move(body), delay_ms};
}

void TestHttpServer::Redirect(const std::string& path,
                              const std::string& location, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  scripts_[path] = {status, "", 0, location};
}

std::vector<TestHttpServer::Request> TestHttpServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

size_t TestHttpServer::request_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_.size();
}

bool TestHttpServer::AwaitDrained(int timeout_ms) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  // Bound first, so that its port is known before the acceptor can see it.
  if (fd < 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    drain_port_ = ntohs(addr.sin_port);
    drain_accepted_ = false;
  }
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  const bool connected =
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);  // sends nothing: its worker reads EOF at once
  if (!connected) return false;
  std::unique_lock<std::mutex> lock(mu_);
  const bool drained = drained_cv_.wait_for(
      lock, std::chrono::milliseconds(timeout_ms),
      [this] { return stopping_ || (drain_accepted_ && reading_ == 0); });
  drain_port_ = -1;
  return drained && !stopping_;
}

void TestHttpServer::AcceptLoop() {
  for (;;) {
    sockaddr_in peer = {};
    socklen_t peer_len = sizeof(peer);
    const int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer),
                           &peer_len, SOCK_CLOEXEC);
    if (fd < 0 && errno == EINTR) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (fd < 0 || stopping_) {
      if (fd >= 0) close(fd);
      drained_cv_.notify_all();
      return;
    }
    open_fds_.insert(fd);
    ++reading_;
    if (ntohs(peer.sin_port) == drain_port_) drain_accepted_ = true;
    // Reap the workers that are done, so a long run (a benchmark) does not
    // keep thousands of finished threads and their stacks around.
    for (const std::thread::id& id : finished_) {
      auto it =
          std::find_if(workers_.begin(), workers_.end(),
                       [&](const std::thread& t) { return t.get_id() == id; });
      if (it != workers_.end()) {
        it->join();
        workers_.erase(it);
      }
    }
    finished_.clear();
    workers_.emplace_back([this, fd] { Serve(fd); });
  }
}

void TestHttpServer::Serve(int fd) {
  Request request;
  const bool read = ReadRequest(fd, &request);
  std::unique_lock<std::mutex> lock(mu_);
  --reading_;
  drained_cv_.notify_all();
  if (read) {
    // Recorded and answered by the script of that moment, atomically: a
    // test that sees the request and then changes the script does not
    // change this answer.
    const std::string path = request.path.substr(0, request.path.find('?'));
    const auto it = scripts_.find(path);
    Script script = it == scripts_.end() ? Script{} : it->second;
    if (const auto h = handlers_.find(path); h != handlers_.end()) {
      Answer answer = h->second(request);
      script.status = answer.status;
      script.body = std::move(answer.body);
    }
    request.status = script.status;
    requests_.push_back(request);
    const bool stopped =
        stopped_cv_.wait_for(lock, std::chrono::milliseconds(script.delay_ms),
                             [this] { return stopping_; });
    lock.unlock();
    if (!stopped) {
      const bool is_json = nlohmann::json::accept(script.body);
      SendAll(
          fd,
          "HTTP/1.1 " + std::to_string(script.status) + " " +
              Reason(script.status) + "\r\nContent-Type: " +
              (is_json ? "application/json" : "text/plain") +
              (script.location.empty() ? ""
                                       : "\r\nLocation: " + script.location) +
              "\r\nContent-Length: " + std::to_string(script.body.size()) +
              "\r\nConnection: close\r\n\r\n" + script.body);
    }
  }
  if (!lock.owns_lock()) lock.lock();
  open_fds_.erase(fd);
  close(fd);
  finished_.push_back(std::this_thread::get_id());
}

bool TestHttpServer::ReadRequest(int fd, Request* request) {
  std::string data;
  char buf[8192];
  auto read_more = [&] {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) data.append(buf, static_cast<size_t>(n));
    return n > 0 || (n < 0 && errno == EINTR);
  };
  size_t end;
  while ((end = data.find("\r\n\r\n")) == std::string::npos) {
    if (!read_more()) return false;
  }
  std::istringstream head(data.substr(0, end));
  std::string line;
  std::getline(head, line);
  std::istringstream(line) >> request->method >> request->path;
  while (std::getline(head, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    request->headers[Lower(Trim(line.substr(0, colon)))] =
        Trim(line.substr(colon + 1));
  }
  const std::string length = request->header("Content-Length");
  const size_t body_size = length.empty() ? 0 : std::stoul(length);
  while (data.size() < end + 4 + body_size) {
    if (!read_more()) return false;
  }
  request->body = data.substr(end + 4, body_size);
  return true;
}

}  // namespace cde
