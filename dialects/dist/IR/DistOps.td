//===- DistOps.td - Collectives over mesh groups -----------*- tablegen -*-===//

#ifndef DIST_OPS_TD
#define DIST_OPS_TD

include "dialects/dist/IR/DistDialect.td"
include "mlir/IR/BuiltinAttributes.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Dist_FloatTensor : RankedTensorOf<[AnyFloat]>;

// The verifier of every collective checks `group` and `group_size` against
// the module's `dist.mesh`, so a dumped IR file cannot disagree with it.
class Dist_CollectiveOp<string mnemonic, list<Trait> traits = []>
    : Dist_Op<mnemonic, !listconcat(traits, [Pure])> {
  let hasVerifier = 1;
}

def Dist_AllGatherOp : Dist_CollectiveOp<"all_gather"> {
  let summary = "Concatenates every rank's tensor of a group along a dim.";
  let description = [{
    Each of the `group_size` ranks of mesh dim `group` contributes its
    `input`; every rank gets their concatenation along `dim`, in group-rank
    order. FSDP gathers a parameter's shards with it before each use, and
    sequence parallelism the sequence blocks of the activations before the
    column-parallel linears. Its VJP is a `dist.reduce_scatter` (sum) of
    the cotangent along the same dim, because each rank's consumers
    computed part of the gradient of the whole result: with
    `reduce = "avg"` when `data_parallel` is set, because the ranks of a
    data-parallel group compute the mean loss of different batches, and
    the job's loss is the mean over them. With `slice_grad` the consumers
    are replicated computations whose cotangent is already complete on
    every rank (the gathered logits before the loss), and the VJP is a
    `dist.slice` of it: each rank keeps its own block.

    With `fp8 = "e4m3"` (or `"e5m2"`) the result is that of a
    `forge.fp8_cast` of the gathered tensor, and the bytes that move are
    fp8: the ranks agree on the tensor-wise scale (an all-reduce of the
    shards' largest magnitudes), each casts its shard and the group gathers
    one byte per element. forge-shard-fsdp fuses a weight gather with the
    fp8 cast that reads it (FSDP2's fp8 all-gather). The VJP is unchanged:
    the cast's is the identity.

    Example:

    ```mlir
    %w = dist.all_gather %shard dim(0) over "dp_shard"(4) {data_parallel} : tensor<64x256xf32> -> tensor<256x256xf32>
    ```
  }];
  let arguments = (ins Dist_FloatTensor:$input, I64Attr:$dim, StrAttr:$group,
                       I64Attr:$group_size, UnitAttr:$data_parallel,
                       UnitAttr:$slice_grad, OptionalAttr<StrAttr>:$fp8);
  let results = (outs Dist_FloatTensor:$result);
  let assemblyFormat = [{
    $input `dim` `(` $dim `)` `over` $group `(` $group_size `)` attr-dict `:`
    type($input) `->` type($result)
  }];
}

def Dist_ReduceScatterOp : Dist_CollectiveOp<"reduce_scatter"> {
  let summary = "Reduces a group's tensors and scatters blocks of the result.";
  let description = [{
    `input` is split into `group_size` blocks along `dim`; rank r of mesh
    dim `group` gets the reduction (`sum` or `avg`, in f32) over the group
    of every rank's block r. FSDP reduces a parameter's gradient to its
    shard with it. Its VJP is a `dist.all_gather` (scaled by 1 / group_size
    for `avg`).

    Example:

    ```mlir
    %g = dist.reduce_scatter %full dim(0) over "dp_shard"(4) reduce("avg") : tensor<256x256xf32> -> tensor<64x256xf32>
    ```
  }];
  let arguments = (ins Dist_FloatTensor:$input, I64Attr:$dim, StrAttr:$group,
                       I64Attr:$group_size, StrAttr:$reduce);
  let results = (outs Dist_FloatTensor:$result);
  let assemblyFormat = [{
    $input `dim` `(` $dim `)` `over` $group `(` $group_size `)` `reduce` `(`
    $reduce `)` attr-dict `:` type($input) `->` type($result)
  }];
}

def Dist_AllReduceOp : Dist_CollectiveOp<"all_reduce", [SameOperandsAndResultType]> {
  let summary = "Reduces a tensor over a group; every rank gets the result.";
  let description = [{
    Every rank of mesh dim `group` gets the reduction (`sum`, `avg` or
    `max`, in f32) of all ranks' `input`. Data parallelism over
    `dp_replicate` averages the accumulated gradients with it once per
    optimizer step, sharded gradient clipping sums the squared norms of the
    shards with it, and a row-parallel linear (tensor parallelism) sums its
    partial outputs with it (Megatron's `g`). Its result is replicated over
    the group and every rank continues with the same computation, so the
    cotangent arriving at it is the same on every rank and each rank's
    input contributed to the result once: the VJP of `sum` passes the
    cotangent through unchanged (`avg` scales it by 1 / group_size).

    Example:

    ```mlir
    %g = dist.all_reduce %grad over "dp_replicate"(2) reduce("avg") : tensor<256x256xf32>
    ```
  }];
  let arguments = (ins Dist_FloatTensor:$input, StrAttr:$group,
                       I64Attr:$group_size, StrAttr:$reduce);
  let results = (outs Dist_FloatTensor:$result);
  let assemblyFormat = [{
    $input `over` $group `(` $group_size `)` `reduce` `(` $reduce `)`
    attr-dict `:` type($input)
  }];
}

def Dist_SliceOp : Dist_Op<"slice", [Pure]> {
  let summary = "Keeps this rank's block of a replicated tensor.";
  let description = [{
    `input` is the same on every rank of mesh dim `group`; it is cut into
    `group_size` equal blocks along `dim` and each rank keeps the block at
    its coordinate, without communication. Sequence parallelism enters the
    sequence-sharded residual stream with it after the embedding. Its VJP
    is a `dist.all_gather` of the blocks' cotangents, which rebuilds the
    complete cotangent of the replicated input on every rank.

    Example:

    ```mlir
    %h = dist.slice %x dim(1) over "tp"(2) : tensor<2x16x64xf32> -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Dist_FloatTensor:$input, I64Attr:$dim, StrAttr:$group,
                       I64Attr:$group_size);
  let results = (outs Dist_FloatTensor:$result);
  let assemblyFormat = [{
    $input `dim` `(` $dim `)` `over` $group `(` $group_size `)` attr-dict `:`
    type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Dist_CopyOp : Dist_Op<"copy", [Pure, SameOperandsAndResultType]> {
  let summary = "Identity whose gradient is summed over a group.";
  let description = [{
    Returns `input` unchanged, without communication. It marks a value that
    is replicated over mesh dim `group` but whose consumers each compute
    only part of its gradient: the input of the column-parallel linears
    (each tensor-parallel rank holds some of the heads or hidden units), or
    a replicated weight applied to rank-local heads (QK-norm). Its VJP is a
    `dist.all_reduce` sum of the cotangent over `group` (Megatron's `f`),
    so the gradient is complete and replicated again.

    Example:

    ```mlir
    %x = dist.copy %h over "tp"(2) : tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins Dist_FloatTensor:$input, StrAttr:$group,
                       I64Attr:$group_size);
  let results = (outs Dist_FloatTensor:$result);
  let assemblyFormat = [{
    $input `over` $group `(` $group_size `)` attr-dict `:` type($input)
  }];
  let hasVerifier = 1;
}

def Dist_IntTensor : RankedTensorOf<[I64]>;

def Dist_ExpertDispatchOp : Dist_CollectiveOp<"expert_dispatch"> {
  let summary = "Sends token rows to the ranks that hold their experts.";
  let description = [{
    Expert parallelism's forward all-to-all. `rows` (`R` rows) are grouped
    by global expert, `group_sizes[e]` rows for expert `e` of `E`; rank `r`
    of the `group_size = n` ranks of mesh dim `group` holds the `E / n`
    experts `[r * E/n, (r+1) * E/n)`, so the rows for each rank are one
    contiguous block. The ranks first exchange how many rows each sends to
    each of the other's experts (skipped when `counts` is given: the VJP of
    `dist.expert_combine` already knows them), then the rows.

    `result` (`n * R` rows, the most any rank can receive) holds the
    received rows grouped by local expert and, within an expert, by source
    rank; the rows after them are zero. `local_sizes[j]` is the number of
    rows for local expert `j` and `counts[s, j]` how many came from rank
    `s`. The VJP is `dist.expert_combine` of the cotangent.

    Example:

    ```mlir
    %rows, %sizes, %counts = dist.expert_dispatch %x, %groups over "ep"(2) : tensor<64x32xf32>, tensor<4xi64> -> tensor<128x32xf32>, tensor<2xi64>, tensor<2x2xi64>
    ```
  }];
  let arguments = (ins Dist_FloatTensor:$rows, Dist_IntTensor:$group_sizes,
                       Optional<Dist_IntTensor>:$counts, StrAttr:$group,
                       I64Attr:$group_size);
  let results = (outs Dist_FloatTensor:$result, Dist_IntTensor:$local_sizes,
                      Dist_IntTensor:$received);
  let assemblyFormat = [{
    $rows `,` $group_sizes (`counts` $counts^)? `over` $group `(` $group_size
    `)` attr-dict `:` type($rows) `,` type($group_sizes) (`,` type($counts)^)?
    `->` type($result) `,` type($local_sizes) `,` type($received)
  }];
}

def Dist_ExpertCombineOp : Dist_CollectiveOp<"expert_combine"> {
  let summary = "Returns expert outputs to the ranks their tokens came from.";
  let description = [{
    Expert parallelism's reverse all-to-all. `rows` is laid out as the
    `result` of the `dist.expert_dispatch` that `counts` came from (grouped
    by local expert, then by source rank); `group_sizes` is that dispatch's
    operand. Each rank gets back, in `result`, the rows it sent, in the
    order it sent them (grouped by global expert), so `forge.moe_combine`
    can weight them as without expert parallelism. The VJP is
    `dist.expert_dispatch` of the cotangent with the same `counts`.

    Example:

    ```mlir
    %y = dist.expert_combine %out, %counts, %groups over "ep"(2) : tensor<128x32xf32>, tensor<2x2xi64>, tensor<4xi64> -> tensor<64x32xf32>
    ```
  }];
  let arguments = (ins Dist_FloatTensor:$rows, Dist_IntTensor:$counts,
                       Dist_IntTensor:$group_sizes, StrAttr:$group,
                       I64Attr:$group_size);
  let results = (outs Dist_FloatTensor:$result);
  let assemblyFormat = [{
    $rows `,` $counts `,` $group_sizes `over` $group `(` $group_size `)`
    attr-dict `:` type($rows) `,` type($counts) `,` type($group_sizes) `->`
    type($result)
  }];
}

def Dist_SendOp : Dist_Op<"send", [MemoryEffects<[MemWrite]>]> {
  let summary = "Sends a tensor to another pipeline stage.";
  let description = [{
    Pipeline parallelism's point-to-point transfer: `input` goes to the
    rank at coordinate `peer` of mesh dim `group` (`pp`), which receives it
    with the `dist.recv` of the same `tag`. The send does not wait for the
    receiver (the runtime copies the tensor and sends it in the
    background), so stages that send to each other cannot deadlock.
    `result` is a zero scalar: the forward of a stage that ends in a send
    returns it as its loss, so autodiff reaches the send, whose VJP is a
    `dist.recv` of the activation's gradient from the same peer.
    forge-schedule checks at compile time that every send has its receive.

    Example:

    ```mlir
    %zero = dist.send %h to 1 over "pp"(2) tag(0) : tensor<2x16x64xf32> -> tensor<f32>
    ```
  }];
  let arguments = (ins Dist_FloatTensor:$input, I64Attr:$peer, StrAttr:$group,
                       I64Attr:$group_size, I64Attr:$tag);
  let results = (outs Dist_FloatTensor:$result);
  let assemblyFormat = [{
    $input `to` $peer `over` $group `(` $group_size `)` `tag` `(` $tag `)`
    attr-dict `:` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Dist_RecvOp : Dist_Op<"recv", [MemoryEffects<[MemRead]>]> {
  let summary = "Receives a tensor from another pipeline stage.";
  let description = [{
    Waits for the `dist.send` with the same `tag` from the rank at
    coordinate `peer` of mesh dim `group` (`pp`) and returns its tensor.
    The VJP of a forward receive sends the result's gradient back to the
    peer (`dist.send`).

    Example:

    ```mlir
    %h = dist.recv from 0 over "pp"(2) tag(0) : tensor<2x16x64xf32>
    ```
  }];
  let arguments = (ins I64Attr:$peer, StrAttr:$group, I64Attr:$group_size,
                       I64Attr:$tag);
  let results = (outs Dist_FloatTensor:$result);
  let assemblyFormat = [{
    `from` $peer `over` $group `(` $group_size `)` `tag` `(` $tag `)`
    attr-dict `:` type($result)
  }];
  let hasVerifier = 1;
}

#endif // DIST_OPS_TD
