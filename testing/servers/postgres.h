// -----------------------------------------------------------------------------
// postgres.h
// -----------------------------------------------------------------------------
//
// PostgreSQL for a test, written once: Debian's `postgresql-15`, run as a
// service of this library, with a fresh database per test in about a
// millisecond. A fixture gives each test its own database on a server shared
// by every test of the binary:
//
//   class OrdersTest : public lifecycle_testing::PostgresTest {};
//
//   TEST_F(OrdersTest, SavesAnOrder) {
//     ASSERT_TRUE(db().Query("CREATE TABLE orders (id int)").ok());
//     ASSERT_TRUE(db().Query("INSERT INTO orders VALUES (7)").ok());
//     EXPECT_EQ(db().Query("SELECT id FROM orders").value(), "7");
//   }
//
// `db().Uri()` ("postgresql://postgres@/test_3?host=/dev/shm/...") is what
// the code under test connects with (libpq, or any driver that takes a URI).
// A fresh server per test is one line too, `PostgresServer postgres;`, in a
// harness like any service (see `PostgresServer`).
//
// How it is fast:
//   * `initdb` runs once per machine: its output, with the init scripts
//     applied, is kept in the machine's cache (server_internal.h's
//     `CacheRoot()`, ~/.cache/lifecycle/servers), keyed by the server's
//     version, the options and the scripts' contents. Two binaries that need
//     it at once build it once (the second waits on a lock); a half-made
//     template is never used.
//   * A server per test binary (`PostgresServer::Shared()`), on a copy of the
//     template in /dev/shm, started by the first test that uses it and stopped
//     at the end of the program. The leftover checks (leftover_threads.h) pass
//     over it; the hang report names it like any service.
//   * Each test's database is `CREATE DATABASE ... TEMPLATE` of the template
//     database the scripts filled, made ahead of time in the background (a
//     pool, as IntegreSQL does): taking one is a handover. A released
//     database is dropped in the background.
//
// Isolation is undone at the end of each test: the fixture releases its
// database in `TearDown()`. A database a test kept past its end (a
// `PostgresDatabase` held in a static) fails that test, naming it, and is
// dropped.
//
// PostgreSQL refuses to run as root: when the test runs as root, the server
// runs as the user "postgres" (Debian's package makes it). A missing server
// makes `PostgresTest` skip with "... is not installed (Debian package
// postgresql-15; tools/setup.sh installs it)".
//
// The client is libpq, PostgreSQL's own: `Query()` runs SQL and returns the
// rows as `psql -At` prints them (columns joined by '|', rows by '\n').
//
// Thread safety: all public members are thread-safe.

#ifndef LIFECYCLE_TESTING_SERVERS_POSTGRES_H_
#define LIFECYCLE_TESTING_SERVERS_POSTGRES_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lifecycle/base_service.h"
#include "lifecycle/context.h"
#include "lifecycle/process_service.h"

namespace lifecycle_testing {

struct PostgresOptions {
  // The service's name: its path in reports.
  std::string name = "postgres";
  // SQL files applied once, in order, to the template database every
  // `NewDatabase()` is copied from (a schema, seed rows). An error fails the
  // start, naming the file, the line and PostgreSQL's message. Their contents
  // are part of the template's cache key: an edited script makes a new one.
  std::vector<std::string> init_scripts;
  // Databases made ahead of time, in the background.
  int pool_size = 2;
  // How long the server may take to be ready (the first start on a machine
  // also makes the template: `initdb`, about a second).
  absl::Duration start_timeout = absl::Seconds(60);
};

namespace servers_internal {
struct PostgresCore;
}  // namespace servers_internal

// A database of its own on a `PostgresServer`, dropped (in the background) when
// this object goes or `Release()` is called. Move-only.
class PostgresDatabase {
 public:
  PostgresDatabase(PostgresDatabase&& other) noexcept;
  PostgresDatabase& operator=(PostgresDatabase&& other) noexcept;
  ~PostgresDatabase();

  const std::string& name() const { return name_; }
  // "postgresql://postgres@/NAME?host=SOCKET_DIR": libpq's connection URI.
  std::string Uri() const;
  // Runs `sql` (one statement or several) through libpq; the rows of the last
  // one as `psql -At` prints them, or PostgreSQL's error.
  absl::StatusOr<std::string> Query(std::string_view sql) const;
  // Gives the database back; it is dropped. Further queries fail.
  void Release();

 private:
  friend class PostgresServer;
  PostgresDatabase(std::shared_ptr<servers_internal::PostgresCore> core,
                   std::string name);
  std::shared_ptr<servers_internal::PostgresCore> core_;
  std::string name_;
};

class PostgresServer final : public lifecycle::BaseService {
 public:
  // A server of its own, started like any service (it is one: in a harness, a
  // composite's start-up graph, under supervision, which restarts it on its
  // data folder). Its folder is removed when it is destroyed.
  explicit PostgresServer(PostgresOptions options = {});
  ~PostgresServer() override;

  // The server of this test binary for `options`, started on the first call
  // (which waits until it is ready), stopped at the end of the program; the
  // same start error on every call if it could not start.
  static absl::StatusOr<PostgresServer*> Shared(
      const PostgresOptions& options = {});

  // A fresh database, a copy of the template; fails when the server is not
  // running.
  absl::StatusOr<PostgresDatabase> NewDatabase();
  // Runs `sql` on `database` (see `PostgresDatabase::Query()`).
  absl::StatusOr<std::string> Query(std::string_view database,
                                    std::string_view sql) const;

  // The folder of its Unix socket: libpq's "host".
  std::string socket_dir() const;
  // The port number in its socket's name (it listens on no TCP port).
  int port() const { return 5432; }
  // The database user: "postgres", trusted (no password).
  std::string user() const { return "postgres"; }
  // libpq's URI of `database`.
  std::string Uri(std::string_view database = "postgres") const;
  // "PostgreSQL 15.18 (...)"; empty before the first start.
  std::string version() const;
  // The data folder; empty before the first start.
  std::string data_dir() const;
  // Databases handed out and not released yet.
  std::vector<std::string> DatabasesInUse() const;

 private:
  absl::Status OnStart(const lifecycle::Context& ctx) override;
  absl::Status Run(const lifecycle::Context& ctx,
                   absl::FunctionRef<void()> started) override;

  const PostgresOptions options_;
  std::shared_ptr<servers_internal::PostgresCore> core_;
  std::unique_ptr<lifecycle::ProcessService> process_;  // OnStart(), then Run()
};

// A test fixture: each test gets `db()`, a fresh database on the binary's
// shared server, released at its end. Derive from it, and override
// `ServerOptions()` for init scripts. Skips when PostgreSQL is not installed.
class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  virtual PostgresOptions ServerOptions() const { return {}; }

  PostgresServer& server() { return *server_; }
  PostgresDatabase& db() { return *db_; }

 private:
  PostgresServer* server_ = nullptr;
  std::optional<PostgresDatabase> db_;
};

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_SERVERS_POSTGRES_H_
