#include "lifecycle/testing/servers/postgres.h"

#include <glob.h>
#include <postgresql/libpq-fe.h>
#include <signal.h>

#include <algorithm>
#include <deque>
#include <set>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "lifecycle/signal.h"
#include "lifecycle/testing/servers/server_internal.h"

namespace lifecycle_testing {
namespace servers_internal {

// What a server and the databases it handed out share: a database may outlive
// its server (it then does nothing).
struct PostgresCore {
  absl::Mutex mu;
  std::string socket_dir ABSL_GUARDED_BY(mu);
  std::string path ABSL_GUARDED_BY(mu);  // the server's, for errors
  std::string version ABSL_GUARDED_BY(mu);
  bool running ABSL_GUARDED_BY(mu) = false;
  int64_t next ABSL_GUARDED_BY(mu) = 0;
  std::deque<std::string> pool ABSL_GUARDED_BY(mu);      // made, not handed out
  std::set<std::string> in_use ABSL_GUARDED_BY(mu);      // handed out
  std::vector<std::string> to_drop ABSL_GUARDED_BY(mu);  // released
  lifecycle::Signal wake ABSL_GUARDED_BY(mu);  // closed when there is work

  std::string NextName() {
    absl::MutexLock lock(&mu);
    return absl::StrCat("test_", ++next);
  }
  std::string SocketDir() {
    absl::MutexLock lock(&mu);
    return socket_dir;
  }
  void Release(const std::string& name) {
    absl::MutexLock lock(&mu);
    if (in_use.erase(name) == 0) return;
    to_drop.push_back(name);
    wake.Close();
  }
  bool InUse(const std::string& name) {
    absl::MutexLock lock(&mu);
    return in_use.count(name) != 0;
  }
  // After each test of a shared server: databases still handed out.
  std::string EndOfTest() {
    absl::MutexLock lock(&mu);
    if (in_use.empty()) return "";
    std::vector<std::string> left(in_use.begin(), in_use.end());
    to_drop.insert(to_drop.end(), left.begin(), left.end());
    in_use.clear();
    wake.Close();
    return absl::StrCat("kept ", left.size(), " database(s) of the shared ",
                        path,
                        " past its end (a PostgresDatabase not released): ",
                        absl::StrJoin(left, ", "), "; they were dropped");
  }
};

}  // namespace servers_internal

namespace {

using servers_internal::PostgresCore;

constexpr char kTemplateDatabase[] = "lifecycle_template";

// The newest /usr/lib/postgresql/N/bin, or N=15's if none is installed (then
// the start says it is missing).
std::string PostgresBin() {
  glob_t found{};
  std::string best = "/usr/lib/postgresql/15/bin";
  int best_version = -1;
  if (glob("/usr/lib/postgresql/*/bin/postgres", 0, nullptr, &found) == 0) {
    for (size_t i = 0; i < found.gl_pathc; ++i) {
      std::string path = found.gl_pathv[i];
      absl::string_view version = path;
      absl::ConsumePrefix(&version, "/usr/lib/postgresql/");
      version = version.substr(0, version.find('/'));
      int n;
      if (absl::SimpleAtoi(version, &n) && n > best_version) {
        best_version = n;
        best = path.substr(0, path.rfind('/'));
      }
    }
  }
  globfree(&found);
  return best;
}

std::string ConnInfo(const std::string& socket_dir, std::string_view database) {
  return absl::StrCat("host='", socket_dir, "' user='postgres' dbname='",
                      std::string(database), "' connect_timeout=10");
}

// The rows of `result` as `psql -At` prints them.
std::string Rows(PGresult* result) {
  std::string out;
  for (int row = 0; row < PQntuples(result); ++row) {
    if (row > 0) out += '\n';
    for (int column = 0; column < PQnfields(result); ++column) {
      if (column > 0) out += '|';
      out += PQgetvalue(result, row, column);
    }
  }
  return out;
}

std::string Trimmed(const char* text) {
  return std::string(absl::StripTrailingAsciiWhitespace(text));
}

// Runs `sql` on `database` through libpq. `script` (a file name), if given,
// makes an error name the file and the line PostgreSQL points at.
absl::StatusOr<std::string> RunSql(const std::string& socket_dir,
                                   std::string_view database,
                                   std::string_view sql,
                                   const std::string& script = "") {
  PGconn* conn = PQconnectdb(ConnInfo(socket_dir, database).c_str());
  absl::Cleanup finish = [conn] { PQfinish(conn); };
  if (PQstatus(conn) != CONNECTION_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to database '", std::string(database),
                     "' at ", socket_dir, ": ", Trimmed(PQerrorMessage(conn))));
  }
  std::string text(sql);
  PGresult* result = PQexec(conn, text.c_str());
  absl::Cleanup clear = [result] { PQclear(result); };
  ExecStatusType status = PQresultStatus(result);
  if (status == PGRES_TUPLES_OK) return Rows(result);
  if (status == PGRES_COMMAND_OK || status == PGRES_EMPTY_QUERY) return "";
  std::string message = Trimmed(PQresultErrorMessage(result));
  if (script.empty()) return absl::InvalidArgumentError(message);
  std::string where = script;
  if (const char* at = PQresultErrorField(result, PG_DIAG_STATEMENT_POSITION)) {
    size_t position;
    if (absl::SimpleAtoi(at, &position) && position > 0) {
      position = std::min(position - 1, text.size());
      absl::StrAppend(
          &where, ":",
          1 + std::count(text.begin(), text.begin() + position, '\n'));
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("init script ", where, ": ", message));
}

lifecycle::ProcessOptions PostgresProgram(const std::string& bin,
                                          const std::string& dir,
                                          const std::string& user,
                                          absl::Duration start_timeout) {
  lifecycle::ProcessOptions o;
  o.executable = bin + "/postgres";
  // fsync off: the data folder is in memory, and a commit's WAL still reaches
  // it before the commit returns, so a killed server restarts with its data
  // (synchronous_commit stays on for that).
  o.args = {"-D", dir + "/data",         "-k", dir,
            "-c", "listen_addresses=",   "-c", "fsync=off",
            "-c", "full_page_writes=off"};
  o.user = user;
  o.ready_when = {lifecycle::Readiness::Notification()};
  o.start_timeout = start_timeout;
  o.stop_grace = absl::Seconds(5);
  // A fast shutdown: SIGTERM would wait for every client to disconnect.
  o.stop_signal = SIGINT;
  return o;
}

// initdb into a folder of its own, the template database made and the init
// scripts applied on a server started there, then copied into `out`/data.
absl::Status BuildTemplate(const std::string& bin,
                           const std::vector<std::string>& scripts,
                           const std::string& user, const std::string& out) {
  absl::StatusOr<std::string> dir =
      servers_internal::NewServerDir("postgres-init", user);
  if (!dir.ok()) return dir.status();
  absl::Cleanup remove = [&] { servers_internal::RemoveTree(*dir); };
  // 1MB WAL segments instead of 16MB: a smaller template to copy.
  if (absl::Status s = servers_internal::RunToEnd(
          {bin + "/initdb", "-D", *dir + "/data", "--auth=trust",
           "--username=postgres", "--no-sync", "--encoding=UTF8", "--locale=C",
           "--wal-segsize=1"},
          user);
      !s.ok()) {
    return s;
  }
  {
    lifecycle::ProcessOptions o =
        PostgresProgram(bin, *dir, user, absl::Seconds(60));
    o.log_path = *dir + "/init.log";
    lifecycle::ProcessService server("postgres-init", o);
    absl::Cleanup stop = [&] { server.Stop(); };
    if (absl::Status s = servers_internal::StartProgram(
            server, lifecycle::Context::Background());
        !s.ok()) {
      return s;
    }
    absl::StatusOr<std::string> made = RunSql(
        *dir, "postgres", absl::StrCat("CREATE DATABASE ", kTemplateDatabase));
    if (!made.ok()) return made.status();
    for (const std::string& script : scripts) {
      absl::StatusOr<std::string> sql = servers_internal::ReadFile(script);
      if (!sql.ok()) return sql.status();
      absl::StatusOr<std::string> applied =
          RunSql(*dir, kTemplateDatabase, *sql, script);
      if (!applied.ok()) return applied.status();
    }
    server.Stop();
    if (server.State() == lifecycle::ServiceState::kFailed) {
      return server.Snapshot().status;
    }
  }
  return servers_internal::CopyTree(*dir + "/data", out + "/data");
}

}  // namespace

PostgresDatabase::PostgresDatabase(std::shared_ptr<PostgresCore> core,
                                   std::string name)
    : core_(std::move(core)), name_(std::move(name)) {}

PostgresDatabase::PostgresDatabase(PostgresDatabase&& other) noexcept
    : core_(std::move(other.core_)), name_(std::move(other.name_)) {
  other.core_ = nullptr;
}

PostgresDatabase& PostgresDatabase::operator=(
    PostgresDatabase&& other) noexcept {
  if (this != &other) {
    Release();
    core_ = std::move(other.core_);
    name_ = std::move(other.name_);
    other.core_ = nullptr;
  }
  return *this;
}

PostgresDatabase::~PostgresDatabase() { Release(); }

void PostgresDatabase::Release() {
  if (core_ == nullptr) return;
  core_->Release(name_);
  core_ = nullptr;
}

std::string PostgresDatabase::Uri() const {
  std::string dir = core_ != nullptr ? core_->SocketDir() : "";
  return absl::StrCat("postgresql://postgres@/", name_, "?host=", dir);
}

absl::StatusOr<std::string> PostgresDatabase::Query(
    std::string_view sql) const {
  if (core_ == nullptr || !core_->InUse(name_)) {
    return absl::FailedPreconditionError(
        absl::StrCat("database ", name_, " was released"));
  }
  return RunSql(core_->SocketDir(), name_, sql);
}

PostgresServer::PostgresServer(PostgresOptions options)
    : BaseService(options.name),
      options_(std::move(options)),
      core_(std::make_shared<PostgresCore>()) {}

PostgresServer::~PostgresServer() {
  StopForDestruction();
  std::string dir = core_->SocketDir();
  process_.reset();
  if (!dir.empty()) servers_internal::RemoveTree(dir);
}

absl::StatusOr<PostgresServer*> PostgresServer::Shared(
    const PostgresOptions& options) {
  std::string key =
      absl::StrCat("postgres|", options.name, "|", options.pool_size, "|",
                   absl::StrJoin(options.init_scripts, "|"));
  // The core is made with the server, after the check is handed over.
  auto core = std::make_shared<std::shared_ptr<PostgresCore>>();
  absl::StatusOr<lifecycle::Service*> server = servers_internal::SharedServer(
      key,
      [&]() -> std::unique_ptr<lifecycle::Service> {
        auto made = std::make_unique<PostgresServer>(options);
        *core = made->core_;
        return made;
      },
      options.start_timeout,
      [core] { return *core != nullptr ? (*core)->EndOfTest() : ""; });
  if (!server.ok()) return server.status();
  return static_cast<PostgresServer*>(*server);
}

absl::Status PostgresServer::OnStart(const lifecycle::Context&) {
  if (options_.pool_size < 0) {
    return absl::InvalidArgumentError("pool_size must be 0 or more");
  }
  if (!data_dir().empty()) return absl::OkStatus();  // a restart: same data
  const std::string bin = PostgresBin();
  for (const char* program : {"/postgres", "/initdb"}) {
    if (absl::Status s =
            servers_internal::CheckInstalled(bin + program, "postgresql-15");
        !s.ok()) {
      return s;
    }
  }
  std::string version;
  if (absl::Status s = servers_internal::RunToEnd(
          {bin + "/postgres", "--version"}, "", absl::Seconds(30), &version);
      !s.ok()) {
    return s;
  }
  // "postgres (PostgreSQL) 15.18 (Debian ...)" -> "PostgreSQL 15.18 (...)"
  version = absl::StrCat("PostgreSQL ",
                         absl::StripPrefix(version, "postgres (PostgreSQL) "));
  const std::string user = servers_internal::UserForServersThatRefuseRoot();
  std::string key = absl::StrCat(version, "|", user, "|initdb C UTF8 1MB|");
  for (const std::string& script : options_.init_scripts) {
    absl::StatusOr<std::string> sql = servers_internal::ReadFile(script);
    if (!sql.ok()) return sql.status();
    absl::StrAppend(&key, script, "|", *sql, "|");
  }
  std::string major = bin.substr(0, bin.rfind('/'));
  major = major.substr(major.rfind('/') + 1);
  absl::StatusOr<std::string> cached = servers_internal::CachedTemplate(
      absl::StrCat("postgres-", major, "-", servers_internal::Fingerprint(key)),
      [&](const std::string& dir) {
        return BuildTemplate(bin, options_.init_scripts, user, dir);
      });
  if (!cached.ok()) return cached.status();
  absl::StatusOr<std::string> dir =
      servers_internal::NewServerDir("postgres", user);
  if (!dir.ok()) return dir.status();
  if (absl::Status s =
          servers_internal::CopyTree(*cached + "/data", *dir + "/data");
      !s.ok()) {
    servers_internal::RemoveTree(*dir);
    return s;
  }
  {
    absl::MutexLock lock(&core_->mu);
    core_->socket_dir = *dir;
    core_->path = Path();
  }
  process_ = std::make_unique<lifecycle::ProcessService>(
      "postgres", PostgresProgram(bin, *dir, user, options_.start_timeout));
  if (absl::Status s = AddChild(*process_); !s.ok()) return s;
  SetDetail("uri", Uri());
  SetDetail("version", version);
  SetDetail("data", *dir + "/data");
  {
    absl::MutexLock lock(&core_->mu);
    core_->version = version;
  }
  return absl::OkStatus();
}

absl::Status PostgresServer::Run(const lifecycle::Context& ctx,
                                 absl::FunctionRef<void()> started) {
  if (absl::Status s = servers_internal::StartProgram(*process_, ctx);
      !s.ok()) {
    return s;
  }
  SetDetail("log", process_->log_path());
  const std::string dir = core_->SocketDir();
  {
    absl::MutexLock lock(&core_->mu);
    core_->running = true;
  }
  absl::Cleanup not_running = [this] {
    absl::MutexLock lock(&core_->mu);
    core_->running = false;
  };
  started();
  while (true) {
    lifecycle::Signal wake;
    std::vector<std::string> drops;
    size_t pooled;
    {
      absl::MutexLock lock(&core_->mu);
      core_->wake = wake;
      drops.swap(core_->to_drop);
      pooled = core_->pool.size();
    }
    // Databases for the next tests first, then the drops: a test waits for
    // the first, nobody for the second.
    for (;
         pooled < static_cast<size_t>(options_.pool_size) && !ctx.IsCancelled();
         ++pooled) {
      std::string name = core_->NextName();
      absl::StatusOr<std::string> made =
          RunSql(dir, "postgres",
                 absl::StrCat("CREATE DATABASE ", name, " TEMPLATE ",
                              kTemplateDatabase));
      if (!made.ok()) {
        ReportError(made.status());
        break;
      }
      absl::MutexLock lock(&core_->mu);
      core_->pool.push_back(name);
    }
    for (const std::string& name : drops) {
      absl::StatusOr<std::string> dropped = RunSql(
          dir, "postgres",
          absl::StrCat("DROP DATABASE IF EXISTS ", name, " WITH (FORCE)"));
      if (!dropped.ok()) ReportError(dropped.status());
    }
    lifecycle::Signal waits[] = {ctx.Done(), process_->Stopped(), wake};
    lifecycle::WaitAnyUntil(waits, absl::InfiniteFuture());
    if (ctx.IsCancelled()) break;
    if (process_->Stopped().IsClosed()) {
      return servers_internal::EndedWith(*process_);
    }
  }
  process_->Stop();
  return absl::OkStatus();
}

absl::StatusOr<PostgresDatabase> PostgresServer::NewDatabase() {
  std::string name;
  {
    absl::MutexLock lock(&core_->mu);
    if (!core_->running) {
      return absl::FailedPreconditionError(
          absl::StrCat(Path(), " is not running"));
    }
    if (!core_->pool.empty()) {
      name = core_->pool.front();
      core_->pool.pop_front();
      core_->in_use.insert(name);
      core_->wake.Close();  // to make the next one
      return PostgresDatabase(core_, name);
    }
  }
  name = core_->NextName();
  absl::StatusOr<std::string> made = RunSql(
      core_->SocketDir(), "postgres",
      absl::StrCat("CREATE DATABASE ", name, " TEMPLATE ", kTemplateDatabase));
  if (!made.ok()) return made.status();
  absl::MutexLock lock(&core_->mu);
  core_->in_use.insert(name);
  return PostgresDatabase(core_, name);
}

absl::StatusOr<std::string> PostgresServer::Query(std::string_view database,
                                                  std::string_view sql) const {
  return RunSql(core_->SocketDir(), database, sql);
}

std::string PostgresServer::socket_dir() const { return core_->SocketDir(); }

std::string PostgresServer::Uri(std::string_view database) const {
  return absl::StrCat("postgresql://postgres@/", std::string(database),
                      "?host=", core_->SocketDir());
}

std::string PostgresServer::version() const {
  absl::MutexLock lock(&core_->mu);
  return core_->version;
}

std::string PostgresServer::data_dir() const {
  std::string dir = core_->SocketDir();
  return dir.empty() ? "" : dir + "/data";
}

std::vector<std::string> PostgresServer::DatabasesInUse() const {
  absl::MutexLock lock(&core_->mu);
  return std::vector<std::string>(core_->in_use.begin(), core_->in_use.end());
}

void PostgresTest::SetUp() {
  absl::StatusOr<PostgresServer*> server =
      PostgresServer::Shared(ServerOptions());
  if (servers_internal::IsNotInstalled(server.status())) {
    GTEST_SKIP() << server.status().message();
  }
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *server;
  absl::StatusOr<PostgresDatabase> db = server_->NewDatabase();
  ASSERT_TRUE(db.ok()) << db.status();
  db_.emplace(std::move(*db));
}

void PostgresTest::TearDown() { db_.reset(); }

}  // namespace lifecycle_testing
