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

    Parameters sharded by the FSDP pass carry `dist.shard = {dim, group}` on
    their `forge.param`: the param's type is the local shard, `dim` is the
    sharded dimension (0) and the global size along it is the local size
    times the group's size. Each rank holds the contiguous block at its
    coordinate.
  }];
}

class Dist_Op<string mnemonic, list<Trait> traits = []>
    : Op<Dist_Dialect, mnemonic, traits>;

#endif // DIST_DIALECT_TD
