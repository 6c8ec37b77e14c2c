// RUN: forge-opt %s -split-input-file -forge-shard-tensor-parallel -verify-diagnostics | FileCheck %s
// RUN: forge-opt %s -split-input-file -forge-shard-tensor-parallel -verify-diagnostics | FileCheck %s --check-prefix=SP
// RUN: forge-opt %s -split-input-file -forge-shard-tensor-parallel -forge-shard-fsdp -verify-diagnostics | FileCheck %s --check-prefix=FSDP
// RUN: forge-opt %s -split-input-file -forge-shard-tensor-parallel -forge-shard-fsdp -forge-build-backward -verify-diagnostics | FileCheck %s --check-prefix=BWD
// RUN: forge-opt %s -split-input-file -forge-shard-tensor-parallel -forge-shard-fsdp -forge-build-backward -verify-diagnostics | FileCheck %s --check-prefix=RS

// A 2-layer dense model (forgec's frontend output, dim 16, 2 heads, MLP
// hidden 8) on dp_shard 2 x tp 2.
//
// Column-parallel q/k/v and gate/up keep half their rows, row-parallel o/down
// half their columns; norms, embedding and head stay whole.
// CHECK: forge.param @layers.0.attention_norm.weight : tensor<16xf32> init( ones)
// CHECK-NEXT: forge.param @layers.0.attention.q_proj.weight : tensor<8x16xf32> {{.*}} {dist.shard = [{dim = 0 : i64, group = "tp"}]}
// CHECK-NEXT: forge.param @layers.0.attention.k_proj.weight : tensor<8x16xf32> {{.*}} {dist.shard = [{dim = 0 : i64, group = "tp"}]}
// CHECK-NEXT: forge.param @layers.0.attention.v_proj.weight : tensor<8x16xf32> {{.*}} {dist.shard = [{dim = 0 : i64, group = "tp"}]}
// CHECK-NEXT: forge.param @layers.0.attention.o_proj.weight : tensor<16x8xf32> {{.*}} {dist.shard = [{dim = 1 : i64, group = "tp"}]}
// CHECK-NEXT: forge.param @layers.0.mlp_norm.weight : tensor<16xf32> init( ones)
// CHECK-NEXT: forge.param @layers.0.mlp.gate_proj.weight : tensor<4x16xf32> {{.*}} {dist.shard = [{dim = 0 : i64, group = "tp"}]}
// CHECK-NEXT: forge.param @layers.0.mlp.up_proj.weight : tensor<4x16xf32> {{.*}} {dist.shard = [{dim = 0 : i64, group = "tp"}]}
// CHECK-NEXT: forge.param @layers.0.mlp.down_proj.weight : tensor<16x4xf32> {{.*}} {dist.shard = [{dim = 1 : i64, group = "tp"}]}
// CHECK: forge.param @output_head.proj.weight : tensor<32x16xf32> init( normal, std = 2.000000e-02){{$}}
//
// Per block: one dist.copy of the replicated norm output feeding all three
// projections, one head per rank from the reshapes on, and one all_reduce of
// o_proj's partial products before the residual add; the same for the MLP.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[N:.*]] = forge.rmsnorm
// CHECK-NEXT: %[[X:.*]] = dist.copy %[[N]] over "tp"(2){{.*}} : tensor<1x4x16xf32>
// CHECK: forge.linear %[[X]], %{{.*}} : tensor<1x4x16xf32>, tensor<8x16xf32> -> tensor<1x4x8xf32>
// CHECK-NEXT: forge.reshape %{{.*}} : tensor<1x4x8xf32> -> tensor<1x4x1x8xf32>
// CHECK: forge.linear %[[X]], %{{.*}} : tensor<1x4x16xf32>, tensor<8x16xf32> -> tensor<1x4x8xf32>
// CHECK: forge.linear %[[X]], %{{.*}} : tensor<1x4x16xf32>, tensor<8x16xf32> -> tensor<1x4x8xf32>
// CHECK: forge.attention {{.*}} : tensor<1x4x1x8xf32>, tensor<1x4x1x8xf32>, tensor<1x4x1x8xf32> -> tensor<1x4x1x8xf32>
// CHECK-NEXT: forge.reshape %{{.*}} : tensor<1x4x1x8xf32> -> tensor<1x4x8xf32>
// CHECK: %[[O:.*]] = forge.linear %{{.*}}, %{{.*}} : tensor<1x4x8xf32>, tensor<16x8xf32> -> tensor<1x4x16xf32>
// CHECK-NEXT: %[[R:.*]] = dist.all_reduce %[[O]] over "tp"(2) reduce("sum"){{.*}} : tensor<1x4x16xf32>
// CHECK-NEXT: forge.add %{{.*}}, %[[R]]
// CHECK: %[[M:.*]] = forge.rmsnorm
// CHECK-NEXT: %[[Y:.*]] = dist.copy %[[M]] over "tp"(2)
// CHECK: forge.linear %[[Y]], %{{.*}} -> tensor<1x4x4xf32>
// CHECK: forge.linear %[[Y]], %{{.*}} -> tensor<1x4x4xf32>
// CHECK: forge.mul %{{.*}} : tensor<1x4x4xf32>
// CHECK: %[[D:.*]] = forge.linear %{{.*}} : tensor<1x4x4xf32>, tensor<16x4xf32> -> tensor<1x4x16xf32>
// CHECK-NEXT: dist.all_reduce %[[D]] over "tp"(2) reduce("sum")
// The second layer is the same; the head is replicated.
// CHECK: dist.copy
// CHECK: dist.all_reduce
// CHECK: dist.copy
// CHECK: dist.all_reduce
// CHECK: forge.linear %{{.*}}, %{{.*}} : tensor<1x4x16xf32>, tensor<32x16xf32> -> tensor<1x4x32xf32>
// CHECK-NOT: dist.
// CHECK: return
//
// FSDP then shards each rank's tp block along dim 0 and gathers it before
// use (here o_proj's [16, 8] block: 8 rows per rank).
// FSDP: forge.param @layers.0.attention.o_proj.weight : tensor<8x8xf32> {{.*}} {dist.shard = [{dim = 1 : i64, group = "tp"}, {dim = 0 : i64, group = "dp_shard"}]}
// FSDP: %[[S:.*]] = forge.get_param @layers.0.attention.o_proj.weight : tensor<8x8xf32>
// FSDP-NEXT: %[[W:.*]] = dist.all_gather %[[S]] dim(0) over "dp_shard"(2) {data_parallel{{.*}}} : tensor<8x8xf32> -> tensor<16x8xf32>
// FSDP-NEXT: forge.linear %{{.*}}, %[[W]] : tensor<1x4x8xf32>, tensor<16x8xf32> -> tensor<1x4x16xf32>
//
// Autodiff derives the backward collectives: the all_reduce's VJP passes
// the replicated cotangent through, each dist.copy's VJP sums the partial
// input gradients of its column-parallel linears over tp (4 per step), and
// each all_gather's VJP reduce-scatters a gradient over dp_shard.
// BWD-LABEL: func.func @train_step
// BWD: forge.cross_entropy_grad
// BWD-COUNT-4: dist.all_reduce {{.*}} over "tp"(2) reduce("sum"){{.*}} : tensor<1x4x16xf32>
// BWD-NOT: over "tp"
// BWD: return
// RS-LABEL: func.func @train_step
// RS: forge.cross_entropy_grad
// RS: dist.reduce_scatter {{.*}} over "dp_shard"(2) reduce("avg"){{.*}} : tensor<16x8xf32> -> tensor<8x8xf32>

module attributes {dist.mesh = {dims = ["dp_shard", "tp"], sizes = [2, 2]}} {
  forge.param @token_embedding.embedding.weight : tensor<32x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.0.attention_norm.weight : tensor<16xf32> init( ones)
  forge.param @layers.0.attention.q_proj.weight : tensor<16x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.0.attention.k_proj.weight : tensor<16x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.0.attention.v_proj.weight : tensor<16x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.0.attention.o_proj.weight : tensor<16x16xf32> init( normal, std = 1.000000e-02)
  forge.param @layers.0.mlp_norm.weight : tensor<16xf32> init( ones)
  forge.param @layers.0.mlp.gate_proj.weight : tensor<8x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.0.mlp.up_proj.weight : tensor<8x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.0.mlp.down_proj.weight : tensor<16x8xf32> init( normal, std = 1.000000e-02)
  forge.param @layers.1.attention_norm.weight : tensor<16xf32> init( ones)
  forge.param @layers.1.attention.q_proj.weight : tensor<16x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.1.attention.k_proj.weight : tensor<16x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.1.attention.v_proj.weight : tensor<16x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.1.attention.o_proj.weight : tensor<16x16xf32> init( normal, std = 1.000000e-02)
  forge.param @layers.1.mlp_norm.weight : tensor<16xf32> init( ones)
  forge.param @layers.1.mlp.gate_proj.weight : tensor<8x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.1.mlp.up_proj.weight : tensor<8x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.1.mlp.down_proj.weight : tensor<16x8xf32> init( normal, std = 1.000000e-02)
  forge.param @norm.weight : tensor<16xf32> init( ones)
  forge.param @output_head.proj.weight : tensor<32x16xf32> init( normal, std = 2.000000e-02)
  func.func @train_step(%arg0: tensor<1x4xi64>, %arg1: tensor<1x4xi64>) -> tensor<f32> {
    %0 = forge.get_param @token_embedding.embedding.weight : tensor<32x16xf32>
    %1 = forge.embedding %0[%arg0] : tensor<32x16xf32>, tensor<1x4xi64> -> tensor<1x4x16xf32>
    %2 = forge.get_param @layers.0.attention_norm.weight : tensor<16xf32>
    %3 = forge.rmsnorm %1, %2 eps(1.000000e-05) : tensor<1x4x16xf32>, tensor<16xf32>
    %4 = forge.get_param @layers.0.attention.q_proj.weight : tensor<16x16xf32>
    %5 = forge.linear %3, %4 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %6 = forge.reshape %5 : tensor<1x4x16xf32> -> tensor<1x4x2x8xf32>
    %7 = forge.get_param @layers.0.attention.k_proj.weight : tensor<16x16xf32>
    %8 = forge.linear %3, %7 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %9 = forge.reshape %8 : tensor<1x4x16xf32> -> tensor<1x4x2x8xf32>
    %10 = forge.get_param @layers.0.attention.v_proj.weight : tensor<16x16xf32>
    %11 = forge.linear %3, %10 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %12 = forge.reshape %11 : tensor<1x4x16xf32> -> tensor<1x4x2x8xf32>
    %13 = forge.rope %6 theta(1.000000e+04) : tensor<1x4x2x8xf32>
    %14 = forge.rope %9 theta(1.000000e+04) : tensor<1x4x2x8xf32>
    %15 = forge.attention %13, %14, %12 causal scale(0.35355339059327373) : tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32> -> tensor<1x4x2x8xf32>
    %16 = forge.reshape %15 : tensor<1x4x2x8xf32> -> tensor<1x4x16xf32>
    %17 = forge.get_param @layers.0.attention.o_proj.weight : tensor<16x16xf32>
    %18 = forge.linear %16, %17 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %19 = forge.add %1, %18 : tensor<1x4x16xf32>
    %20 = forge.get_param @layers.0.mlp_norm.weight : tensor<16xf32>
    %21 = forge.rmsnorm %19, %20 eps(1.000000e-05) : tensor<1x4x16xf32>, tensor<16xf32>
    %22 = forge.get_param @layers.0.mlp.gate_proj.weight : tensor<8x16xf32>
    %23 = forge.linear %21, %22 : tensor<1x4x16xf32>, tensor<8x16xf32> -> tensor<1x4x8xf32>
    %24 = forge.silu %23 : tensor<1x4x8xf32>
    %25 = forge.get_param @layers.0.mlp.up_proj.weight : tensor<8x16xf32>
    %26 = forge.linear %21, %25 : tensor<1x4x16xf32>, tensor<8x16xf32> -> tensor<1x4x8xf32>
    %27 = forge.mul %24, %26 : tensor<1x4x8xf32>
    %28 = forge.get_param @layers.0.mlp.down_proj.weight : tensor<16x8xf32>
    %29 = forge.linear %27, %28 : tensor<1x4x8xf32>, tensor<16x8xf32> -> tensor<1x4x16xf32>
    %30 = forge.add %19, %29 : tensor<1x4x16xf32>
    %31 = forge.get_param @layers.1.attention_norm.weight : tensor<16xf32>
    %32 = forge.rmsnorm %30, %31 eps(1.000000e-05) : tensor<1x4x16xf32>, tensor<16xf32>
    %33 = forge.get_param @layers.1.attention.q_proj.weight : tensor<16x16xf32>
    %34 = forge.linear %32, %33 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %35 = forge.reshape %34 : tensor<1x4x16xf32> -> tensor<1x4x2x8xf32>
    %36 = forge.get_param @layers.1.attention.k_proj.weight : tensor<16x16xf32>
    %37 = forge.linear %32, %36 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %38 = forge.reshape %37 : tensor<1x4x16xf32> -> tensor<1x4x2x8xf32>
    %39 = forge.get_param @layers.1.attention.v_proj.weight : tensor<16x16xf32>
    %40 = forge.linear %32, %39 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %41 = forge.reshape %40 : tensor<1x4x16xf32> -> tensor<1x4x2x8xf32>
    %42 = forge.rope %35 theta(1.000000e+04) : tensor<1x4x2x8xf32>
    %43 = forge.rope %38 theta(1.000000e+04) : tensor<1x4x2x8xf32>
    %44 = forge.attention %42, %43, %41 causal scale(0.35355339059327373) : tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32> -> tensor<1x4x2x8xf32>
    %45 = forge.reshape %44 : tensor<1x4x2x8xf32> -> tensor<1x4x16xf32>
    %46 = forge.get_param @layers.1.attention.o_proj.weight : tensor<16x16xf32>
    %47 = forge.linear %45, %46 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %48 = forge.add %30, %47 : tensor<1x4x16xf32>
    %49 = forge.get_param @layers.1.mlp_norm.weight : tensor<16xf32>
    %50 = forge.rmsnorm %48, %49 eps(1.000000e-05) : tensor<1x4x16xf32>, tensor<16xf32>
    %51 = forge.get_param @layers.1.mlp.gate_proj.weight : tensor<8x16xf32>
    %52 = forge.linear %50, %51 : tensor<1x4x16xf32>, tensor<8x16xf32> -> tensor<1x4x8xf32>
    %53 = forge.silu %52 : tensor<1x4x8xf32>
    %54 = forge.get_param @layers.1.mlp.up_proj.weight : tensor<8x16xf32>
    %55 = forge.linear %50, %54 : tensor<1x4x16xf32>, tensor<8x16xf32> -> tensor<1x4x8xf32>
    %56 = forge.mul %53, %55 : tensor<1x4x8xf32>
    %57 = forge.get_param @layers.1.mlp.down_proj.weight : tensor<16x8xf32>
    %58 = forge.linear %56, %57 : tensor<1x4x8xf32>, tensor<16x8xf32> -> tensor<1x4x16xf32>
    %59 = forge.add %48, %58 : tensor<1x4x16xf32>
    %60 = forge.get_param @norm.weight : tensor<16xf32>
    %61 = forge.rmsnorm %59, %60 eps(1.000000e-05) : tensor<1x4x16xf32>, tensor<16xf32>
    %62 = forge.get_param @output_head.proj.weight : tensor<32x16xf32>
    %63 = forge.linear %61, %62 : tensor<1x4x16xf32>, tensor<32x16xf32> -> tensor<1x4x32xf32>
    %64 = forge.cross_entropy %63, %arg1 : tensor<1x4x32xf32>, tensor<1x4xi64> -> tensor<f32>
    return %64 : tensor<f32>
  }
}

// -----

// The same model with sequence parallelism (dist.sequence_parallel): the
// residual stream and the norms hold the rank's half of the sequence
// between the tensor-parallel regions, and the head is split over the
// vocabulary.
// SP: forge.param @output_head.proj.weight : tensor<16x16xf32> {{.*}} {dist.shard = [{dim = 0 : i64, group = "tp"}]}
// SP: func.func @train_step
// SP: %[[E:.*]] = forge.embedding
// SP-NEXT: %[[B:.*]] = dist.slice %[[E]] dim(1) over "tp"(2){{.*}} : tensor<1x4x16xf32> -> tensor<1x2x16xf32>
// SP-NEXT: %[[W:.*]] = forge.get_param @layers.0.attention_norm.weight
// SP-NEXT: %[[WC:.*]] = dist.copy %[[W]] over "tp"(2){{.*}} : tensor<16xf32>
// SP-NEXT: %[[N:.*]] = forge.rmsnorm %[[B]], %[[WC]] {{.*}} : tensor<1x2x16xf32>, tensor<16xf32>
// SP-NEXT: %[[G:.*]] = dist.all_gather %[[N]] dim(1) over "tp"(2){{.*}} : tensor<1x2x16xf32> -> tensor<1x4x16xf32>
// SP: forge.linear %[[G]], %{{.*}} : tensor<1x4x16xf32>, tensor<8x16xf32> -> tensor<1x4x8xf32>
// SP: %[[O:.*]] = forge.linear %{{.*}}, %{{.*}} : tensor<1x4x8xf32>, tensor<16x8xf32> -> tensor<1x4x16xf32>
// SP-NEXT: %[[SCAT:.*]] = dist.reduce_scatter %[[O]] dim(1) over "tp"(2) reduce("sum"){{.*}} : tensor<1x4x16xf32> -> tensor<1x2x16xf32>
// SP-NEXT: forge.add %[[B]], %[[SCAT]] : tensor<1x2x16xf32>
// SP: forge.rmsnorm {{.*}} : tensor<1x2x16xf32>, tensor<16xf32>
// SP-NEXT: dist.all_gather {{.*}} dim(1) over "tp"(2){{.*}} : tensor<1x2x16xf32> -> tensor<1x4x16xf32>
// SP: dist.reduce_scatter {{.*}} dim(1)
// SP: dist.reduce_scatter {{.*}} dim(1)
// SP: dist.reduce_scatter {{.*}} dim(1)
// The final norm on the block, the whole sequence for the head, each
// rank's 16 of the 32 logits per token, gathered for the loss.
// SP: forge.rmsnorm {{.*}} : tensor<1x2x16xf32>, tensor<16xf32>
// SP-NEXT: %[[H:.*]] = dist.all_gather {{.*}} dim(1) over "tp"(2){{.*}} : tensor<1x2x16xf32> -> tensor<1x4x16xf32>
// SP-NEXT: forge.get_param @output_head.proj.weight : tensor<16x16xf32>
// SP-NEXT: %[[L:.*]] = forge.linear %[[H]], %{{.*}} : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
// SP-NEXT: %[[LG:.*]] = dist.all_gather %[[L]] dim(2) over "tp"(2) {dist.origin = {of = "output_head", pass = "forge-shard-tensor-parallel", phase = "forward", what = "vocabulary gather of the logits"}, slice_grad} : tensor<1x4x16xf32> -> tensor<1x4x32xf32>
// SP-NEXT: forge.cross_entropy %[[LG]]
module attributes {dist.mesh = {dims = ["dp_shard", "tp"], sizes = [2, 2]}, dist.sequence_parallel} {
  forge.param @token_embedding.embedding.weight : tensor<32x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.0.attention_norm.weight : tensor<16xf32> init( ones)
  forge.param @layers.0.attention.q_proj.weight : tensor<16x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.0.attention.k_proj.weight : tensor<16x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.0.attention.v_proj.weight : tensor<16x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.0.attention.o_proj.weight : tensor<16x16xf32> init( normal, std = 1.000000e-02)
  forge.param @layers.0.mlp_norm.weight : tensor<16xf32> init( ones)
  forge.param @layers.0.mlp.gate_proj.weight : tensor<8x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.0.mlp.up_proj.weight : tensor<8x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.0.mlp.down_proj.weight : tensor<16x8xf32> init( normal, std = 1.000000e-02)
  forge.param @layers.1.attention_norm.weight : tensor<16xf32> init( ones)
  forge.param @layers.1.attention.q_proj.weight : tensor<16x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.1.attention.k_proj.weight : tensor<16x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.1.attention.v_proj.weight : tensor<16x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.1.attention.o_proj.weight : tensor<16x16xf32> init( normal, std = 1.000000e-02)
  forge.param @layers.1.mlp_norm.weight : tensor<16xf32> init( ones)
  forge.param @layers.1.mlp.gate_proj.weight : tensor<8x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.1.mlp.up_proj.weight : tensor<8x16xf32> init( normal, std = 2.000000e-02)
  forge.param @layers.1.mlp.down_proj.weight : tensor<16x8xf32> init( normal, std = 1.000000e-02)
  forge.param @norm.weight : tensor<16xf32> init( ones)
  forge.param @output_head.proj.weight : tensor<32x16xf32> init( normal, std = 2.000000e-02)
  func.func @train_step(%arg0: tensor<1x4xi64>, %arg1: tensor<1x4xi64>) -> tensor<f32> {
    %0 = forge.get_param @token_embedding.embedding.weight : tensor<32x16xf32>
    %1 = forge.embedding %0[%arg0] : tensor<32x16xf32>, tensor<1x4xi64> -> tensor<1x4x16xf32>
    %2 = forge.get_param @layers.0.attention_norm.weight : tensor<16xf32>
    %3 = forge.rmsnorm %1, %2 eps(1.000000e-05) : tensor<1x4x16xf32>, tensor<16xf32>
    %4 = forge.get_param @layers.0.attention.q_proj.weight : tensor<16x16xf32>
    %5 = forge.linear %3, %4 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %6 = forge.reshape %5 : tensor<1x4x16xf32> -> tensor<1x4x2x8xf32>
    %7 = forge.get_param @layers.0.attention.k_proj.weight : tensor<16x16xf32>
    %8 = forge.linear %3, %7 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %9 = forge.reshape %8 : tensor<1x4x16xf32> -> tensor<1x4x2x8xf32>
    %10 = forge.get_param @layers.0.attention.v_proj.weight : tensor<16x16xf32>
    %11 = forge.linear %3, %10 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %12 = forge.reshape %11 : tensor<1x4x16xf32> -> tensor<1x4x2x8xf32>
    %13 = forge.rope %6 theta(1.000000e+04) : tensor<1x4x2x8xf32>
    %14 = forge.rope %9 theta(1.000000e+04) : tensor<1x4x2x8xf32>
    %15 = forge.attention %13, %14, %12 causal scale(0.35355339059327373) : tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32> -> tensor<1x4x2x8xf32>
    %16 = forge.reshape %15 : tensor<1x4x2x8xf32> -> tensor<1x4x16xf32>
    %17 = forge.get_param @layers.0.attention.o_proj.weight : tensor<16x16xf32>
    %18 = forge.linear %16, %17 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %19 = forge.add %1, %18 : tensor<1x4x16xf32>
    %20 = forge.get_param @layers.0.mlp_norm.weight : tensor<16xf32>
    %21 = forge.rmsnorm %19, %20 eps(1.000000e-05) : tensor<1x4x16xf32>, tensor<16xf32>
    %22 = forge.get_param @layers.0.mlp.gate_proj.weight : tensor<8x16xf32>
    %23 = forge.linear %21, %22 : tensor<1x4x16xf32>, tensor<8x16xf32> -> tensor<1x4x8xf32>
    %24 = forge.silu %23 : tensor<1x4x8xf32>
    %25 = forge.get_param @layers.0.mlp.up_proj.weight : tensor<8x16xf32>
    %26 = forge.linear %21, %25 : tensor<1x4x16xf32>, tensor<8x16xf32> -> tensor<1x4x8xf32>
    %27 = forge.mul %24, %26 : tensor<1x4x8xf32>
    %28 = forge.get_param @layers.0.mlp.down_proj.weight : tensor<16x8xf32>
    %29 = forge.linear %27, %28 : tensor<1x4x8xf32>, tensor<16x8xf32> -> tensor<1x4x16xf32>
    %30 = forge.add %19, %29 : tensor<1x4x16xf32>
    %31 = forge.get_param @layers.1.attention_norm.weight : tensor<16xf32>
    %32 = forge.rmsnorm %30, %31 eps(1.000000e-05) : tensor<1x4x16xf32>, tensor<16xf32>
    %33 = forge.get_param @layers.1.attention.q_proj.weight : tensor<16x16xf32>
    %34 = forge.linear %32, %33 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %35 = forge.reshape %34 : tensor<1x4x16xf32> -> tensor<1x4x2x8xf32>
    %36 = forge.get_param @layers.1.attention.k_proj.weight : tensor<16x16xf32>
    %37 = forge.linear %32, %36 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %38 = forge.reshape %37 : tensor<1x4x16xf32> -> tensor<1x4x2x8xf32>
    %39 = forge.get_param @layers.1.attention.v_proj.weight : tensor<16x16xf32>
    %40 = forge.linear %32, %39 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %41 = forge.reshape %40 : tensor<1x4x16xf32> -> tensor<1x4x2x8xf32>
    %42 = forge.rope %35 theta(1.000000e+04) : tensor<1x4x2x8xf32>
    %43 = forge.rope %38 theta(1.000000e+04) : tensor<1x4x2x8xf32>
    %44 = forge.attention %42, %43, %41 causal scale(0.35355339059327373) : tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32>, tensor<1x4x2x8xf32> -> tensor<1x4x2x8xf32>
    %45 = forge.reshape %44 : tensor<1x4x2x8xf32> -> tensor<1x4x16xf32>
    %46 = forge.get_param @layers.1.attention.o_proj.weight : tensor<16x16xf32>
    %47 = forge.linear %45, %46 : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %48 = forge.add %30, %47 : tensor<1x4x16xf32>
    %49 = forge.get_param @layers.1.mlp_norm.weight : tensor<16xf32>
    %50 = forge.rmsnorm %48, %49 eps(1.000000e-05) : tensor<1x4x16xf32>, tensor<16xf32>
    %51 = forge.get_param @layers.1.mlp.gate_proj.weight : tensor<8x16xf32>
    %52 = forge.linear %50, %51 : tensor<1x4x16xf32>, tensor<8x16xf32> -> tensor<1x4x8xf32>
    %53 = forge.silu %52 : tensor<1x4x8xf32>
    %54 = forge.get_param @layers.1.mlp.up_proj.weight : tensor<8x16xf32>
    %55 = forge.linear %50, %54 : tensor<1x4x16xf32>, tensor<8x16xf32> -> tensor<1x4x8xf32>
    %56 = forge.mul %53, %55 : tensor<1x4x8xf32>
    %57 = forge.get_param @layers.1.mlp.down_proj.weight : tensor<16x8xf32>
    %58 = forge.linear %56, %57 : tensor<1x4x8xf32>, tensor<16x8xf32> -> tensor<1x4x16xf32>
    %59 = forge.add %48, %58 : tensor<1x4x16xf32>
    %60 = forge.get_param @norm.weight : tensor<16xf32>
    %61 = forge.rmsnorm %59, %60 eps(1.000000e-05) : tensor<1x4x16xf32>, tensor<16xf32>
    %62 = forge.get_param @output_head.proj.weight : tensor<32x16xf32>
    %63 = forge.linear %61, %62 : tensor<1x4x16xf32>, tensor<32x16xf32> -> tensor<1x4x32xf32>
    %64 = forge.cross_entropy %63, %arg1 : tensor<1x4x32xf32>, tensor<1x4xi64> -> tensor<f32>
    return %64 : tensor<f32>
  }
}

// -----

// Without a tp dim of more than one rank the pass changes nothing.
// CHECK-LABEL: module attributes {dist.mesh = {dims = ["dp_shard", "tp"], sizes = [2, 1]}}
// CHECK: forge.param @layers.0.attention.q_proj.weight : tensor<16x16xf32> init( normal, std = 2.000000e-02){{$}}
// FSDP-LABEL: module attributes {dist.mesh = {dims = ["dp_shard", "tp"], sizes = [2, 1]}}
module attributes {dist.mesh = {dims = ["dp_shard", "tp"], sizes = [2, 1]}} {
  forge.param @layers.0.attention.q_proj.weight : tensor<16x16xf32> init(normal, std = 2.000000e-02)
  func.func @train_step(%x: tensor<1x4x16xf32>, %labels: tensor<1x4xi64>) -> tensor<f32> {
    %w = forge.get_param @layers.0.attention.q_proj.weight : tensor<16x16xf32>
    %y = forge.linear %x, %w : tensor<1x4x16xf32>, tensor<16x16xf32> -> tensor<1x4x16xf32>
    %l = forge.cross_entropy %y, %labels : tensor<1x4x16xf32>, tensor<1x4xi64> -> tensor<f32>
    return %l : tensor<f32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["tp"], sizes = [3]}} {
  func.func @train_step(%x: tensor<f32>) -> tensor<f32> {
    return %x : tensor<f32>
  }
  // expected-error @+1 {{forge-shard-tensor-parallel: cannot split 'layers.0.mlp.up_proj.weight' 'tensor<8x16xf32>' over tp 3: dim 0 must be a multiple of 3 (heads, kv heads, the MLP hidden size and, with sequence parallelism, the vocabulary must be divisible by tp)}}
  forge.param @layers.0.mlp.up_proj.weight : tensor<8x16xf32> init(normal, std = 2.000000e-02)
}
