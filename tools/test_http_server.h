// TestHttpServer: a small HTTP/1.1 server on 127.0.0.1 for tests, on plain
// POSIX sockets. Each connection is served on its own thread: it reads one
// request (headers and a Content-Length body), records it, waits the
// scripted delay, answers with the scripted status and body and closes the
// connection. Stop() (or the destructor) cuts delays short and joins every
// thread.
//
// Thread safety: every method may be called from any thread.
#ifndef CDE_TOOLS_TEST_HTTP_SERVER_H_
#define CDE_TOOLS_TEST_HTTP_SERVER_H_

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace cde {

class TestHttpServer {
 public:
  struct Request {
    std::string method;
    std::string path;                            // with any query string
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
    // The status it was answered with (or will be, after a scripted
    // delay): a 2xx means the service did what was asked.
    int status = 0;

    // The value of header `name` (any case), or "" when absent.
    std::string header(const std::string& name) const;
  };

  TestHttpServer() = default;
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;
  ~TestHttpServer() { Stop(); }

  // Listens on 127.0.0.1:`port` (0: an ephemeral port). Throws
  // std::runtime_error if it cannot.
  void Start(int port = 0);
  void Stop();

  int port() const { return port_; }
  // "http://127.0.0.1:<port>" + path.
  std::string url(const std::string& path) const;

  // Scripts the answer for `path` (matched without its query string).
  // Unscripted paths get 404. A body that is JSON is sent as
  // application/json, anything else as text/plain.
  void Respond(const std::string& path, int status, std::string body,
               int delay_ms = 0);

  // Answers the requests for `path` (matched without its query string) by
  // calling `handler`: the scripts of a server that keeps state (the demo
  // services). Handlers run one at a time under the server's lock, in
  // arrival order, and must not call the server.
  struct Answer {
    int status = 200;
    std::string body;
  };
  using Handler = std::function<Answer(const Request&)>;
  void Handle(const std::string& path, Handler handler);

  // Scripts a redirect: `status` (a 3xx) with a Location header.
  void Redirect(const std::string& path, const std::string& location,
                int status = 302);

  // Every complete request received so far, in arrival order.
  std::vector<Request> requests() const;
  // How many requests() there are, without copying them.
  size_t request_count() const;

  // Waits until every connection made before this call has been read to
  // the end of its request (or closed): after a client process has died,
  // requests() then holds everything it sent. False after `timeout_ms`.
  bool AwaitDrained(int timeout_ms = 30000);

 private:
  struct Script {
    int status = 404;
    std::string body = "not found";
    int delay_ms = 0;
    std::string location;  // sent as a Location header unless empty
  };

  void AcceptLoop();
  void Serve(int fd);
  bool ReadRequest(int fd, Request* request);

  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;

  mutable std::mutex mu_;
  std::condition_variable stopped_cv_;
  bool stopping_ = false;                    // GUARDED_BY(mu_)
  std::map<std::string, Script> scripts_;    // GUARDED_BY(mu_)
  std::map<std::string, Handler> handlers_;  // GUARDED_BY(mu_)
  std::vector<Request> requests_;            // GUARDED_BY(mu_)
  std::vector<std::thread> workers_;         // GUARDED_BY(mu_)
  std::vector<std::thread::id> finished_;    // GUARDED_BY(mu_): to be joined
  std::set<int> open_fds_;                   // GUARDED_BY(mu_)
  // Connections accepted whose request is not yet read (or given up).
  int reading_ = 0;  // GUARDED_BY(mu_)
  // AwaitDrained's own connection, by its local port: accepted after every
  // connection made before it, since the accept queue is in order.
  int drain_port_ = -1;          // GUARDED_BY(mu_)
  bool drain_accepted_ = false;  // GUARDED_BY(mu_)
  std::condition_variable drained_cv_;
};

}  // namespace cde

#endif  // CDE_TOOLS_TEST_HTTP_SERVER_H_
