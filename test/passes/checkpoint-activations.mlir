// RUN: forge-opt %s -split-input-file -forge-checkpoint-activations -verify-diagnostics | FileCheck %s
// RUN: forge-opt %s -split-input-file -forge-checkpoint-activations -forge-build-backward -verify-diagnostics | FileCheck %s --check-prefix=BWD

// A 2-layer dense model (forgec's frontend output) with full AC: every op
// of block N gets forge.remat = N, from the parameters it reads or, without
// any, from its operands (the residual adds); the embedding, the final norm,
// the head and the loss are in no block.
// CHECK-LABEL: module attributes {forge.activation_checkpointing = "full"}
// CHECK: forge.embedding {{.*}}-> tensor<1x4x16xf32>{{$}}
// CHECK-NEXT: forge.get_param @layers.0.attention_norm.weight : tensor<16xf32>{{$}}
// CHECK-NEXT: forge.rmsnorm {{.*}} {forge.remat = 0 : i64}
// CHECK: forge.linear {{.*}} {forge.remat = 0 : i64}
// CHECK: forge.attention {{.*}} {forge.remat = 0 : i64}
// CHECK: forge.add {{.*}} {forge.remat = 0 : i64}
// CHECK: forge.silu {{.*}} {forge.remat = 0 : i64}
// CHECK: forge.add {{.*}} {forge.remat = 0 : i64}
// CHECK: forge.rmsnorm {{.*}} {forge.remat = 1 : i64}
// CHECK: forge.add {{.*}} {forge.remat = 1 : i64}
// CHECK: forge.add {{.*}} {forge.remat = 1 : i64}
// CHECK-NEXT: forge.get_param @norm.weight
// CHECK-NEXT: forge.rmsnorm {{.*}}, tensor<16xf32>{{$}}
// CHECK-NOT: forge.remat
// CHECK: return
//
// The backward recomputes block 1, differentiates it, then block 0: each
// region's clone comes right before its VJPs, after the head's.
// BWD-LABEL: func.func @train_step
// BWD: forge.cross_entropy_grad
// BWD: forge.linear_grad_input
// BWD: forge.rmsnorm_grad
// BWD-NEXT: forge.rmsnorm %{{.*}}, %{{.*}} eps(1.000000e-05) : tensor<1x4x16xf32>, tensor<16xf32>
// BWD: forge.attention
// BWD: forge.silu_grad
// BWD: forge.attention_grad
// BWD: forge.rmsnorm %{{.*}}, %{{.*}} eps(1.000000e-05) : tensor<1x4x16xf32>, tensor<16xf32>
// BWD: forge.attention
// BWD: forge.attention_grad
// BWD: forge.embedding_grad

module attributes {forge.activation_checkpointing = "full"} {
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

// Selective AC keeps the matmul outputs: linears are not marked, the
// norms, reshapes, RoPE, attention, activation, gating and adds are.
// CHECK-LABEL: module attributes {forge.activation_checkpointing = "selective"}
// CHECK: forge.rmsnorm {{.*}} {forge.remat = 0 : i64}
// CHECK: forge.linear {{.*}} -> tensor<1x4x16xf32>{{$}}
// CHECK-NEXT: forge.reshape {{.*}} {forge.remat = 0 : i64}
// CHECK: forge.attention {{.*}} {forge.remat = 0 : i64}
// CHECK: forge.mul {{.*}} {forge.remat = 0 : i64}
// CHECK-NEXT: forge.get_param @layers.0.mlp.down_proj.weight
// CHECK-NEXT: forge.linear {{.*}} -> tensor<1x4x16xf32>{{$}}
module attributes {forge.activation_checkpointing = "selective"} {
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

// expected-error @+1 {{forge-checkpoint-activations: forge.activation_checkpointing must be none, full or selective, got 'partial'}}
module attributes {forge.activation_checkpointing = "partial"} {
}
