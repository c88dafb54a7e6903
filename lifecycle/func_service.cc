#include "lifecycle/func_service.h"

#include <utility>

namespace lifecycle {

FuncService::FuncService(std::string name, RunFunction run)
    : BaseService(std::move(name)), run_(std::move(run)) {}

absl::Status FuncService::Run(const Context& ctx,
                              absl::FunctionRef<void()> started) {
  return run_(ctx, started);
}

}  // namespace lifecycle
