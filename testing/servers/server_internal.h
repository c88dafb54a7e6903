// What the server modules of this folder share; not part of the API.
//
// Finding a server's program (and saying which Debian package has it), running
// a helper program to its end, a folder for a server's files, the machine's
// cache of templates (made once per machine, never used half-written), and the
// servers shared by every test of a binary (started on first use, stopped at
// the end of the program, checked after each test).

#ifndef LIFECYCLE_TESTING_SERVERS_SERVER_INTERNAL_H_
#define LIFECYCLE_TESTING_SERVERS_SERVER_INTERNAL_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lifecycle/base_service.h"
#include "lifecycle/context.h"
#include "lifecycle/process_service.h"

namespace lifecycle_testing {
namespace servers_internal {

// OK if `program` can be run, else a NotFound error saying "`program` is not
// installed (Debian package `package`; tools/setup.sh installs it)", which
// `IsNotInstalled()` recognises.
absl::Status CheckInstalled(const std::string& program,
                            std::string_view package);
bool IsNotInstalled(const absl::Status& status);

// Runs `argv` (argv[0] a path or a name in PATH) as `user` (empty: as this
// process) until it ends, within `timeout`; an error with its last output
// lines unless it exits with status 0. Its output, when `output` is not null.
absl::Status RunToEnd(const std::vector<std::string>& argv,
                      const std::string& user = "",
                      absl::Duration timeout = absl::Seconds(120),
                      std::string* output = nullptr);

// "postgres" when this process runs as root and the server refuses root, else
// empty (this process's own user).
std::string UserForServersThatRefuseRoot();

// A new, empty folder for one server's files: in /dev/shm when the machine has
// it (copies and writes there take a tenth of the time they take on a disk),
// else under $TMPDIR or /tmp; owned by `user` when given. Its name carries this
// process's id: folders that processes which no longer exist left behind (a
// test killed with SIGKILL) are removed when a new one is made.
absl::StatusOr<std::string> NewServerDir(std::string_view kind,
                                         const std::string& user = "");
// Removes `path` and everything below it; errors are ignored.
void RemoveTree(const std::string& path);
// Copies the folder `from` to `to` (which must not exist), keeping owners
// and modes (`cp -a`).
absl::Status CopyTree(const std::string& from, const std::string& to);

// The machine's cache of server templates: $LIFECYCLE_SERVER_CACHE, else
// $XDG_CACHE_HOME/lifecycle/servers, else ~/.cache/lifecycle/servers of the
// user this process runs as (from the password database: Bazel replaces
// $HOME in tests).
std::string CacheRoot();

// The folder of the cache for `name` (a file name: server, version and a hash
// of what went into it): built by `build(dir)` into a fresh folder if missing,
// under a lock that other processes (test binaries, shards) wait on, and
// renamed into place only once `build` has succeeded, so a half-made template
// is never used. `build`'s error is returned, naming `name`.
absl::StatusOr<std::string> CachedTemplate(
    const std::string& name,
    absl::FunctionRef<absl::Status(const std::string& dir)> build);

// A 16-hex-digit hash of `text` (FNV-1a): cache keys.
std::string Fingerprint(std::string_view text);
// The contents of `path`, or an error naming it.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// A TCP port on 127.0.0.1 that nobody listened on a moment ago, for a server
// that cannot bind port 0 itself; `Readiness::TcpPort` then fails the start
// clearly if someone took it in between.
absl::StatusOr<int> PickFreeTcpPort();

// An HTTP/1.1 request to 127.0.0.1:`port` (`Connection: close`), answered
// within `timeout`: the status code and the body, or an error saying what
// failed. For the modules' clients (etcd's JSON gateway, nginx).
struct HttpReply {
  int status = 0;
  std::string body;
};
absl::StatusOr<HttpReply> HttpRequest(
    int port, std::string_view method, std::string_view path,
    std::string_view body = "", absl::Duration timeout = absl::Seconds(10));

// The thread ids and process ids of a running service tree: its workers'
// threads, and its programs' pids and guards'.
std::vector<pid_t> IdsOf(const lifecycle::Service& service);

// The server of this test binary for `key`: made by `make()` and started on
// the first call (waiting until it has started, within `timeout`), the same
// one (or the same start error) on every later call. Shared servers are
// stopped and destroyed at the end of the test program (GoogleTest's, or at
// exit); the leftover checks of leftover_threads.h pass over them; after each
// test `end_of_test()` (if given) is called and a non-empty text it returns
// fails the test (a database it did not release, ...).
absl::StatusOr<lifecycle::Service*> SharedServer(
    const std::string& key,
    absl::FunctionRef<std::unique_ptr<lifecycle::Service>()> make,
    absl::Duration timeout, std::function<std::string()> end_of_test = nullptr);

// Starts `process` (a child of a module's service) within `ctx`, waits until it
// is ready or has ended, and returns its start error, if any.
absl::Status StartProgram(lifecycle::ProcessService& process,
                          const lifecycle::Context& ctx);
// Waits until `ctx` is cancelled or `process` ends; stops it in the first case.
// The status of the run: OK after a stop, the program's error if it ended.
absl::Status RunProgram(lifecycle::ProcessService& process,
                        const lifecycle::Context& ctx);
// The error a program's run ended with (its snapshot's), or an error saying it
// ended without one while it should have run on.
absl::Status EndedWith(const lifecycle::ProcessService& process);

// What most modules are: one program, in a folder of its own made at the first
// start (and kept across restarts: supervision restarts it on its data),
// removed when the module is destroyed. The program is the module's child in
// the service tree ("redis/redis-server"); the module is started once the
// program is ready and `Ready()` has succeeded.
class ServerModule : public lifecycle::BaseService {
 public:
  // The folder; empty before the first start.
  std::string dir() const;

 protected:
  // `program` is checked at each start: missing, the start fails saying so and
  // naming `package` (see `CheckInstalled()`).
  ServerModule(std::string name, std::string program, std::string package);
  // Removes the folder: the most derived class calls `StopForDestruction()`
  // first, as every `BaseService` must.
  ~ServerModule() override;

  // Once, at the first start, in the new folder: a configuration, a template.
  virtual absl::Status Prepare(const std::string& /*dir*/) {
    return absl::OkStatus();
  }
  // The program to run in `dir`.
  virtual lifecycle::ProcessOptions Program(const std::string& dir) = 0;
  // At each start, once the program is ready: its version, seed data. An error
  // stops the program and fails the run.
  virtual absl::Status Ready() { return absl::OkStatus(); }
  // The owner of the folder (empty: this process's user).
  virtual std::string FolderOwner() const { return ""; }

  const std::string& program() const { return program_; }

 private:
  absl::Status OnStart(const lifecycle::Context& ctx) final;
  absl::Status Run(const lifecycle::Context& ctx,
                   absl::FunctionRef<void()> started) final;

  const std::string program_;
  const std::string package_;
  mutable absl::Mutex mu_;
  std::string dir_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<lifecycle::ProcessService> process_;  // OnStart(), Run()
};

}  // namespace servers_internal
}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_SERVERS_SERVER_INTERNAL_H_
