//===- Passes.td - forge passes ----------------------------*- tablegen -*-===//
//
// Every forge pass, in the canonical order of design.md §1. One name in four
// places: flag `forge-verb-noun`, def `VerbNounPass`, file `VerbNoun.cpp`,
// test `test/passes/verb-noun.mlir`.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_PASSES_TD
#define FORGE_PASSES_TD

include "mlir/Pass/PassBase.td"

def BuildBackwardPass : Pass<"forge-build-backward", "::mlir::ModuleOp"> {
  let summary = "Reverse-mode autodiff of @train_step";
  let description = [{
    Appends the backward pass to `func.func @train_step`: starting from a
    cotangent of 1 for the loss, it walks the forward ops in reverse and
    emits each op's vector-Jacobian product (the `*_grad` ops of the forge
    dialect, or forward ops where the VJP is one: reshape, add, mul, scale,
    unstack for stack). Cotangents of a value used several times are summed.
    The function then returns the loss followed by one gradient per
    trainable `forge.param`, in declaration order; the `forge.grads`
    attribute of the function names the parameter of each gradient result.
    Parameters the loss does not depend on get a zero gradient.

    Running after the sharding passes is deliberate: the VJP of each
    collective (all-gather <-> reduce-scatter, ...) then places the backward
    communication (design.md §1).
  }];
  let dependentDialects = ["::forge::ForgeDialect", "::mlir::func::FuncDialect"];
}

#endif // FORGE_PASSES_TD
