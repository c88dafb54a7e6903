// MariaDB as a module: the fixture's fresh database per test on a shared
// server, init scripts (and their errors), a server of its own in a harness,
// and a test that keeps a database past its end.

#include "lifecycle/testing/servers/mariadb.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/servers/server_internal.h"
#include "lifecycle/testing/temp_dir.h"

namespace lifecycle_testing {
namespace {

using ::testing::HasSubstr;

// The header's example, as it is there.
class InvoicesTest : public lifecycle_testing::MariadbTest {};

TEST_F(InvoicesTest, SavesAnInvoice) {
  ASSERT_TRUE(db().Query("CREATE TABLE invoices (id INT)").ok());
  ASSERT_TRUE(db().Query("INSERT INTO invoices VALUES (7)").ok());
  EXPECT_EQ(db().Query("SELECT id FROM invoices").value(), "7");
}

// A table one test makes is not in the next test's database (in either order).
TEST_F(InvoicesTest, ATableOfOneTest) {
  ASSERT_TRUE(db().Query("CREATE TABLE only_here (x INT)").ok());
  EXPECT_EQ(db().Query("SHOW TABLES").value(), "only_here");
}
TEST_F(InvoicesTest, IsNotInTheNext) {
  EXPECT_EQ(db().Query("SHOW TABLES").value(), "");
}

TEST_F(InvoicesTest, EachTestHasItsOwnDatabase) {
  EXPECT_THAT(server().DatabasesInUse(), ::testing::ElementsAre(db().name()));
  EXPECT_EQ(db().Query("SELECT DATABASE()").value(), db().name());
  EXPECT_EQ(db().Uri(), "mariadb://root@localhost/" + db().name() +
                            "?socket=" + server().socket_path());
  EXPECT_EQ(db().Query("SELECT 1, NULL, 'a'; SELECT 2").value(), "2");
  EXPECT_THAT(db().Query("SELECT * FROM missing").status().message(),
              HasSubstr("doesn't exist"));
}

class MariadbCustomersTest : public MariadbTest {
 protected:
  MariadbOptions ServerOptions() const override {
    MariadbOptions options;
    options.name = "customers-mariadb";
    options.init_scripts = {"testing/servers/testdata/mariadb_schema.sql"};
    return options;
  }
};

TEST_F(MariadbCustomersTest, EveryDatabaseStartsWithTheScriptsRows) {
  EXPECT_EQ(db().Query("SELECT name FROM customers ORDER BY id").value(),
            "Ada\nGrace; Hopper");
  ASSERT_TRUE(db().Query("DELETE FROM customers").ok());
}
TEST_F(MariadbCustomersTest, EvenAfterAnotherTestDeletedThem) {
  EXPECT_EQ(db().Query("SELECT count(*) FROM customers").value(), "2");
}

TEST(MariadbServerTest, AServerOfItsOwnInAHarnessWithItsDetails) {
  MariadbServer mariadb;
  StartStopHarness harness({&mariadb});
  ::testing::AssertionResult started = harness.StartAll();
  if (servers_internal::IsNotInstalled(mariadb.Snapshot().status)) {
    GTEST_SKIP() << mariadb.Snapshot().status.message();
  }
  ASSERT_TRUE(started);
  absl::StatusOr<MariadbDatabase> db = mariadb.NewDatabase();
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(db->Query("SELECT 1").value(), "1");
  EXPECT_THAT(mariadb.version(), HasSubstr("MariaDB"));
  lifecycle::ServiceSnapshot s = mariadb.Snapshot();
  std::map<std::string, std::string> details(s.details.begin(),
                                             s.details.end());
  EXPECT_EQ(details["version"], mariadb.version());
  EXPECT_EQ(details["data"], mariadb.dir());
  ASSERT_EQ(s.children.size(), 1u);
  EXPECT_EQ(s.children[0].path, "mariadb/mariadbd");
  db->Release();
  EXPECT_THAT(mariadb.Query("", "SHOW DATABASES LIKE 'test_%'").value(), "");
  ASSERT_TRUE(harness.StopAll());
}

TEST(MariadbServerTest, AnInitScriptErrorNamesTheFileTheLineAndTheMessage) {
  std::string script = ShortTempDir() + "/bad.sql";
  std::ofstream(script) << "CREATE TABLE a (x INT);\n"
                        << "-- a comment\n"
                        << "CREATE TABLE b (\n"
                        << "  x INT,\n"
                        << "  y INT NOT NOT NULL\n"
                        << ");\n";
  MariadbOptions options;
  options.init_scripts = {script};
  MariadbServer mariadb(options);
  absl::Status start = mariadb.Start(lifecycle::Context::Background());
  if (servers_internal::IsNotInstalled(start)) GTEST_SKIP() << start.message();
  EXPECT_EQ(start.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(start.message(), HasSubstr("init script " + script + ":5: "));
  EXPECT_THAT(start.message(), HasSubstr("SQL syntax"));
}

// --- A test that keeps its database ----------------------------------------

constexpr char kLeakChild[] = "LIFECYCLE_MARIADB_LEAK_CHILD";

// Run by the test below in a child process: keeps a database past its end.
TEST(MariadbLeakChild, KeepsADatabase) {
  if (std::getenv(kLeakChild) == nullptr) GTEST_SKIP() << "run by a test";
  absl::StatusOr<MariadbServer*> server = MariadbServer::Shared();
  ASSERT_TRUE(server.ok()) << server.status();
  static auto* kept =
      new absl::StatusOr<MariadbDatabase>((*server)->NewDatabase());
  ASSERT_TRUE(kept->ok());
}

TEST(MariadbLeakTest, ADatabaseKeptPastTheTestFailsItNamingTheDatabase) {
  if (access("/usr/sbin/mariadbd", X_OK) != 0) {
    GTEST_SKIP() << "/usr/sbin/mariadbd is not installed (Debian package "
                    "mariadb-server; tools/setup.sh installs it)";
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  ASSERT_GT(n, 0);
  self[n] = '\0';
  std::string out;
  absl::Status run = servers_internal::RunToEnd(
      // Not the parent's Bazel files: the child would remove or write them.
      {"/usr/bin/env", "-u", "TEST_PREMATURE_EXIT_FILE", "-u",
       "XML_OUTPUT_FILE", absl::StrCat(kLeakChild, "=1"), self,
       "--gtest_filter=MariadbLeakChild.*"},
      "", absl::Seconds(120), &out);
  EXPECT_FALSE(run.ok()) << out;
  EXPECT_THAT(out, HasSubstr("MariadbLeakChild.KeepsADatabase kept 1 "
                             "database(s) of the shared mariadb past its "
                             "end (a MariadbDatabase not released): test_"));
}

}  // namespace
}  // namespace lifecycle_testing
