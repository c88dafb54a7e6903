#include "lifecycle/testing/servers/mariadb.h"

#include <mariadb/mysql.h>
#include <unistd.h>

#include <mutex>
#include <set>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"

namespace lifecycle_testing {
namespace servers_internal {

// What a server and the databases it handed out share: a database may outlive
// its server (it then does nothing).
struct MariadbCore {
  absl::Mutex mu;
  std::string socket ABSL_GUARDED_BY(mu);
  std::string path ABSL_GUARDED_BY(mu);  // the server's, for errors
  std::string version ABSL_GUARDED_BY(mu);
  // "CREATE TABLE ... LIKE; INSERT ... SELECT" for each template table, with
  // "{db}" for the new database: read once the server is ready.
  std::string copy_tables ABSL_GUARDED_BY(mu);
  int64_t next ABSL_GUARDED_BY(mu) = 0;
  std::set<std::string> in_use ABSL_GUARDED_BY(mu);

  std::string Socket() {
    absl::MutexLock lock(&mu);
    return socket;
  }
  bool InUse(const std::string& name) {
    absl::MutexLock lock(&mu);
    return in_use.count(name) != 0;
  }
  bool TakeBack(const std::string& name) {
    absl::MutexLock lock(&mu);
    return in_use.erase(name) != 0;
  }
  std::string EndOfTest();
};

}  // namespace servers_internal

namespace {

using servers_internal::MariadbCore;

constexpr char kMariadbd[] = "/usr/sbin/mariadbd";
constexpr char kInstallDb[] = "/usr/bin/mariadb-install-db";
constexpr char kTemplateDatabase[] = "lifecycle_template";

std::string Rows(MYSQL_RES* result) {
  std::string out;
  const unsigned int columns = mysql_num_fields(result);
  bool first_row = true;
  while (MYSQL_ROW row = mysql_fetch_row(result)) {
    const unsigned long* lengths = mysql_fetch_lengths(result);
    if (!first_row) out += '\n';
    first_row = false;
    for (unsigned int c = 0; c < columns; ++c) {
      if (c > 0) out += '|';
      if (row[c] != nullptr) out.append(row[c], lengths[c]);
    }
  }
  return out;
}

// Runs `sql` (statements separated by ';') on `database` (empty: none)
// through libmariadb: the rows of the last statement that returned rows.
absl::StatusOr<std::string> RunSql(const std::string& socket,
                                   std::string_view database,
                                   std::string_view sql) {
  static std::once_flag library;
  std::call_once(library, [] { mysql_library_init(0, nullptr, nullptr); });
  MYSQL* m = mysql_init(nullptr);
  if (m == nullptr) return absl::ResourceExhaustedError("mysql_init failed");
  absl::Cleanup close = [m] { mysql_close(m); };
  unsigned int timeout = 10;
  mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  const std::string db(database);
  if (mysql_real_connect(m, "localhost", "root", "",
                         db.empty() ? nullptr : db.c_str(), 0, socket.c_str(),
                         CLIENT_MULTI_STATEMENTS) == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot connect to MariaDB at ",
                                               socket, ": ", mysql_error(m)));
  }
  if (mysql_real_query(m, sql.data(), sql.size()) != 0) {
    return absl::InvalidArgumentError(mysql_error(m));
  }
  std::string out;
  while (true) {
    if (MYSQL_RES* result = mysql_store_result(m)) {
      out = Rows(result);
      mysql_free_result(result);
    } else if (mysql_field_count(m) != 0) {
      return absl::InvalidArgumentError(mysql_error(m));
    }
    int more = mysql_next_result(m);
    if (more > 0) return absl::InvalidArgumentError(mysql_error(m));
    if (more < 0) break;
  }
  return out;
}

// One statement of an init script and the line it starts on.
struct Statement {
  int line;
  std::string sql;
};

// Splits `text` at each ';' outside quotes and comments.
std::vector<Statement> SplitStatements(const std::string& text) {
  std::vector<Statement> out;
  std::string current;
  int line = 1, start_line = 0;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    if (quote == 0 && (c == '#' || (c == '-' && next == '-'))) {
      while (i < text.size() && text[i] != '\n') ++i;  // a comment: skipped
      if (i < text.size()) {
        ++line;
        current += '\n';
      }
      continue;
    }
    if (quote == 0 && c == '/' && next == '*') {
      size_t end = text.find("*/", i + 2);
      end = end == std::string::npos ? text.size() : end + 2;
      for (size_t j = i; j < end; ++j) {
        if (text[j] == '\n') ++line;
      }
      current += ' ';
      i = end - 1;
      continue;
    }
    if (quote == 0 && c == ';') {
      if (start_line != 0) out.push_back({start_line, current});
      current.clear();
      start_line = 0;
      continue;
    }
    if (quote == 0 && (c == '\'' || c == '"' || c == '`')) {
      quote = c;
    } else if (quote != 0 && c == '\\') {
      current += c;
      if (i + 1 < text.size()) {
        if (text[i + 1] == '\n') ++line;
        current += text[++i];
      }
      continue;
    } else if (quote != 0 && c == quote) {
      quote = 0;
    }
    if (start_line == 0 &&
        !absl::ascii_isspace(static_cast<unsigned char>(c))) {
      start_line = line;
    }
    if (c == '\n') ++line;
    current += c;
  }
  if (start_line != 0) out.push_back({start_line, current});
  return out;
}

// Applies the init script `path` to the template database, statement by
// statement, so that an error names its line.
absl::Status ApplyScript(const std::string& socket, const std::string& path) {
  absl::StatusOr<std::string> text = servers_internal::ReadFile(path);
  if (!text.ok()) return text.status();
  for (const Statement& statement : SplitStatements(*text)) {
    absl::StatusOr<std::string> done =
        RunSql(socket, kTemplateDatabase, statement.sql);
    if (done.ok()) continue;
    std::string message(done.status().message());
    int line = statement.line;
    // "... near 'NOT NULL' at line 3": the line within the statement.
    if (size_t at = message.rfind("at line "); at != std::string::npos) {
      size_t digits = at + 8, end = digits;
      while (end < message.size() && absl::ascii_isdigit(message[end])) ++end;
      int within;
      if (absl::SimpleAtoi(message.substr(digits, end - digits), &within)) {
        line += within - 1;
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat("init script ", path, ":", line, ": ", message));
  }
  return absl::OkStatus();
}

// mariadbd's options, for the template's build and for the test's server.
std::vector<std::string> ServerArgs(const std::string& dir) {
  std::vector<std::string> args = {
      "--no-defaults",
      "--datadir=" + dir + "/data",
      "--socket=" + dir + "/mariadb.sock",
      "--pid-file=" + dir + "/mariadb.pid",
      "--skip-networking",
      "--skip-name-resolve",
      "--skip-log-bin",
      "--innodb-buffer-pool-size=32M",
      "--innodb-log-file-size=4M",
      "--innodb-flush-log-at-trx-commit=0",
      "--innodb-doublewrite=0",
      "--log-error=",  // to stderr: the service's log
  };
  if (geteuid() == 0) args.push_back("--user=root");
  return args;
}

lifecycle::ProcessOptions ServerProgram(const std::string& dir,
                                        absl::Duration start_timeout) {
  lifecycle::ProcessOptions o;
  o.executable = kMariadbd;
  o.args = ServerArgs(dir);
  o.ready_when = {lifecycle::Readiness::Notification()};
  o.start_timeout = start_timeout;
  return o;
}

absl::Status BuildTemplate(const std::vector<std::string>& scripts,
                           const std::string& out) {
  absl::StatusOr<std::string> dir =
      servers_internal::NewServerDir("mariadb-init");
  if (!dir.ok()) return dir.status();
  absl::Cleanup remove = [&] { servers_internal::RemoveTree(*dir); };
  std::vector<std::string> install = {
      kInstallDb,
      "--no-defaults",
      "--datadir=" + *dir + "/data",
      "--auth-root-authentication-method=normal",
      "--skip-test-db",
      "--skip-name-resolve",
      "--innodb-log-file-size=4M"};
  if (geteuid() == 0) install.push_back("--user=root");
  if (absl::Status s = servers_internal::RunToEnd(install); !s.ok()) return s;
  {
    lifecycle::ProcessOptions o = ServerProgram(*dir, absl::Seconds(60));
    o.log_path = *dir + "/init.log";
    lifecycle::ProcessService server("mariadb-init", o);
    absl::Cleanup stop = [&] { server.Stop(); };
    if (absl::Status s = servers_internal::StartProgram(
            server, lifecycle::Context::Background());
        !s.ok()) {
      return s;
    }
    const std::string socket = *dir + "/mariadb.sock";
    absl::StatusOr<std::string> made =
        RunSql(socket, "", absl::StrCat("CREATE DATABASE ", kTemplateDatabase));
    if (!made.ok()) return made.status();
    for (const std::string& script : scripts) {
      if (absl::Status s = ApplyScript(socket, script); !s.ok()) return s;
    }
    server.Stop();
    if (server.State() == lifecycle::ServiceState::kFailed) {
      return server.Snapshot().status;
    }
  }
  return servers_internal::CopyTree(*dir + "/data", out + "/data");
}

}  // namespace

std::string servers_internal::MariadbCore::EndOfTest() {
  std::vector<std::string> left;
  std::string server_socket, server_path;
  {
    absl::MutexLock lock(&mu);
    left.assign(in_use.begin(), in_use.end());
    in_use.clear();
    server_socket = socket;
    server_path = path;
  }
  if (left.empty()) return "";
  for (const std::string& name : left) {
    (void)RunSql(server_socket, "", "DROP DATABASE IF EXISTS " + name);
  }
  return absl::StrCat("kept ", left.size(), " database(s) of the shared ",
                      server_path,
                      " past its end (a MariadbDatabase not released): ",
                      absl::StrJoin(left, ", "), "; they were dropped");
}

MariadbDatabase::MariadbDatabase(std::shared_ptr<MariadbCore> core,
                                 std::string name)
    : core_(std::move(core)), name_(std::move(name)) {}

MariadbDatabase::MariadbDatabase(MariadbDatabase&& other) noexcept
    : core_(std::move(other.core_)), name_(std::move(other.name_)) {
  other.core_ = nullptr;
}

MariadbDatabase& MariadbDatabase::operator=(MariadbDatabase&& other) noexcept {
  if (this != &other) {
    Release();
    core_ = std::move(other.core_);
    name_ = std::move(other.name_);
    other.core_ = nullptr;
  }
  return *this;
}

MariadbDatabase::~MariadbDatabase() { Release(); }

void MariadbDatabase::Release() {
  if (core_ == nullptr) return;
  if (core_->TakeBack(name_)) {
    (void)RunSql(core_->Socket(), "", "DROP DATABASE IF EXISTS " + name_);
  }
  core_ = nullptr;
}

std::string MariadbDatabase::Uri() const {
  std::string socket = core_ != nullptr ? core_->Socket() : "";
  return absl::StrCat("mariadb://root@localhost/", name_, "?socket=", socket);
}

absl::StatusOr<std::string> MariadbDatabase::Query(std::string_view sql) const {
  if (core_ == nullptr || !core_->InUse(name_)) {
    return absl::FailedPreconditionError(
        absl::StrCat("database ", name_, " was released"));
  }
  return RunSql(core_->Socket(), name_, sql);
}

MariadbServer::MariadbServer(MariadbOptions options)
    : ServerModule(options.name, kMariadbd, "mariadb-server"),
      options_(std::move(options)),
      core_(std::make_shared<MariadbCore>()) {}

MariadbServer::~MariadbServer() { StopForDestruction(); }

absl::StatusOr<MariadbServer*> MariadbServer::Shared(
    const MariadbOptions& options) {
  std::string key = absl::StrCat("mariadb|", options.name, "|",
                                 absl::StrJoin(options.init_scripts, "|"));
  auto core = std::make_shared<std::shared_ptr<MariadbCore>>();
  absl::StatusOr<lifecycle::Service*> server = servers_internal::SharedServer(
      key,
      [&]() -> std::unique_ptr<lifecycle::Service> {
        auto made = std::make_unique<MariadbServer>(options);
        *core = made->core_;
        return made;
      },
      options.start_timeout,
      [core] { return *core != nullptr ? (*core)->EndOfTest() : ""; });
  if (!server.ok()) return server.status();
  return static_cast<MariadbServer*>(*server);
}

absl::Status MariadbServer::Prepare(const std::string& dir) {
  if (absl::Status s =
          servers_internal::CheckInstalled(kInstallDb, "mariadb-server");
      !s.ok()) {
    return s;
  }
  std::string version;
  if (absl::Status s = servers_internal::RunToEnd({kMariadbd, "--version"}, "",
                                                  absl::Seconds(30), &version);
      !s.ok()) {
    return s;
  }
  std::string key = absl::StrCat(version, "|", geteuid() == 0, "|",
                                 absl::StrJoin(ServerArgs(""), " "), "|");
  for (const std::string& script : options_.init_scripts) {
    absl::StatusOr<std::string> sql = servers_internal::ReadFile(script);
    if (!sql.ok()) return sql.status();
    absl::StrAppend(&key, script, "|", *sql, "|");
  }
  absl::StatusOr<std::string> cached = servers_internal::CachedTemplate(
      absl::StrCat("mariadb-", servers_internal::Fingerprint(key)),
      [&](const std::string& out) {
        return BuildTemplate(options_.init_scripts, out);
      });
  if (!cached.ok()) return cached.status();
  if (absl::Status s =
          servers_internal::CopyTree(*cached + "/data", dir + "/data");
      !s.ok()) {
    return s;
  }
  absl::MutexLock lock(&core_->mu);
  core_->socket = dir + "/mariadb.sock";
  core_->path = Path();
  return absl::OkStatus();
}

lifecycle::ProcessOptions MariadbServer::Program(const std::string& dir) {
  return ServerProgram(dir, options_.start_timeout);
}

absl::Status MariadbServer::Ready() {
  const std::string socket = core_->Socket();
  absl::StatusOr<std::string> version = RunSql(socket, "", "SELECT VERSION()");
  if (!version.ok()) return version.status();
  absl::StatusOr<std::string> tables = RunSql(
      socket, "",
      absl::StrCat("SELECT table_name FROM information_schema.tables WHERE "
                   "table_schema = '",
                   kTemplateDatabase,
                   "' AND table_type = 'BASE TABLE' ORDER BY table_name"));
  if (!tables.ok()) return tables.status();
  std::string copy;
  for (absl::string_view table :
       absl::StrSplit(*tables, '\n', absl::SkipEmpty())) {
    absl::StrAppend(&copy, "CREATE TABLE {db}.`", table, "` LIKE ",
                    kTemplateDatabase, ".`", table, "`; INSERT INTO {db}.`",
                    table, "` SELECT * FROM ", kTemplateDatabase, ".`", table,
                    "`; ");
  }
  {
    absl::MutexLock lock(&core_->mu);
    core_->version = *version;
    core_->copy_tables = copy;
  }
  SetDetail("version", *version);
  SetDetail("uri", absl::StrCat("mariadb://root@localhost/?socket=", socket));
  return absl::OkStatus();
}

absl::StatusOr<MariadbDatabase> MariadbServer::NewDatabase() {
  if (State() != lifecycle::ServiceState::kStarted) {
    return absl::FailedPreconditionError(
        absl::StrCat(Path(), " is not running"));
  }
  std::string name, copy;
  {
    absl::MutexLock lock(&core_->mu);
    name = absl::StrCat("test_", ++core_->next);
    copy = core_->copy_tables;
  }
  std::string sql = absl::StrCat("CREATE DATABASE ", name, "; ",
                                 absl::StrReplaceAll(copy, {{"{db}", name}}));
  absl::StatusOr<std::string> made = RunSql(core_->Socket(), "", sql);
  if (!made.ok()) {
    (void)RunSql(core_->Socket(), "", "DROP DATABASE IF EXISTS " + name);
    return made.status();
  }
  absl::MutexLock lock(&core_->mu);
  core_->in_use.insert(name);
  return MariadbDatabase(core_, name);
}

absl::StatusOr<std::string> MariadbServer::Query(std::string_view database,
                                                 std::string_view sql) const {
  return RunSql(core_->Socket(), database, sql);
}

std::string MariadbServer::socket_path() const { return core_->Socket(); }

std::string MariadbServer::version() const {
  absl::MutexLock lock(&core_->mu);
  return core_->version;
}

std::vector<std::string> MariadbServer::DatabasesInUse() const {
  absl::MutexLock lock(&core_->mu);
  return std::vector<std::string>(core_->in_use.begin(), core_->in_use.end());
}

void MariadbTest::SetUp() {
  absl::StatusOr<MariadbServer*> server =
      MariadbServer::Shared(ServerOptions());
  if (servers_internal::IsNotInstalled(server.status())) {
    GTEST_SKIP() << server.status().message();
  }
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *server;
  absl::StatusOr<MariadbDatabase> db = server_->NewDatabase();
  ASSERT_TRUE(db.ok()) << db.status();
  db_.emplace(std::move(*db));
}

void MariadbTest::TearDown() { db_.reset(); }

}  // namespace lifecycle_testing
