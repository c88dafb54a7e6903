// -----------------------------------------------------------------------------
// mock_service.h
// -----------------------------------------------------------------------------
//
// A gMock `lifecycle::Service`, for tests of code that drives services and must
// call them in a certain way (for example: "stops what it started, once"):
//
//   lifecycle_testing::MockService db;
//   ON_CALL(db, Name()).WillByDefault(Return("db"));
//   EXPECT_CALL(db, Start(_)).WillOnce(Return(absl::UnavailableError("down")));
//   EXPECT_CALL(db, Stop()).Times(0);
//
// A mock keeps no contract by itself; to test the contract, use `FakeService`.
//
// Thread safety: as gMock's mocks: expectations are set before the code under
// test runs; the mocked calls may then come from any thread.

#ifndef LIFECYCLE_TESTING_MOCK_SERVICE_H_
#define LIFECYCLE_TESTING_MOCK_SERVICE_H_

#include <string_view>

#include "gmock/gmock.h"
#include "lifecycle/service.h"

namespace lifecycle_testing {

class MockService : public lifecycle::Service {
 public:
  MOCK_METHOD(absl::Status, Start, (const lifecycle::Context& ctx), (override));
  MOCK_METHOD(lifecycle::Signal, Started, (), (const, override));
  MOCK_METHOD(void, Stop, (), (override));
  MOCK_METHOD(absl::Status, StopFor, (absl::Duration timeout), (override));
  MOCK_METHOD(lifecycle::Signal, Stopped, (), (const, override));
  MOCK_METHOD(std::string_view, Name, (), (const, override));
  MOCK_METHOD(lifecycle::ServiceSnapshot, Snapshot, (), (const, override));
};

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_MOCK_SERVICE_H_
