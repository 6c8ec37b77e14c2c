//===- DistDialect.td - The dist collectives dialect -------*- tablegen -*-===//
//
// Collectives over the groups of the device mesh, at tensor level, so that
// the parallelism passes can place them and autodiff can derive the
// backward collectives from VJP rules (all_gather <-> reduce_scatter).
//
//===----------------------------------------------------------------------===//

#ifndef DIST_DIALECT_TD
#define DIST_DIALECT_TD

include "mlir/IR/OpBase.td"

def Dist_Dialect : Dialect {
  let name = "dist";
  let cppNamespace = "::forge::dist";
  let summary = "Collectives over the groups of the device mesh.";
  let description = [{
    A sharded module carries its mesh as the module attribute `dist.mesh`:
    `{dims = ["dp_replicate", "dp_shard", ...], sizes = [2, 4, ...]}`, the
    dims of reference §3.1 in order (pp, dp_replicate, dp_shard, ep, tp; tp
    innermost), sizes multiplying to the world size. A group is one mesh
    dim: the ranks that share every other coordinate. The ops take and
    return each rank's local tensor; the program is SPMD, every rank runs
    the same ops in the same order.

    Sharded parameters carry `dist.shard` on their `forge.param`: a list of
    `{dim, group}` splits, outermost first. The global tensor is split into
    `size(group)` equal blocks along `dim` and the rank keeps the block at
    its coordinate in `group`; the next split applies to that block. Tensor
    parallelism splits along dim 0 (column-parallel) or dim 1 (row-parallel)
    over `tp`, FSDP then along dim 0 over `dp_shard`:
    `dist.shard = [{dim = 1, group = "tp"}, {dim = 0, group = "dp_shard"} ]`.
    The param's type is the innermost block. When the group's size n does
    not divide the extent along `dim`, the split also records it as `size`
    and the blocks hold ceil(size / n) entries, the last ones ending in (or
    made only of) zero padding, as FSDP2's uneven shards:
    `{dim = 0, group = "dp_shard", size = 7}` over 2 ranks gives blocks of 4
    rows, rows 0-3 and rows 4-6 plus one padding row.

    Every collective carries `dist.origin = {pass, what, of, phase}`: the
    pass that placed it, what it does, the parameter or module it serves and
    whether it belongs to the forward pass, the backward pass or the
    optimizer step; autodiff's collectives say which forward collective's
    VJP they are. convert-forge-to-exec keeps it as the exec collective's
    `origin`, and `forgec --report` totals the collectives by it.
  }];
}

class Dist_Op<string mnemonic, list<Trait> traits = []>
    : Op<Dist_Dialect, mnemonic, traits>;

#endif // DIST_DIALECT_TD
