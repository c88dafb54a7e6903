// -----------------------------------------------------------------------------
// conformance.h
// -----------------------------------------------------------------------------
//
// A value-parameterized GoogleTest suite that checks the whole `Service`
// contract (service.h) on any implementation. Instantiate it with a factory
// that makes a fresh service, ready to start, that starts by itself (no test
// help needed):
//
//   using lifecycle_testing::ServiceConformanceTest;  // the macro wants a
//                                                     // plain name
//   INSTANTIATE_TEST_SUITE_P(
//       Client, ServiceConformanceTest,
//       ::testing::Values(lifecycle_testing::ServiceFactory{
//           "Client", [] { return std::make_unique<Client>(); }}),
//       lifecycle_testing::ServiceFactoryName);
//
// It checks the bounded stop (`StopFor`) too, and, when the factory says how
// to end a run from outside (`end_run`), that a run that ends on its own is
// observable.
//
// Every check waits with `WaitTimeout()`, so a broken service fails with a
// report rather than hanging.
//
// Thread safety: the suite's own checks start threads where the contract
// says a service must stand concurrent calls; a factory is called from the
// test's thread.

#ifndef LIFECYCLE_TESTING_CONFORMANCE_H_
#define LIFECYCLE_TESTING_CONFORMANCE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lifecycle/service.h"

namespace lifecycle_testing {

struct ServiceFactory {
  std::string name;  // shown in test names: letters, digits, '_' only
  std::function<std::unique_ptr<lifecycle::Service>()> make;
  // Optional: makes the started service's run end on its own (an error, or a
  // return nobody asked for), as a bug or a lost connection would. With it,
  // the suite checks that such an end is observable: `Stopped()` closes and
  // the snapshot says how it ended.
  std::function<void(lifecycle::Service&)> end_run = nullptr;
};

// For INSTANTIATE_TEST_SUITE_P's name generator argument.
std::string ServiceFactoryName(
    const ::testing::TestParamInfo<ServiceFactory>& info);

class ServiceConformanceTest : public ::testing::TestWithParam<ServiceFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // The service under test, for the reports of waits.
  std::vector<lifecycle::Service*> Self() const { return {service_.get()}; }
  std::unique_ptr<lifecycle::Service> service_;
};

}  // namespace lifecycle_testing

#endif  // LIFECYCLE_TESTING_CONFORMANCE_H_
