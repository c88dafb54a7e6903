// -----------------------------------------------------------------------------
// mariadb.h
// -----------------------------------------------------------------------------
//
// MariaDB for a test, written once: Debian's `mariadb-server`, run as a
// service of this library on a Unix socket of its own (no TCP), ready when it
// says so itself (`READY=1`). A fixture gives each test a fresh database on a
// server shared by every test of the binary:
//
//   class InvoicesTest : public lifecycle_testing::MariadbTest {};
//
//   TEST_F(InvoicesTest, SavesAnInvoice) {
//     ASSERT_TRUE(db().Query("CREATE TABLE invoices (id INT)").ok());
//     ASSERT_TRUE(db().Query("INSERT INTO invoices VALUES (7)").ok());
//     EXPECT_EQ(db().Query("SELECT id FROM invoices").value(), "7");
//   }
//
// The code under test connects with the socket (`server().socket_path()`), the
// user "root" (no password) and the database `db().name()`; `db().Uri()` says
// all three ("mariadb://root@localhost/test_3?socket=...").
//
// How it is fast: `mariadb-install-db` runs once per machine, its output (with
// the init scripts applied to a template database) kept in the machine's cache
// like PostgreSQL's (postgres.h); each binary's server starts on a copy of it
// in /dev/shm. MariaDB has no CREATE DATABASE ... TEMPLATE: a test's database
// is made with a copy of each table of the template database (`CREATE TABLE
// ... LIKE`, then its rows) — views, routines and triggers of the scripts are
// not copied. A released database is dropped; one a test kept past its end
// fails that test, naming it, and is dropped.
//
// The client is MariaDB's own Connector/C (libmariadb). A missing server
// makes `MariadbTest` skip with "... is not installed (Debian package
// mariadb-server; tools/setup.sh installs it)".
//
// Thread safety: all public members are thread-safe.

#ifndef LIFECYCLE_TESTING_SERVERS_MARIADB_H_
#define LIFECYCLE_TESTING_SERVERS_MARIADB_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/servers/server_internal.h"

namespace lifecycle_testing {

struct MariadbOptions {
  // The service's name: its path in reports.
  std::string name = "mariadb";
  // SQL files applied once, in order, to the template database (statements
  // end with ';' at the end of a line). An error fails the start, naming the
  // file, the line and MariaDB's message. Part of the template's cache key.
  std::vector<std::string> init_scripts;
  absl::Duration start_timeout = absl::Seconds(60);
};

namespace servers_internal {
struct MariadbCore;
}  // namespace servers_internal

// A database of its own on a `MariadbServer`, dropped when this object goes or
// `Release()` is called. Move-only.
class MariadbDatabase {
 public:
  MariadbDatabase(MariadbDatabase&& other) noexcept;
  MariadbDatabase& operator=(MariadbDatabase&& other) noexcept;
  ~MariadbDatabase();

  const std::string& name() const { return name_; }
  // "mariadb://root@localhost/NAME?socket=PATH".
  std::string Uri() const;
  // Runs `sql` (one statement or several) through libmariadb; the rows of the
  // last result as `mariadb -N -B` would print them, with '|' between columns
  // (NULL as ""), or MariaDB's error.
  absl::StatusOr<std::string> Query(std::string_view sql) const;
  // Gives the database back; it is dropped. Further queries fail.
  void Release();

 private:
  friend class MariadbServer;
  MariadbDatabase(std::shared_ptr<servers_internal::MariadbCore> core,
                  std::string name);
  std::shared_ptr<servers_internal::MariadbCore> core_;
  std::string name_;
};

class MariadbServer final : public servers_internal::ServerModule {
 public:
  explicit MariadbServer(MariadbOptions options = {});
  ~MariadbServer() override;

  // The server of this test binary for `options`, started on the first call,
  // stopped at the end of the program; the same start error on every call if
  // it could not start.
  static absl::StatusOr<MariadbServer*> Shared(
      const MariadbOptions& options = {});

  // A fresh database with the template database's tables and rows.
  absl::StatusOr<MariadbDatabase> NewDatabase();
  // Runs `sql` on `database` (empty: none) (see `MariadbDatabase::Query()`).
  absl::StatusOr<std::string> Query(std::string_view database,
                                    std::string_view sql) const;

  // Its Unix socket; empty before the first start.
  std::string socket_path() const;
  // "root", with no password.
  std::string user() const { return "root"; }
  // "10.11.19-MariaDB-..."; empty before the first start.
  std::string version() const;
  // Databases handed out and not released yet.
  std::vector<std::string> DatabasesInUse() const;

 private:
  absl::Status Prepare(const std::string& dir) override;
  lifecycle::ProcessOptions Program(const std::string& dir) override;
  absl::Status Ready() override;

  const MariadbOptions options_;
  std::shared_ptr<servers_internal::MariadbCore> core_;
};

// A test fixture: each test gets `db()`, a fresh database on the binary's
// shared server, released at its end. Override `ServerOptions()` for init
// scripts. Skips when MariaDB is not installed.
class MariadbTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  virtual MariadbOptions ServerOptions() const { return {}; }

  MariadbServer& server() { return *server_; }
  MariadbDatabase& db() { return *db_; }

 private:
  MariadbServer* server_ = nullptr;
  std::optional<MariadbDatabase> db_;
};

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_SERVERS_MARIADB_H_
