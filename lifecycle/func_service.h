// -----------------------------------------------------------------------------
// func_service.h
// -----------------------------------------------------------------------------
//
// `FuncService`: a `BaseService` (base_service.h) whose `Run()` is a function,
// for services too small for a class of their own.
//
// Thread safety: as `BaseService`, all public members are thread-safe.

#ifndef LIFECYCLE_FUNC_SERVICE_H_
#define LIFECYCLE_FUNC_SERVICE_H_

#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "lifecycle/base_service.h"
#include "lifecycle/context.h"

namespace lifecycle {

// A service made from a function (River's `StartStopFunc`): `run` is the body
// of `Run()`. Example:
//
//   lifecycle::FuncService heartbeat("heartbeat",
//       [&](const lifecycle::Context& ctx, absl::FunctionRef<void()> started) {
//         started();
//         while (!ctx.Done().WaitFor(absl::Seconds(1))) SendHeartbeat();
//         return absl::OkStatus();
//       });
class FuncService final : public BaseService {
 public:
  using RunFunction = absl::AnyInvocable<absl::Status(
      const Context& ctx, absl::FunctionRef<void()> started)>;

  FuncService(std::string name, RunFunction run);
  ~FuncService() override { StopForDestruction(); }

 private:
  absl::Status Run(const Context& ctx,
                   absl::FunctionRef<void()> started) override;
  RunFunction run_;
};

}  // namespace lifecycle

#endif  // LIFECYCLE_FUNC_SERVICE_H_
