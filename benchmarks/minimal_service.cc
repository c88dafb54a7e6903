// The smallest production use of the library: one service started and
// stopped. Its binary size is the library's footprint for a user who prints
// no snapshot and captures no stack (docs/PERFORMANCE.md, "Footprint").
#include "lifecycle/base_service.h"
#include "lifecycle/func_service.h"

int main() {
  lifecycle::FuncService service(
      "minimal",
      [](const lifecycle::Context& ctx, absl::FunctionRef<void()> started) {
        started();
        ctx.Done().Wait();
        return absl::OkStatus();
      });
  if (!service.Start(lifecycle::Context::Background()).ok()) return 1;
  service.Started().Wait();
  service.Stop();
  return 0;
}
