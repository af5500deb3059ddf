#include "broker_process.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace tern::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kStartTimeout = std::chrono::seconds(10);
constexpr auto kPollInterval = std::chrono::milliseconds(10);

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// The last part of a log, enough to see why a broker failed.
std::string tail(const std::string& text, size_t max_bytes = 4000) {
  if (text.size() <= max_bytes) return text;
  return "..." + text.substr(text.size() - max_bytes);
}

// fork + execv with the given descriptors as stdin/stdout/stderr. Everything
// the child touches is prepared before fork(): the test process has client
// threads, so the child may only make async-signal-safe calls before exec.
pid_t spawn(const std::vector<std::string>& argv, int in_fd, int out_fd,
            int err_fd) {
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0)
    throw std::runtime_error(std::string("fork: ") + strerror(errno));
  if (pid == 0) {
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    // Sockets of the test's clients must not live on in the broker.
    close_range(3, ~0U, 0);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(args[0], args.data());
    const char msg[] = "exec failed\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
  }
  return pid;
}

// RAII for a descriptor the parent only needs until spawn() returns.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int open_or_throw(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::runtime_error("open " + path + ": " + strerror(errno));
  }
  return fd;
}

}  // namespace

std::string broker_binary() {
  return env_or("TERN_BROKER", "build/tern-broker");
}

pid_t start_program(const std::vector<std::string>& argv,
                    const std::string& log_path) {
  Fd in(open_or_throw("/dev/null", O_RDONLY));
  Fd log(open_or_throw(log_path, O_WRONLY | O_CREAT | O_APPEND));
  return spawn(argv, in.get(), log.get(), log.get());
}

int wait_program(pid_t pid, std::chrono::milliseconds timeout) {
  int status = 0;
  auto deadline = Clock::now() + timeout;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (Clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  return exit_code_of(status);
}
std::string cli_binary() { return env_or("TERN_CLI", "build/tern"); }

uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw std::runtime_error(std::string("bind: ") + strerror(errno));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

int connect_tcp(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return -1;
  std::string host = address.substr(0, colon);
  if (host != "127.0.0.1") return -1;  // tests only ever talk to loopback
  int port = std::atoi(address.c_str() + colon + 1);
  if (port <= 0 || port > 65535) return -1;

  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string make_temp_dir(const std::string& prefix) {
  std::string pattern = "/tmp/" + prefix + "-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    throw std::runtime_error(std::string("mkdtemp: ") + strerror(errno));
  }
  return buf.data();
}

void remove_tree(const std::string& path) {
  // Only ever delete what make_temp_dir() made.
  if (path.rfind("/tmp/", 0) != 0 || path.find("..") != std::string::npos) {
    return;
  }
  nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) {
        remove(p);
        return 0;
      },
      16, FTW_DEPTH | FTW_PHYS);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

RunResult run_program(const std::vector<std::string>& argv,
                      const std::string& input,
                      std::chrono::milliseconds timeout) {
  std::string dir = make_temp_dir("tern-run");
  RunResult result;
  try {
    std::string in_path = dir + "/stdin";
    {
      std::ofstream in(in_path, std::ios::binary);
      in << input;
    }
    pid_t pid;
    {
      Fd in(open_or_throw(in_path, O_RDONLY));
      Fd out(open_or_throw(dir + "/stdout", O_WRONLY | O_CREAT | O_TRUNC));
      Fd err(open_or_throw(dir + "/stderr", O_WRONLY | O_CREAT | O_TRUNC));
      pid = spawn(argv, in.get(), out.get(), err.get());
    }
    result.exit_code = wait_program(pid, timeout);
    result.timed_out = result.exit_code == -1;
    result.out = read_file(dir + "/stdout");
    result.err = read_file(dir + "/stderr");
  } catch (...) {
    remove_tree(dir);
    throw;
  }
  remove_tree(dir);
  return result;
}

std::vector<Message> receive(Subscription& sub, size_t max,
                             std::chrono::milliseconds idle,
                             std::chrono::milliseconds total, bool ack) {
  std::vector<Message> got;
  auto deadline = Clock::now() + total;
  while (got.size() < max && Clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    auto message = sub.next(std::min(idle, left));
    if (!message) break;
    if (ack) sub.ack(*message);
    got.push_back(std::move(*message));
  }
  return got;
}

SubscribeOptions durable(const std::string& topic, const std::string& name,
                         uint32_t prefetch) {
  SubscribeOptions options;
  options.topic = topic;
  options.subscription = name;
  options.start = StartPosition::kEarliest;
  options.prefetch = prefetch;
  return options;
}

std::vector<Message> read_topic(const std::string& address,
                                const std::string& topic,
                                std::chrono::milliseconds idle) {
  static int readers = 0;
  auto client = Client::connect(address);
  SubscribeOptions options;
  options.topic = topic;
  options.subscription =
      "reader-" + std::to_string(getpid()) + "-" + std::to_string(++readers);
  options.start = StartPosition::kEarliest;
  auto sub = client->subscribe(options);
  return receive(sub, SIZE_MAX, idle, std::chrono::seconds(30));
}

// --- BrokerProcess ---

BrokerProcess::BrokerProcess(BrokerOptions options)
    : options_(std::move(options)) {
  work_dir_ = make_temp_dir("tern-itest");
  data_dir_ =
      options_.data_dir.empty() ? work_dir_ + "/data" : options_.data_dir;
  log_path_ = work_dir_ + "/broker.stderr";
  try {
    port_ = free_port();
    restart();
  } catch (...) {
    remove_tree(work_dir_);
    throw;
  }
}

BrokerProcess::~BrokerProcess() {
  // A clean shutdown at the end of every test is one more check: a broker
  // that crashed, hangs on SIGTERM or (in a sanitizer build) leaks or hit
  // undefined behaviour fails the test that was using it.
  if (pid_ > 0) {
    int code = stop(std::chrono::seconds(5));
    if (code != 0) {
      FAIL_CHECK("broker did not exit cleanly at the end of the test (exit "
                 << code << "); stderr:\n"
                 << tail(log()));
    }
  }
  std::string text = log();
  if (text.find("Sanitizer") != std::string::npos ||
      text.find("runtime error:") != std::string::npos) {
    FAIL_CHECK("sanitizer report in the broker's stderr:\n" << tail(text));
  }
  remove_tree(work_dir_);
}

std::string BrokerProcess::address() const {
  return "127.0.0.1:" + std::to_string(port_);
}

std::string BrokerProcess::log() const { return read_file(log_path_); }

void BrokerProcess::reap(int* status) {
  waitpid(pid_, status, 0);
  pid_ = -1;
}

bool BrokerProcess::try_start() {
  std::vector<std::string> argv = {broker_binary(), "--listen", address(),
                                   "--data",        data_dir_,  "--fsync",
                                   options_.fsync,  "--http",   options_.http};
  argv.insert(argv.end(), options_.extra_args.begin(),
              options_.extra_args.end());
  if (access(argv[0].c_str(), X_OK) != 0) {
    throw std::runtime_error("broker binary not found: " + argv[0] +
                             " (set TERN_BROKER)");
  }
  {
    Fd in(open_or_throw("/dev/null", O_RDONLY));
    Fd err(open_or_throw(log_path_, O_WRONLY | O_CREAT | O_APPEND));
    pid_ = spawn(argv, in.get(), err.get(), err.get());
  }

  auto deadline = Clock::now() + kStartTimeout;
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    int fd = connect_tcp(address());
    if (fd >= 0) {
      close(fd);
      return true;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  kill9();
  throw std::runtime_error("broker did not accept connections on " + address() +
                           " within 10 s; stderr:\n" + tail(log()));
}

void BrokerProcess::restart_on_same_port(std::chrono::milliseconds patience) {
  if (pid_ > 0) stop();
  auto deadline = std::chrono::steady_clock::now() + patience;
  while (!try_start()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error("port " + std::to_string(port_) +
                               " still taken after a restart; stderr:\n" +
                               tail(log()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void BrokerProcess::restart() {
  if (pid_ > 0) stop();
  // The old port is normally free again at once; if something else took it,
  // the broker exits early and a fresh port is tried.
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0) port_ = free_port();
    if (try_start()) return;
  }
  throw std::runtime_error(
      "broker exited during startup (3 attempts); stderr:\n" + tail(log()));
}

int BrokerProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  auto deadline = Clock::now() + grace;
  while (Clock::now() < deadline) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return exit_code_of(status);
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  kill(pid_, SIGKILL);
  reap(&status);
  return exit_code_of(status);
}

void BrokerProcess::kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  reap(&status);
}

std::string users_file(const std::string& dir, const std::string& name,
                       const std::string& password, const std::string& rules) {
  RunResult hash = run_program({broker_binary(), "hash-password"},
                               password + "\n", std::chrono::seconds(20));
  REQUIRE(hash.exit_code == 0);
  std::string path = dir + "/users.toml";
  std::ofstream(path) << "[users." << name << "]\npassword = \""
                      << hash.out.substr(0, hash.out.find('\n')) << "\"\n"
                      << rules << "\n";
  return path;
}

}  // namespace tern::test
