// A small program that behaves like the servers process_service_test.cc
// starts: it notifies readiness late, never, or with an error; prints lines;
// listens on a socket; serves HTTP; ignores SIGTERM; forks a worker; exits.
// Its flags run in the order given, for example:
//
//   fake_server --print=booting --sleep-ms=50 --notify=READY=1 --wait
//
//   --print=TEXT         a line on stdout       --stderr=TEXT  a line on stderr
//   --print-bytes=N      N bytes of 'x' on stdout, no newline
//   --sleep-ms=N         sleep N milliseconds
//   --notify=MESSAGE     send MESSAGE (e.g. READY=1, STATUS=x, ERRNO=2) to
//                        $NOTIFY_SOCKET
//   --listen-unix=PATH   listen on a Unix socket (accepting, never answering)
//   --listen-tcp=PORT    listen on 127.0.0.1:PORT
//   --http=CODE          answer every connection of --listen-tcp with CODE
//   --ignore-sigterm     ignore SIGTERM from here on
//   --fork-worker=FILE   fork a child that sleeps forever; write its pid
//   --fork-escapee=FILE  the same, in a session and process group of its own
//                        (as a daemon's child is), once it is there; write
//                        its pid
//   --pid-file=FILE      write this process's pid
//   --exit=CODE          exit now with CODE
//   --crash              abort()
//   --wait               wait until SIGTERM, then exit 0 (the default end)

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

volatile sig_atomic_t terminated = 0;
void OnTerm(int) { terminated = 1; }

bool Flag(const std::string& arg, const char* name, std::string* value) {
  std::string prefix = std::string("--") + name + "=";
  if (arg.compare(0, prefix.size(), prefix) != 0) return false;
  *value = arg.substr(prefix.size());
  return true;
}

void WriteFile(const std::string& file, long value) {
  FILE* f = std::fopen(file.c_str(), "w");
  if (f == nullptr) return;
  std::fprintf(f, "%ld\n", value);
  std::fclose(f);
}

void Notify(const std::string& message) {
  const char* name = std::getenv("NOTIFY_SOCKET");
  if (name == nullptr) {
    std::fprintf(stderr, "fake_server: no NOTIFY_SOCKET\n");
    return;
  }
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  size_t length = std::strlen(name);
  if (length >= sizeof(a.sun_path)) return;
  std::memcpy(a.sun_path, name, length);
  if (name[0] == '@') a.sun_path[0] = '\0';  // abstract
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sendto(fd, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&a),
         static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length));
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGTERM, OnTerm);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::vector<int> listeners;
  int tcp = -1;
  std::string http_code;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (Flag(arg, "print", &value)) {
      std::printf("%s\n", value.c_str());
    } else if (Flag(arg, "stderr", &value)) {
      std::fprintf(stderr, "%s\n", value.c_str());
    } else if (Flag(arg, "sleep-ms", &value)) {
      usleep(static_cast<useconds_t>(std::atoi(value.c_str())) * 1000);
    } else if (Flag(arg, "notify", &value)) {
      Notify(value);
    } else if (Flag(arg, "listen-unix", &value)) {
      int fd = socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, value.c_str(), sizeof(a.sun_path) - 1);
      unlink(value.c_str());
      if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
          listen(fd, 16) != 0) {
        std::perror("fake_server: listen-unix");
        return 3;
      }
      listeners.push_back(fd);
    } else if (Flag(arg, "listen-tcp", &value)) {
      tcp = socket(AF_INET, SOCK_STREAM, 0);
      int one = 1;
      setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(std::atoi(value.c_str())));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (bind(tcp, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
          listen(tcp, 16) != 0) {
        std::perror("fake_server: listen-tcp");
        return 3;
      }
    } else if (Flag(arg, "print-bytes", &value)) {
      std::string chunk(65536, 'x');
      for (long left = std::atol(value.c_str()); left > 0;) {
        size_t n = static_cast<size_t>(
            std::min(left, static_cast<long>(chunk.size())));
        std::fwrite(chunk.data(), 1, n, stdout);
        left -= static_cast<long>(n);
      }
      std::fflush(stdout);
    } else if (Flag(arg, "http", &value)) {
      http_code = value;
    } else if (arg == "--ignore-sigterm") {
      signal(SIGTERM, SIG_IGN);
    } else if (Flag(arg, "fork-worker", &value)) {
      pid_t worker = fork();
      if (worker == 0) {
        signal(SIGTERM, SIG_IGN);  // only the group's SIGKILL ends it
        while (true) pause();
      }
      WriteFile(value, worker);
    } else if (Flag(arg, "fork-escapee", &value)) {
      // Goes on only once the child has left the group, so that what follows
      // (an exit, READY=1) never races its setsid().
      int left[2];
      if (pipe(left) != 0) return 3;
      pid_t escapee = fork();
      if (escapee == 0) {
        setsid();  // out of the program's process group
        signal(SIGTERM, SIG_IGN);
        close(left[0]);
        close(left[1]);  // says it left
        while (true) pause();
      }
      close(left[1]);
      char c;
      while (read(left[0], &c, 1) < 0 && errno == EINTR) {
      }
      close(left[0]);
      WriteFile(value, escapee);
    } else if (Flag(arg, "pid-file", &value)) {
      WriteFile(value, getpid());
    } else if (Flag(arg, "exit", &value)) {
      return std::atoi(value.c_str());
    } else if (arg == "--crash") {
      std::abort();
    } else if (arg == "--wait") {
      break;
    } else {
      std::fprintf(stderr, "fake_server: unknown flag %s\n", arg.c_str());
      return 2;
    }
  }
  // Wait for SIGTERM, answering HTTP if asked to.
  while (!terminated) {
    if (tcp >= 0 && !http_code.empty()) {
      pollfd p{tcp, POLLIN, 0};
      if (poll(&p, 1, 100) == 1) {
        int c = accept(tcp, nullptr, nullptr);
        if (c >= 0) {
          char buffer[1024];
          if (read(c, buffer, sizeof(buffer)) < 0) {
          }
          std::string answer =
              "HTTP/1.0 " + http_code + " X\r\nContent-Length: 0\r\n\r\n";
          if (write(c, answer.data(), answer.size()) < 0) {
          }
          close(c);
        }
      }
    } else {
      poll(nullptr, 0, 50);  // not pause(): a SIGTERM before it would be lost
    }
  }
  return 0;
}
