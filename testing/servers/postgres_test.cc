// PostgreSQL as a module: the fixture's fresh database per test on a shared
// server, init scripts (and their errors), a server of its own in a harness,
// in a start-up graph, restarted by supervision on its data, and a test that
// keeps a database past its end.

#include "lifecycle/testing/servers/postgres.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lifecycle/composite_service.h"
#include "lifecycle/func_service.h"
#include "lifecycle/supervision.h"
#include "lifecycle/testing/harness.h"
#include "lifecycle/testing/servers/server_internal.h"
#include "lifecycle/testing/temp_dir.h"
#include "lifecycle/testing/wait.h"

namespace lifecycle_testing {
namespace {

using ::testing::HasSubstr;

constexpr char kSchema[] = "testing/servers/testdata/schema.sql";

// Skips a test of a server of its own when PostgreSQL is not installed.
#define SKIP_IF_NOT_INSTALLED(status)           \
  if (servers_internal::IsNotInstalled(status)) \
  GTEST_SKIP() << (status).message()

// The header's example, as it is there.
class OrdersTest : public lifecycle_testing::PostgresTest {};

TEST_F(OrdersTest, SavesAnOrder) {
  ASSERT_TRUE(db().Query("CREATE TABLE orders (id int)").ok());
  ASSERT_TRUE(db().Query("INSERT INTO orders VALUES (7)").ok());
  EXPECT_EQ(db().Query("SELECT id FROM orders").value(), "7");
}

// A table one test makes is not in the next test's database (in either order).
TEST_F(OrdersTest, ATableOfOneTest) {
  ASSERT_TRUE(db().Query("CREATE TABLE only_here (x int)").ok());
  EXPECT_EQ(db().Query("SELECT count(*) FROM pg_tables WHERE tablename = "
                       "'only_here'")
                .value(),
            "1");
}
TEST_F(OrdersTest, IsNotInTheNext) {
  EXPECT_EQ(db().Query("SELECT count(*) FROM pg_tables WHERE tablename = "
                       "'only_here'")
                .value(),
            "0");
}

TEST_F(OrdersTest, EachTestHasItsOwnDatabaseOnTheSharedServer) {
  EXPECT_THAT(server().DatabasesInUse(), ::testing::ElementsAre(db().name()));
  EXPECT_EQ(db().Query("SELECT current_database()").value(), db().name());
  EXPECT_THAT(db().Uri(), HasSubstr("postgresql://postgres@/" + db().name() +
                                    "?host=" + server().socket_dir()));
  absl::StatusOr<PostgresServer*> again = PostgresServer::Shared();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, &server());
  // Errors are PostgreSQL's own.
  absl::StatusOr<std::string> bad = db().Query("SELECT * FROM missing");
  EXPECT_THAT(bad.status().message(),
              HasSubstr("relation \"missing\" does not exist"));
}

TEST_F(OrdersTest, TwoDatabasesAtOnceAreApart) {
  absl::StatusOr<PostgresDatabase> other = server().NewDatabase();
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(other->Query("CREATE TABLE t (x int)").ok());
  EXPECT_FALSE(db().Query("SELECT * FROM t").ok());
  std::string name = other->name();
  other->Release();
  EXPECT_THAT(other->Query("SELECT 1").status().message(),
              HasSubstr("was released"));
  EXPECT_THAT(server().DatabasesInUse(), ::testing::ElementsAre(db().name()));
}

class CustomersTest : public PostgresTest {
 protected:
  PostgresOptions ServerOptions() const override {
    PostgresOptions options;
    options.name = "customers-db";
    options.init_scripts = {kSchema};
    return options;
  }
};

TEST_F(CustomersTest, EveryDatabaseStartsWithTheScriptsRows) {
  EXPECT_EQ(db().Query("SELECT name FROM customers ORDER BY id").value(),
            "Ada\nGrace");
  ASSERT_TRUE(db().Query("DELETE FROM customers").ok());
}
TEST_F(CustomersTest, EvenAfterAnotherTestDeletedThem) {
  EXPECT_EQ(db().Query("SELECT count(*) FROM customers").value(), "2");
}

// --- A server of its own ----------------------------------------------------

TEST(PostgresServerTest, AServerOfItsOwnInAHarnessWithItsDetails) {
  PostgresServer postgres;
  StartStopHarness harness({&postgres});
  ::testing::AssertionResult started = harness.StartAll();
  SKIP_IF_NOT_INSTALLED(postgres.Snapshot().status);
  ASSERT_TRUE(started);
  absl::StatusOr<PostgresDatabase> db = postgres.NewDatabase();
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(db->Query("SELECT 1").value(), "1");
  EXPECT_THAT(postgres.version(), HasSubstr("PostgreSQL "));
  lifecycle::ServiceSnapshot s = postgres.Snapshot();
  std::map<std::string, std::string> details(s.details.begin(),
                                             s.details.end());
  EXPECT_EQ(details["uri"], postgres.Uri());
  EXPECT_EQ(details["version"], postgres.version());
  EXPECT_EQ(details["data"], postgres.data_dir());
  EXPECT_THAT(details["log"], HasSubstr("postgres.postgres.log"));
  ASSERT_EQ(s.children.size(), 1u);
  EXPECT_EQ(s.children[0].path, "postgres/postgres");
  db->Release();
  ASSERT_TRUE(harness.StopAll());
  EXPECT_EQ(postgres.NewDatabase().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(PostgresServerTest, AnInitScriptErrorNamesTheFileTheLineAndTheMessage) {
  std::string script = ShortTempDir() + "/bad.sql";
  std::ofstream(script) << "CREATE TABLE a (x int);\n"
                        << "-- a comment\n"
                        << "CREATE TABLE b (x int) WITH NONSENSE;\n";
  PostgresOptions options;
  options.init_scripts = {script};
  PostgresServer postgres(options);
  absl::Status start = postgres.Start(lifecycle::Context::Background());
  SKIP_IF_NOT_INSTALLED(start);
  EXPECT_EQ(start.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(start.message(), HasSubstr("init script " + script + ":3: "));
  EXPECT_THAT(start.message(), HasSubstr("syntax error"));
}

TEST(PostgresServerTest, AMissingInitScriptIsNamed) {
  PostgresOptions options;
  options.init_scripts = {"/nonexistent/schema.sql"};
  PostgresServer postgres(options);
  absl::Status start = postgres.Start(lifecycle::Context::Background());
  EXPECT_THAT(start.message(), HasSubstr("/nonexistent/schema.sql"));
}

// The API starts once its database is ready; the database is restarted by
// supervision after its postmaster is killed, on the same data.
TEST(PostgresServerTest, InAGraphAndRestartedOnItsData) {
  PostgresServer postgres;
  std::string seen;
  lifecycle::FuncService api("api", [&](const lifecycle::Context& ctx,
                                        absl::FunctionRef<void()> started) {
    seen = postgres.Query("postgres", "SELECT 1").value_or("error");
    started();
    ctx.Done().Wait();
    return absl::OkStatus();
  });
  lifecycle::CompositeService app("app");
  app.AddOrDie(postgres, lifecycle::Supervision::Restart());
  app.AddOrDie(api, lifecycle::After(postgres));
  StartStopHarness harness({&app});
  ::testing::AssertionResult started = harness.StartAll();
  SKIP_IF_NOT_INSTALLED(postgres.Snapshot().last_failure);
  ASSERT_TRUE(started);
  EXPECT_EQ(seen, "1");
  ASSERT_TRUE(postgres.Query("postgres", "CREATE TABLE kept (x int)").ok());
  const std::string data = postgres.data_dir();

  // Killed: the child's run fails, the composite restarts the module.
  lifecycle::ServiceSnapshot before = postgres.Snapshot();
  std::map<std::string, std::string> details(
      before.children.at(0).details.begin(),
      before.children.at(0).details.end());
  pid_t postmaster = std::atoi(details["pid"].c_str());
  ASSERT_GT(postmaster, 0);
  harness.ExpectFailure("app/postgres");
  ASSERT_EQ(kill(postmaster, SIGKILL), 0);
  const absl::Time deadline = absl::Now() + 2 * WaitTimeout();
  while (true) {
    lifecycle::Signal change = postgres.NextChange();  // before the look
    lifecycle::ServiceSnapshot now = postgres.Snapshot();
    if (now.restart_count == 1 &&
        now.state == lifecycle::ServiceState::kStarted) {
      break;
    }
    ASSERT_TRUE(change.WaitUntil(deadline)) << harness.Report();
  }
  EXPECT_EQ(postgres.data_dir(), data);
  EXPECT_EQ(postgres
                .Query("postgres",
                       "SELECT count(*) FROM pg_tables WHERE "
                       "tablename = 'kept'")
                .value(),
            "1");
  ASSERT_TRUE(harness.StopAll());
}

// --- A test that keeps its database ----------------------------------------

constexpr char kLeakChild[] = "LIFECYCLE_POSTGRES_LEAK_CHILD";

// Run by the test below in a child process: keeps a database past its end.
TEST(PostgresLeakChild, KeepsADatabase) {
  if (std::getenv(kLeakChild) == nullptr) GTEST_SKIP() << "run by a test";
  absl::StatusOr<PostgresServer*> server = PostgresServer::Shared();
  ASSERT_TRUE(server.ok()) << server.status();
  static auto* kept =
      new absl::StatusOr<PostgresDatabase>((*server)->NewDatabase());
  ASSERT_TRUE(kept->ok());
}

TEST(PostgresLeakTest, ADatabaseKeptPastTheTestFailsItNamingTheDatabase) {
  if (access("/usr/lib/postgresql/15/bin/postgres", X_OK) != 0) {
    GTEST_SKIP()
        << "/usr/lib/postgresql/15/bin/postgres is not installed "
           "(Debian package postgresql-15; tools/setup.sh installs it)";
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
       "--gtest_filter=PostgresLeakChild.*"},
      "", absl::Seconds(120), &out);
  EXPECT_FALSE(run.ok()) << out;
  EXPECT_THAT(out, HasSubstr("PostgresLeakChild.KeepsADatabase kept 1 "
                             "database(s) of the shared postgres past its "
                             "end (a PostgresDatabase not released): test_"));
  EXPECT_THAT(out, HasSubstr("[  FAILED  ] PostgresLeakChild.KeepsADatabase"));
}

}  // namespace
}  // namespace lifecycle_testing
