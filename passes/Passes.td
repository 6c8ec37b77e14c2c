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

def ShardFsdpPass : Pass<"forge-shard-fsdp", "::mlir::ModuleOp"> {
  let summary = "FSDP: parameters sharded over dp_shard, gathered before use";
  let description = [{
    For a module whose `dist.mesh` has a `dp_shard` dim of size n > 1
    (reference §3.5, FSDP2's fully_shard): every trainable `forge.param`
    becomes its local shard, dim 0 split into n contiguous blocks (its type
    is the shard; `dist.shard = {dim = 0, group = "dp_shard"}` records the
    spec), and every `forge.get_param` of it in a program is followed by a
    `dist.all_gather {data_parallel}` that rebuilds the full tensor for its
    uses. Autodiff then turns each all-gather into the reduce-scatter (mean
    over the group) of the gradient, so gradients, and the optimizer state
    built from them, are sharded too. Persistent buffers that are not
    trained stay replicated. A dim 0 that n does not divide is an error
    (FSDP2 pads uneven shards; forge does not yet).

    The gathered weights stay live from the forward to their backward use
    (no reshard after forward yet): `forgec --report` shows that memory.
  }];
  let dependentDialects = ["::forge::ForgeDialect", "::forge::dist::DistDialect",
                           "::mlir::func::FuncDialect"];
}

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
  let dependentDialects = ["::forge::ForgeDialect", "::forge::dist::DistDialect",
                           "::mlir::func::FuncDialect"];
}

def BuildOptimizerPass : Pass<"forge-build-optimizer", "::mlir::ModuleOp"> {
  let summary = "Gradient accumulation, clipping, optimizer update and the LR schedule";
  let description = [{
    Turns the differentiated `@train_step` into one micro-step: each
    gradient, scaled by `1 / grad_accum_steps`, is added to its accumulator
    buffer `grad.<fqn>` and the function returns the loss alone. A new
    `func.func @optimizer_step(%step: tensor<i64>) -> (grad_norm, lr)` then
    computes the global gradient norm (the logged, pre-clip value), the clip
    coefficient for `grad_clip_norm`, the learning rate (`lr` times the
    schedule's factor at `step`, the number of completed optimizer steps),
    updates every trainable parameter in place and zeroes the accumulators.
    State buffers are named `optimizer.<state key>.<fqn>` with
    KempnerForge's state keys, in the parameter's dtype:

    - `adamw`: `forge.adamw_update`; `exp_avg`, `exp_avg_sq`.
    - `lion`: `forge.lion_update`; `exp_avg`.
    - `muon`: parameters with >= 2 dimensions whose shape, flattened to
      dim 0 x the rest, has an aspect ratio of at most 10 get
      `forge.muon_update` (`momentum_buffer`); the others (1-D parameters,
      embeddings and heads with a large vocabulary) get
      `forge.adamw_update` (`exp_avg`, `exp_avg_sq`) at `muon_adam_lr`
      (or `lr` when unset) times the same schedule factor.
    - `schedule_free_adamw`: `forge.schedule_free_count` once per step on
      the shared buffer `optimizer.schedule_free` (step count and averaging
      weight), then `forge.schedule_free_adamw_update` per parameter (`z`,
      `v`, `x`); the parameters hold `y`. Two more programs without inputs
      or outputs, `@eval_params` (parameters <- `x`) and `@train_params`
      (parameters <- `y`), are for the runtime to run before and after
      evaluation. `z` starts from the parameter on the first update, so no
      initialization program is needed.

    Weight decay follows KempnerForge's groups: parameters with >= 2
    dimensions whose name does not contain "bias" decay, the rest do not.

    The settings come from the module attributes `forge.train`,
    `forge.optimizer` and `forge.schedule` that the model frontend records
    (`muon_momentum`, `muon_ns_steps` and the optional `muon_adam_lr` for
    Muon, `schedule_free_warmup` for schedule-free AdamW). Other optimizers
    (registered by plugins) are rejected with a clear error.
  }];
  let dependentDialects = ["::forge::ForgeDialect", "::forge::dist::DistDialect",
                           "::mlir::func::FuncDialect"];
}

def PlanMemoryPass : Pass<"forge-plan-memory", "::mlir::ModuleOp"> {
  let summary = "Liveness-based layout of every tensor in one arena";
  let description = [{
    Places every tensor of `@train_step` and `@optimizer_step` in one arena
    per rank and records it in the IR: `exec.offset` on each `forge.param`
    and program argument, `exec.offsets` (one per result) on each op, and
    the module attribute `exec.memory` (bytes of parameters, gradients,
    optimizer state, other state, inputs, activations at peak, total).
    Persistent tensors come first in declaration order; activations share
    one region above them that each program reuses from its start, placed
    first-fit in op order and freed after their last use, so `total` is the
    exact peak. `forge.reshape` is a view of its input's storage and
    `forge.get_param` reads the parameter in place. Offsets are 64-byte
    aligned. The plan writer serializes this layout unchanged.
  }];
  let dependentDialects = ["::forge::ForgeDialect", "::forge::dist::DistDialect",
                           "::mlir::func::FuncDialect"];
}

#endif // FORGE_PASSES_TD
