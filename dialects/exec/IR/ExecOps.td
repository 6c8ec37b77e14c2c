//===- ExecOps.td - Arena buffers and launches -------------*- tablegen -*-===//

#ifndef EXEC_OPS_TD
#define EXEC_OPS_TD

include "dialects/exec/IR/ExecDialect.td"
include "mlir/IR/BuiltinAttributes.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/SymbolInterfaces.td"

def Exec_ArenaOp : Exec_Op<"arena", [HasParent<"::mlir::ModuleOp">]> {
  let summary = "The one arena every buffer of a rank lives in.";
  let description = [{
    Each rank allocates `size` bytes once, aligned to `alignment` (a power
    of two), before running any program; every `exec.buffer` is a view into
    it. The arena is the first op of its module, so there is exactly one
    and a buffer finds it without a search. Each buffer's verifier checks
    that it lies inside the arena and starts at a multiple of `alignment`.

    Example:

    ```mlir
    exec.arena size(1048576) alignment(64)
    ```
  }];
  let arguments = (ins I64Attr:$size, I64Attr:$alignment);
  let assemblyFormat = [{
    `size` `(` $size `)` `alignment` `(` $alignment `)` attr-dict
  }];
  let hasVerifier = 1;
}

def Exec_BufferOp : Exec_Op<"buffer", [Symbol, HasParent<"::mlir::ModuleOp">]> {
  let summary = "A typed view at a fixed arena offset.";
  let description = [{
    `size` bytes at `offset` in the arena, holding a `dtype` tensor of
    `shape` (`size` is exactly the tensor's bytes; the dtypes are the plan's:
    f32, bf16, f16, i64, i32). `role` says what it holds:

    - `parameter`, `gradient` (an accumulator `grad.<fqn>`),
      `optimizer_state` (`optimizer.<key>.<fqn>`), `state` (other persistent
      buffers): persistent, named by their FQN, each with its initializer
      (`init`, and `std` for `normal`);
    - `input`: what the runtime writes before a program runs (token ids,
      labels, the step counter), named `<program>.arg<N>`;
    - `activation`: a value of one program, alive for part of it; buffers
      whose lifetimes do not overlap share bytes, and a view (a reshape)
      is a second buffer at the same offset.

    A sharded buffer (tensor parallelism, FSDP) holds this rank's block of
    the tensor of `global_shape`, cut by its splits, outermost first: split
    i cuts the tensor (or the previous split's block) into as many equal
    blocks along dim `shard_dims[i]` as mesh dim `shard_groups[i]` has
    ranks, and the rank keeps the block at its coordinate in that dim (the
    `dist.shard` of the parameter it came from). A block is the extent
    divided by the group's size, rounded up: when the size does not divide
    the extent, the last blocks end in (or are made of) zero padding.

    Example:

    ```mlir
    exec.buffer @layers.0.attention.q_proj.weight : [64, 256] f32 parameter offset(0) size(65536) init(normal, std = 2.000000e-02) shard([0] over ["dp_shard"], global [256, 256])
    exec.buffer @train_step.arg0 : [8, 128] i64 input offset(65536) size(8192)
    exec.buffer @train_step.v0 : [8, 128, 256] f32 activation offset(73728) size(1048576)
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, DenseI64ArrayAttr:$shape,
                       TypeAttr:$dtype, Exec_RoleAttr:$role, I64Attr:$offset,
                       I64Attr:$size, OptionalAttr<Exec_InitAttr>:$init,
                       OptionalAttr<F64Attr>:$std,
                       OptionalAttr<DenseI64ArrayAttr>:$shard_dims,
                       OptionalAttr<StrArrayAttr>:$shard_groups,
                       OptionalAttr<DenseI64ArrayAttr>:$global_shape);
  let assemblyFormat = [{
    $sym_name `:` $shape $dtype $role `offset` `(` $offset `)` `size` `(` $size
    `)` (`init` `(` $init^ (`,` `std` `=` $std^)? `)`)?
    (`shard` `(` $shard_dims^ `over` $shard_groups `,` `global` $global_shape
    `)`)?
    attr-dict
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Parameters, gradients, optimizer state and other state: they keep
    /// their bytes across programs and steps, and have an initializer.
    bool isPersistent() {
      return getRole() != Role::activation && getRole() != Role::input;
    }
  }];
}

def Exec_ProgramOp : Exec_Op<"program", [Symbol, HasParent<"::mlir::ModuleOp">,
    IsolatedFromAbove, NoTerminator, SingleBlock,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "One program of the plan: its launches in execution order.";
  let description = [{
    A function of the training step that the runtime runs on its own
    (`train_step`: one micro-batch; `optimizer_step`; `eval_step`; the
    schedule-free parameter swaps `eval_params` / `train_params`). The
    runtime writes the `inputs` buffers (role `input`), runs the body's
    `exec.launch` and `exec.collective` ops in order and reads the `outputs`
    buffers.

    Example:

    ```mlir
    exec.program @train_step inputs [@train_step.arg0, @train_step.arg1] outputs [@train_step.v9] {
      exec.launch "forge.embedding" [@token_embedding.embedding.weight, @train_step.arg0] -> [@train_step.v0] stream(0)
      ...
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, FlatSymbolRefArrayAttr:$inputs,
                       FlatSymbolRefArrayAttr:$outputs);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    $sym_name `inputs` $inputs `outputs` $outputs attr-dict-with-keyword $body
  }];
  let hasVerifier = 1;
}

def Exec_LaunchOp : Exec_Op<"launch", [HasParent<"ProgramOp">,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "A kernel launch on buffers.";
  let description = [{
    Runs the kernel `kernel`, named after the forge op it implements, on the
    `ins` buffers and writes the `outs` buffers (for `forge.set_param`, the
    parameter it overwrites). `attrs` holds the op's attributes, which
    configure the kernel (eps, causal, ...), as builtin values (an enum as
    its string). `stream` is 0, the compute stream, for every kernel today.

    Example:

    ```mlir
    exec.launch "forge.rmsnorm" [@train_step.v0, @layers.0.attention_norm.weight] -> [@train_step.v1] stream(0) attrs {eps = 1.000000e-05 : f64}
    ```
  }];
  let arguments = (ins StrAttr:$kernel, FlatSymbolRefArrayAttr:$ins,
                       FlatSymbolRefArrayAttr:$outs, I64Attr:$stream,
                       OptionalAttr<DictionaryAttr>:$kernel_attrs);
  let assemblyFormat = [{
    $kernel $ins `->` $outs `stream` `(` $stream `)`
    (`attrs` $kernel_attrs^)? attr-dict
  }];
  let hasVerifier = 1;
}

def Exec_CollectiveOp : Exec_Op<"collective", [HasParent<"ProgramOp">,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "A collective launch over a mesh group.";
  let description = [{
    The `dist` collective `kind` (`all_gather`, `reduce_scatter`,
    `all_reduce`, ...) over the `group_size` ranks of mesh dim `group`,
    from the `ins` buffers into the `outs` buffers: along `dim` for the
    collectives that gather or scatter blocks (required for `all_gather`
    and `reduce_scatter`), reducing with `reduce` (`sum`, `avg` or `max`;
    required for `reduce_scatter` and `all_reduce`). `attrs` holds the
    dist op's other attributes (`data_parallel`). It runs on stream 1, the
    communication stream. `origin` says why it is there (design.md §5.7):
    what it moves (a parameter or buffer, the gradient of a parameter, or
    the result of an op); the op's location says where it was placed.

    The verifier checks `group` against the module's `dist.mesh` and, for
    the kinds above, the byte sizes of the buffers against `group_size`.

    Example:

    ```mlir
    exec.collective "all_gather" [@layers.0.attention.q_proj.weight] -> [@train_step.v3] over "dp_shard"(4) dim(0) stream(1) attrs {data_parallel} origin("dist.all_gather of parameter layers.0.attention.q_proj.weight")
    ```
  }];
  let arguments = (ins StrAttr:$kind, FlatSymbolRefArrayAttr:$ins,
                       FlatSymbolRefArrayAttr:$outs, StrAttr:$group,
                       I64Attr:$group_size, OptionalAttr<I64Attr>:$dim,
                       OptionalAttr<StrAttr>:$reduce, I64Attr:$stream,
                       OptionalAttr<DictionaryAttr>:$kernel_attrs,
                       StrAttr:$origin);
  let assemblyFormat = [{
    $kind $ins `->` $outs `over` $group `(` $group_size `)`
    (`dim` `(` $dim^ `)`)? (`reduce` `(` $reduce^ `)`)? `stream` `(` $stream
    `)` (`attrs` $kernel_attrs^)? `origin` `(` $origin `)` attr-dict
  }];
  let hasVerifier = 1;
}

#endif // EXEC_OPS_TD
