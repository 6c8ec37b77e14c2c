//===- forge-opt.cpp - Parse, verify, transform and print forge IR --------===//
//
// The mlir-opt of forge: every forge pass is testable in isolation with
// `forge-opt --<pass> file.mlir`. Registration is narrow on purpose (design.md
// §5.4): forge's own dialects and passes plus the few upstream dialects the
// IR uses, never registerAll*.
//
//===----------------------------------------------------------------------===//

#include "dialects/forge/IR/ForgeDialect.h"
#include "forge/Version.h"
#include "passes/Passes.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/raw_ostream.h"

int main(int argc, char **argv) {
  llvm::cl::AddExtraVersionPrinter([](llvm::raw_ostream &os) {
    os << "forge-opt " << FORGE_VERSION_STRING << "\n";
  });
  mlir::DialectRegistry registry;
  forge::registerForgeDialects(registry);
  forge::registerForgePasses();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "forge-opt: parse, verify, transform and print forge IR\n",
      registry));
}
