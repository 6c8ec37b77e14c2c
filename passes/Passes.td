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

def SplitPipelinePass : Pass<"forge-split-pipeline", "::mlir::ModuleOp"> {
  let summary = "Pipeline parallelism over pp: one nested module per stage";
  let description = [{
    For a module whose `dist.mesh` has a `pp` dim of size n > 1 (reference
    §3.9): the layers (found from the ops' `layers.N` locations) are cut
    into n contiguous stages, L // n layers each and one more on the first
    L % n; the embedding goes to the first stage, the final norm, head and
    loss to the last. Each stage becomes a nested `builtin.module @stageS`
    (attribute `dist.stage = S`, the parent's settings copied) holding its
    parameters and its `@train_step` / `@eval_step`: a stage after the
    first begins with `dist.recv` of the hidden state from stage S - 1, a
    stage before the last ends with `dist.send` of its hidden state to
    stage S + 1 and returns the send's zero result as its loss, so
    forge-build-backward differentiates through it (the VJP of a send
    receives the gradient, that of a receive sends it back).

    Every later pass runs on each stage module (forgec nests them; with
    forge-opt use
    `--pass-pipeline='builtin.module(builtin.module(PASS))'`).
    forge-schedule turns each stage's step into forward and backward
    programs ordered by `distributed.pp_schedule`. Only the hidden state may
    cross a stage boundary: tied embeddings (a weight read on two stages)
    and values that skip a stage (MoE aux losses) are errors, as are fewer
    layers than stages.

    With `interleaved_1f1b` (virtual stages, Megatron-LM's interleaved
    schedule) the layers are cut the same way into 2n model chunks, chunk c
    going to stage c % n: a stage's `@train_step` holds its two chunks one
    after the other, each receiving from the stage before and sending to
    the stage after, with tag 2c for chunk c's forward message and 2c + 1
    for its gradient (so the chunks' messages between two stages never
    mix), and returns the sum of the chunks' results (`forge.add` ops
    marked `dist.pipeline_glue`). Fewer layers than chunks are an error.
  }];
  let dependentDialects = ["::forge::ForgeDialect", "::forge::dist::DistDialect",
                           "::mlir::func::FuncDialect"];
}

def ShardTensorParallelPass
    : Pass<"forge-shard-tensor-parallel", "::mlir::ModuleOp"> {
  let summary = "Tensor parallelism over tp: Megatron column/row-parallel linears";
  let description = [{
    For a module whose `dist.mesh` has a `tp` dim of size n > 1, the plan of
    reference §3.3: in every block, `attention.{q,k,v}_proj.weight` and a
    dense MLP's `gate_proj` / `up_proj` weights keep 1/n of their rows
    (column-parallel, `dist.shard` split `{dim = 0, group = "tp"}`),
    `o_proj` and `down_proj` 1/n of their columns (row-parallel,
    `{dim = 1, group = "tp"}`), so each rank holds n_heads/n query heads,
    n_kv_heads/n kv heads and 1/n of the hidden units. Ops between them
    (reshapes, QK-norm, RoPE, attention, activation, gating) run on the
    rank's share; a replicated weight used there (QK-norm) is wrapped in a
    `dist.copy`, so its gradient is summed over tp. MoE MLPs (router,
    experts, shared expert) stay replicated, as in KempnerForge.

    Without sequence parallelism the residual stream, norms, embedding and
    head are replicated: the input of the column-parallel linears goes
    through one `dist.copy` (forward identity; its VJP all-reduces the
    partial input gradients) and each row-parallel output through a
    `dist.all_reduce` sum.

    With the module attribute `dist.sequence_parallel` (config
    `distributed.sequence_parallel`, default on) and where §3.3 enables it
    (no MoE block, untied embeddings), the residual stream is cut along the
    sequence (dim 1): `dist.slice` after the embedding, norms on each
    rank's block (their weights wrapped in `dist.copy`), a
    `dist.all_gather` of the sequence before the column-parallel linears
    and a `dist.reduce_scatter` sum after the row-parallel ones. The output
    head is then column-parallel over the vocabulary and its logits are
    gathered (`dist.all_gather {slice_grad}`) for the replicated loss; with
    chunked cross-entropy the head stays replicated and the final norm's
    output is gathered instead. seq_len must be divisible by n.

    A weight whose split dim n does not divide is an error. Runs first, so
    forge-shard-fsdp then shards each rank's block over dp_shard (2-D, TP x
    FSDP) and autodiff places the backward collectives.
  }];
  let dependentDialects = ["::forge::ForgeDialect", "::forge::dist::DistDialect",
                           "::mlir::func::FuncDialect"];
}

def ShardExpertsPass : Pass<"forge-shard-experts", "::mlir::ModuleOp"> {
  let summary = "Expert parallelism over ep: experts split, tokens moved by all-to-all";
  let description = [{
    For a module whose `dist.mesh` has an `ep` dim of size n > 1 (reference
    §3.4): each rank keeps the E/n experts `[r * E/n, (r+1) * E/n)` of every
    MoE MLP. A packed expert weight `[E, ., .]` gets the split
    `{dim = 0, group = "ep"}`; the E per-expert parameters of a projection
    (`layers.L.mlp.experts.<e>.gate_proj.weight`) become one stacked
    parameter `layers.L.mlp.experts.*.gate_proj.weight` `[E, out, in]`
    with that split, whose dim-0 rows the runtime names by expert (init
    seeds, checkpoints and exports keep the per-expert FQNs).

    After `forge.moe_dispatch`, a `dist.expert_dispatch` sends each rank
    the token rows of its experts (an all-to-all of counts, then of rows);
    the grouped linears and activations run on the received rows with the
    local experts; a `dist.expert_combine` returns the outputs before
    `forge.moe_combine`. Routing, capacity, aux and z losses, the shared
    expert and the combine weights stay with the tokens' rank, as without
    expert parallelism.

    Unlike KempnerForge (whose ep ranks read identical batches), ep ranks
    read different batches: they are data-parallel for every non-expert
    parameter (forge-build-optimizer averages those gradients over ep) and
    each expert's gradient, summed over the group's tokens through the
    all-to-all, is divided by n. Runs after forge-shard-tensor-parallel
    (which leaves MoE MLPs replicated) and before forge-shard-fsdp, which
    shards each rank's experts further over dp_shard. Muon with ep > 1 is
    rejected (it would see a stacked weight as one matrix).
  }];
  let dependentDialects = ["::forge::ForgeDialect", "::forge::dist::DistDialect",
                           "::mlir::func::FuncDialect"];
}

def ConvertFp8Pass : Pass<"forge-convert-fp8", "::mlir::ModuleOp"> {
  let summary = "FP8 training: linears as fp8 matmuls with dynamic tensor-wise scales";
  let description = [{
    With the module attribute `forge.fp8` (`train.mixed_precision =
    "fp8"`; parameters are bf16 masters), reference §3.8's torchao
    tensorwise recipe: every `forge.linear` whose weight is a parameter
    naming none of `experts`, `shared_expert`, `router` (attention q/k/v/o,
    dense MLP, output head) becomes
    `fp8_grad_cast(linear(fp8_cast(x, e4m3), fp8_cast(w, e4m3)))`: both
    forward operands rounded through e4m3 with their own dynamic scale, and,
    through `forge.fp8_grad_cast`'s VJP, the output gradient through e5m2
    for both backward matmuls. Grouped expert GEMMs, routers and the
    embedding stay in bf16; so does the head inside chunked cross-entropy
    (fused, not a linear). The CPU backend emulates the casts exactly;
    the CUDA backend runs a linear whose operands are both fp8 casts on
    fp8 tensor cores from sm_89 (docs/cuda.md).
  }];
  let dependentDialects = ["::forge::ForgeDialect", "::mlir::func::FuncDialect"];
}

def CheckpointActivationsPass
    : Pass<"forge-checkpoint-activations", "::mlir::ModuleOp"> {
  let summary = "Activation checkpointing: marks the forward ops the backward recomputes";
  let description = [{
    With the module attribute `forge.activation_checkpointing`
    (`train.activation_checkpointing`), marks ops of `@train_step` with
    `forge.remat = N`, the transformer block they belong to;
    forge-build-backward then recomputes each marked region from its
    inputs right before the region's VJPs, and the forward values inside it
    are freed after the forward pass.

    - `full` (reference §3.7): every op of every block, norms, attention,
      MLP or MoE, routing and collectives included; only each block's
      input (and values used outside the block) is kept.
    - `selective` (torchtitan's op-level policy): in every block the
      outputs of matmuls (`forge.linear`, `forge.grouped_linear`) and of
      collectives are kept, everything else (norms, RoPE, attention,
      activations, gating, MoE routing and dispatch, residual adds) is
      recomputed. Unlike KempnerForge this is not attention-only, and AC
      also applies to MoE blocks.

    Blocks come from the IR alone: an op reading a parameter `layers.N.*`
    is in block N, one reading another parameter in none, and an op
    without parameter operands in the latest block of its operands.
    Recomputation runs the same kernels on the same inputs, so training is
    bit-identical to no AC on the CPU.
  }];
  let dependentDialects = ["::forge::ForgeDialect", "::forge::dist::DistDialect",
                           "::mlir::func::FuncDialect"];
}

def ShardFsdpPass : Pass<"forge-shard-fsdp", "::mlir::ModuleOp"> {
  let summary = "FSDP: parameters sharded over dp_shard, gathered before use";
  let description = [{
    For a module whose `dist.mesh` has a `dp_shard` dim of size n > 1
    (reference §3.5, FSDP2's fully_shard): every trainable `forge.param`
    becomes its local shard, dim 0 split into n contiguous blocks (its type
    is the shard; the split `{dim = 0, group = "dp_shard"}` is appended to
    its `dist.shard`, after tensor parallelism's), and every
    `forge.get_param` of it in a program is followed by a
    `dist.all_gather {data_parallel}` that rebuilds the full tensor for its
    uses. Autodiff then turns each all-gather into the reduce-scatter (mean
    over the group) of the gradient, so gradients, and the optimizer state
    built from them, are sharded too. Persistent buffers that are not
    trained stay replicated. A dim 0 that n does not divide is padded as
    FSDP2 does: blocks of ceil(d0 / n) rows, the split records
    `size = d0`, and the last blocks end in zero rows that the collectives
    drop and pad again (their gradient and optimizer state stay zero).

    Reshard after forward (FSDP2's default, which KempnerForge keeps) is
    forge-build-backward's: the backward gathers each weight again.

    With fp8 training (forge-convert-fp8 runs first), a gather whose only
    readers are `forge.fp8_cast`s of one format takes the cast in:
    `dist.all_gather {fp8 = "e4m3"}` yields the cast's values while moving
    one byte per element (FSDP2's float8 all-gather; the runtime agrees on
    the tensor-wise scale with an all-reduce of the shards' amax first).
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
    communication (design.md §1). An FSDP weight (`dist.all_gather
    {data_parallel}` of a `forge.get_param`) that a VJP reads is gathered
    again right before its first backward use, so the forward copy is freed
    after its last forward use (FSDP2's reshard_after_forward).
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

def SchedulePass : Pass<"forge-schedule", "::mlir::ModuleOp"> {
  let summary = "Program order and streams: kernels on stream 0, collectives on 1";
  let description = [{
    Fixes, for each program (`func.func`), the order its ops run in and the
    stream each one runs on. The order is a topological sort of the
    program's dependences (the uses of values; for each parameter, the
    order of its `forge.get_param` reads and `forge.set_param` writes; ops
    with unknown effects keep their place among effectful ops) that runs
    the earliest ready op first, so the result is stable: a program already
    in a topological order, as the frontend's and autodiff's output always
    is, keeps it. Every op gets `exec.stream`: 1 for the `dist` collectives,
    0 for everything else. Then each FSDP weight gather (a `forge.get_param`
    read only by a `dist.all_gather {data_parallel}`) moves up to just
    before the op that first reads the previous weight gather's result
    (prefetch one ahead, as FSDP2 does in forward and backward), unless the
    program writes that parameter.

    The CPU runtime runs the collectives that communicate on a
    communication thread, in program order, at most `kCommWindow` (2) in
    flight; a kernel waits for the collectives whose buffers it touches.
    forge-plan-memory keeps a collective's buffers live until it has surely
    finished.

    On a pipeline stage (`dist.stage`, after forge-split-pipeline) it first
    computes the stage's actions under `distributed.pp_schedule` (`gpipe`,
    `1f1b`, `interleaved_1f1b`; micro-batches = `train.grad_accum_steps`)
    and splits `@train_step` at the backward's first op into
    `@forward.K` and `@backward.K` per activation slot K (the micro-batches
    in flight): the forward values the backward reads go to per-slot
    buffers `pipeline.stash.K.I`, parameter reads and constants are
    repeated. With virtual stages each model chunk J, found as the
    connected part of the step holding the chunk's sends and receives,
    gets its own `@forward.J.K` / `@backward.J.K` and `pipeline.stash.J.K.I`.
    The actions go to `dist.pipeline_actions` as (backward, micro-batch,
    slot, chunk).

    It runs after forge-build-optimizer, so that forge-plan-memory lays out
    memory in the scheduled order.
  }];
  let dependentDialects = ["::forge::ForgeDialect", "::forge::dist::DistDialect",
                           "::forge::exec::ExecDialect",
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

    Updates happen in place where that is safe: a `forge.adamw_update` or
    `forge.lion_update` result, or a `forge.add` (gradient accumulation),
    whose only use is the `forge.set_param` of the very parameter its
    operand read, gets that parameter's storage when nothing reads the old
    value after it (these kernels go element by element). A `forge.fill`
    whose only use is a `forge.set_param` (the optimizer step zeroing a
    gradient accumulator) is written straight into that parameter on the same
    condition. The set_param then copies nothing, and no temporary is
    allocated.
  }];
  let dependentDialects = ["::forge::ForgeDialect", "::forge::dist::DistDialect",
                           "::mlir::func::FuncDialect"];
}

def ConvertForgeToExecPass : Pass<"convert-forge-to-exec", "::mlir::ModuleOp"> {
  let summary = "Lowers the laid-out forge and dist IR to exec IR";
  let description = [{
    Turns the module that forge-plan-memory laid out into exec IR, which is
    all the plan writer reads:

    - `exec.arena`: the `total` bytes of `exec.memory`, aligned to 64;
    - an `exec.buffer` per `forge.param` (its FQN; role parameter, or for
      buffers gradient (`grad.*`), optimizer state (`optimizer.*`) or
      state; its offset, initializer and, from `dist.shard`, its splits and
      global shape), per program argument (`<program>.arg<N>`, role input)
      and per op result (`<program>.v<N>`, role activation). A
      `forge.reshape` is a view: a buffer at its input's offset, no launch;
      a `forge.get_param` is the parameter's buffer;
    - an `exec.program` per `func.func` (inputs: its arguments' buffers,
      outputs: its returned values' buffers) holding, in program order, an
      `exec.launch` per forge op (kernel: the op's name; its attributes
      except the layout and symbol references, enums as strings;
      `forge.set_param` writes the parameter's buffer) and an
      `exec.collective` per `dist` op (kind, group, dim, reduce, its other
      attributes, and its origin: the parameter or buffer it moves, the
      parameter whose gradient it produces, or the op whose result it
      moves).

    Each launch keeps its op's location and the stream forge-schedule gave
    it (`exec.stream` is required: run forge-schedule first). The forge ops
    and the `exec.offset`, `exec.offsets` and `exec.memory` attributes are
    gone afterwards; `dist.mesh` and the other module attributes stay.
  }];
  let dependentDialects = ["::forge::exec::ExecDialect"];
}

#endif // FORGE_PASSES_TD
