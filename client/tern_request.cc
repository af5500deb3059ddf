// tern request and tern reply.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>

#include "tern_cli.h"

namespace tern::tool {
namespace {

constexpr std::chrono::milliseconds kDefaultRequestTimeout{5000};
// The longest request timeout the client takes (32 bits of milliseconds).
constexpr std::chrono::milliseconds kMaxRequestTimeout{
    std::numeric_limits<uint32_t>::max()};

struct RequestArgs {
  std::string topic;
  std::string message;
  std::optional<std::chrono::milliseconds> timeout;
};

struct ReplyArgs {
  std::string topic;
  std::string exec;  // the shell command
  std::string subscription = "responders";
  std::optional<uint64_t> count;  // unset: until interrupted
};

// --- request ---

int run_request(const std::string& server, const RequestArgs& args) {
  ClientOptions options;
  options.client_name = "tern-cli";
  auto client = connect(server, options);
  Message reply = client->request(
      args.topic, args.message, args.timeout.value_or(kDefaultRequestTimeout));
  if (std::fwrite(reply.payload.data(), 1, reply.payload.size(), stdout) !=
          reply.payload.size() ||
      std::fputc('\n', stdout) == EOF || std::fflush(stdout) != 0) {
    throw std::runtime_error(std::string("cannot write to standard output: ") +
                             std::strerror(errno));
  }
  return 0;
}

void add_request(CLI::App* tern, Run* run) {
  auto args = std::make_shared<RequestArgs>();
  CLI::App* request =
      tern->add_subcommand("request", "send a request and print the reply");
  request->add_option("TOPIC", args->topic, "the topic the responders serve")
      ->required();
  request->add_option("MESSAGE", args->message, "the request's payload")
      ->required();
  add_duration_option(request, "--timeout", kMaxRequestTimeout, &args->timeout,
                      "how long to wait for the reply: a whole number\n"
                      "with ms, s, m, h or d (default: " +
                          cli::format_duration(kDefaultRequestTimeout) + ")");
  request->footer(
      "Publishes MESSAGE to TOPIC as a request and prints the reply's\n"
      "payload. Exits 1 if no reply comes within the timeout, or if the\n"
      "responder failed.");
  on_run(request, run, [args](const std::string& server) {
    return run_request(server, *args);
  });
}

// --- reply ---

// Runs `command` with /bin/sh -c, `input` on its standard input, and returns
// its standard output. Its stderr is ours. Throws std::runtime_error, which
// the Responder sends back as tern-error, if it cannot be run or does not
// exit with status 0.
std::string run_shell(const std::string& command, const std::string& input) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  if (::pipe2(out, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(in[0]);
    ::close(in[1]);
    throw std::runtime_error(std::string("pipe: ") + std::strerror(err));
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec, since the parent
    // has other threads (the client's reader). dup2 clears O_CLOEXEC on 0
    // and 1; SIGPIPE, ignored by the parent, is the default again.
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::signal(SIGPIPE, SIG_DFL);
    ::execl("/bin/sh", "sh", "-c", command.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int fork_errno = errno;
  ::close(in[0]);
  ::close(out[1]);
  if (pid < 0) {
    ::close(in[1]);
    ::close(out[0]);
    throw std::runtime_error(std::string("cannot run command: fork: ") +
                             std::strerror(fork_errno));
  }

  // Feed stdin and drain stdout together: a command that writes a lot before
  // reading everything would otherwise block us both.
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  size_t written = 0;
  if (input.empty()) {
    ::close(in[1]);
    in[1] = -1;
  }
  std::string output;
  char buf[64 * 1024];
  while (out[0] >= 0) {
    pollfd fds[2] = {{out[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
    if (::poll(fds, in[1] >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (in[1] >= 0 && fds[1].revents != 0) {
      ssize_t n =
          ::write(in[1], input.data() + written, input.size() - written);
      if (n > 0) written += size_t(n);
      // Done, or the command stopped reading (EPIPE): it gets EOF either way.
      if (written == input.size() ||
          (n < 0 && errno != EAGAIN && errno != EINTR)) {
        ::close(in[1]);
        in[1] = -1;
      }
    }
    if (fds[0].revents != 0) {
      ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n > 0) {
        output.append(buf, size_t(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(out[0]);
        out[0] = -1;
      }
    }
  }
  if (in[1] >= 0) ::close(in[1]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) {
    throw std::runtime_error("command killed by signal " +
                             std::to_string(WTERMSIG(status)));
  }
  if (WEXITSTATUS(status) != 0) {
    throw std::runtime_error("command exited with status " +
                             std::to_string(WEXITSTATUS(status)));
  }
  // Like $(...) in the shell, but only one newline: "echo hi" replies "hi".
  if (!output.empty() && output.back() == '\n') output.pop_back();
  return output;
}

volatile sig_atomic_t g_stop = 0;
void on_stop_signal(int) { g_stop = 1; }

int run_reply(const std::string& server, const ReplyArgs& args) {
  // Stop between requests on SIGINT / SIGTERM, so the one being handled is
  // answered and acked rather than left to time out.
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  // A command that exits without reading its input must not kill us.
  ::signal(SIGPIPE, SIG_IGN);

  ClientOptions options;
  options.client_name = "tern-cli";
  auto client = connect(server, options);
  Responder responder = client->respond(
      args.topic,
      [&args](const Message& request) {
        return run_shell(args.exec, request.payload);
      },
      args.subscription);
  uint64_t served = 0;
  // Short waits, so a signal is noticed soon.
  while (!g_stop && (!args.count || served < *args.count)) {
    if (responder.serve_one(std::chrono::milliseconds(200))) ++served;
  }
  std::fprintf(stderr, "answered %llu request%s on %s\n",
               (unsigned long long)served, served == 1 ? "" : "s",
               args.topic.c_str());
  return 0;
}

void add_reply(CLI::App* tern, Run* run) {
  auto args = std::make_shared<ReplyArgs>();
  CLI::App* reply =
      tern->add_subcommand("reply", "answer requests with the output of CMD");
  reply->add_option("TOPIC", args->topic, "the topic to serve")->required();
  add_text_option(reply, "--exec", &args->exec,
                  "the command that answers each request")
      ->type_name("CMD")
      ->required();
  add_text_option(reply, "--subscription", &args->subscription,
                  "durable subscription the responders share\n"
                  "(default: " +
                      args->subscription + ")")
      ->type_name("NAME");
  add_count_option(reply, "--count", std::numeric_limits<uint64_t>::max(),
                   &args->count, "exit after answering N requests");
  reply->footer(
      "Answers the requests sent to TOPIC (e.g. by 'tern request'). For each\n"
      "one, runs CMD with /bin/sh -c, the request's payload on its standard\n"
      "input, and replies with its standard output (less one trailing\n"
      "newline). If CMD exits with a status other than 0, the requester gets\n"
      "the error \"command exited with status N\". Runs until --count\n"
      "requests are answered, or until interrupted (SIGINT, SIGTERM).");
  on_run(reply, run, [args](const std::string& server) {
    return run_reply(server, *args);
  });
}

}  // namespace

void add_request_commands(CLI::App* tern, Run* run) {
  add_request(tern, run);
  add_reply(tern, run);
}

}  // namespace tern::tool
