// RUN: forge-opt %s -split-input-file -forge-shard-experts -verify-diagnostics | FileCheck %s

// Per-expert weights become one stacked parameter per projection (rows
// named by expert at run time), split over ep; the rows travel to the
// experts' ranks and back around the local grouped linears.
// CHECK-LABEL: module attributes {dist.mesh
// CHECK: forge.param @"m.experts.*.w1" : tensor<2x6x8xf32> init( normal, std = 2.000000e-02) {dist.shard = [{dim = 0 : i64, group = "ep"}]}
// CHECK: forge.param @"m.experts.*.w2" : tensor<2x8x6xf32> init( normal, std = 1.000000e-02) {dist.shard = [{dim = 0 : i64, group = "ep"}]}
// CHECK-NOT: forge.param @m.experts.0
// CHECK: func.func @train_step
// CHECK: %[[ROWS:.*]], %[[SIZES:.*]], %[[ORDER:.*]] = forge.moe_dispatch
// CHECK: %[[X:.*]], %[[LOCAL:.*]], %[[RECV:.*]] = dist.expert_dispatch %[[ROWS]], %[[SIZES]] over "ep"(2) {dist.origin = {of = "m", pass = "forge-shard-experts", phase = "forward", what = "token dispatch to the experts' ranks"}} : tensor<8x8xf32>, tensor<4xi64> -> tensor<16x8xf32>, tensor<2xi64>, tensor<2x2xi64>
// CHECK: %[[W1:.*]] = forge.get_param @"m.experts.*.w1" : tensor<2x6x8xf32>
// CHECK: %[[H:.*]] = forge.grouped_linear %[[X]], %[[W1]], %[[LOCAL]] layout( out_in) : tensor<16x8xf32>, tensor<2x6x8xf32>, tensor<2xi64> -> tensor<16x6xf32>
// CHECK: %[[A:.*]] = forge.silu %[[H]] : tensor<16x6xf32>
// CHECK: %[[W2:.*]] = forge.get_param @"m.experts.*.w2" : tensor<2x8x6xf32>
// CHECK: %[[Y:.*]] = forge.grouped_linear %[[A]], %[[W2]], %[[LOCAL]] layout( out_in) : tensor<16x6xf32>, tensor<2x8x6xf32>, tensor<2xi64> -> tensor<16x8xf32>
// CHECK: %[[BACK:.*]] = dist.expert_combine %[[Y]], %[[RECV]], %[[SIZES]] over "ep"(2) {{.*}} : tensor<16x8xf32>, tensor<2x2xi64>, tensor<4xi64> -> tensor<8x8xf32>
// CHECK: forge.moe_combine %[[BACK]], %[[ORDER]]
module attributes {dist.mesh = {dims = ["dp_shard", "ep"], sizes = [1, 2]}} {
  forge.param @m.experts.0.w1 : tensor<6x8xf32> init(normal, std = 2.000000e-02)
  forge.param @m.experts.1.w1 : tensor<6x8xf32> init(normal, std = 2.000000e-02)
  forge.param @m.experts.2.w1 : tensor<6x8xf32> init(normal, std = 2.000000e-02)
  forge.param @m.experts.3.w1 : tensor<6x8xf32> init(normal, std = 2.000000e-02)
  forge.param @m.experts.0.w2 : tensor<8x6xf32> init(normal, std = 1.000000e-02)
  forge.param @m.experts.1.w2 : tensor<8x6xf32> init(normal, std = 1.000000e-02)
  forge.param @m.experts.2.w2 : tensor<8x6xf32> init(normal, std = 1.000000e-02)
  forge.param @m.experts.3.w2 : tensor<8x6xf32> init(normal, std = 1.000000e-02)
  func.func @train_step(%x: tensor<4x8xf32>, %w: tensor<4x2xf32>, %i: tensor<4x2xi64>) -> tensor<4x8xf32> {
    %rows, %sizes, %order = forge.moe_dispatch %x, %i experts(4) : tensor<4x8xf32>, tensor<4x2xi64> -> tensor<8x8xf32>, tensor<4xi64>, tensor<8xi64> loc("m")
    %a0 = forge.get_param @m.experts.0.w1 : tensor<6x8xf32>
    %a1 = forge.get_param @m.experts.1.w1 : tensor<6x8xf32>
    %a2 = forge.get_param @m.experts.2.w1 : tensor<6x8xf32>
    %a3 = forge.get_param @m.experts.3.w1 : tensor<6x8xf32>
    %w1 = forge.stack %a0, %a1, %a2, %a3 : tensor<6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32> -> tensor<4x6x8xf32>
    %h = forge.grouped_linear %rows, %w1, %sizes layout(out_in) : tensor<8x8xf32>, tensor<4x6x8xf32>, tensor<4xi64> -> tensor<8x6xf32>
    %s = forge.silu %h : tensor<8x6xf32>
    %b0 = forge.get_param @m.experts.0.w2 : tensor<8x6xf32>
    %b1 = forge.get_param @m.experts.1.w2 : tensor<8x6xf32>
    %b2 = forge.get_param @m.experts.2.w2 : tensor<8x6xf32>
    %b3 = forge.get_param @m.experts.3.w2 : tensor<8x6xf32>
    %w2 = forge.stack %b0, %b1, %b2, %b3 : tensor<8x6xf32>, tensor<8x6xf32>, tensor<8x6xf32>, tensor<8x6xf32> -> tensor<4x8x6xf32>
    %y = forge.grouped_linear %s, %w2, %sizes layout(out_in) : tensor<8x6xf32>, tensor<4x8x6xf32>, tensor<4xi64> -> tensor<8x8xf32>
    %out = forge.moe_combine %y, %order, %w, %sizes : tensor<8x8xf32>, tensor<8xi64>, tensor<4x2xf32>, tensor<4xi64> -> tensor<4x8xf32>
    return %out : tensor<4x8xf32>
  }
}

// -----

// A packed expert weight keeps its name and is split along dim 0.
// CHECK-LABEL: module attributes {dist.mesh
// CHECK: forge.param @m.w1 : tensor<1x8x6xf32> init( normal, std = 2.000000e-02) {dist.shard = [{dim = 0 : i64, group = "ep"}]}
// CHECK: dist.expert_dispatch {{.*}} over "ep"(4) {{.*}} -> tensor<32x8xf32>, tensor<1xi64>, tensor<4x1xi64>
// CHECK: forge.grouped_linear {{.*}} layout( in_out) : tensor<32x8xf32>, tensor<1x8x6xf32>, tensor<1xi64> -> tensor<32x6xf32>
// CHECK: dist.expert_combine
module attributes {dist.mesh = {dims = ["ep"], sizes = [4]}} {
  forge.param @m.w1 : tensor<4x8x6xf32> init(normal, std = 2.000000e-02)
  func.func @train_step(%x: tensor<4x8xf32>, %w: tensor<4x2xf32>, %i: tensor<4x2xi64>) -> tensor<4x6xf32> {
    %rows, %sizes, %order = forge.moe_dispatch %x, %i experts(4) : tensor<4x8xf32>, tensor<4x2xi64> -> tensor<8x8xf32>, tensor<4xi64>, tensor<8xi64>
    %w1 = forge.get_param @m.w1 : tensor<4x8x6xf32>
    %h = forge.grouped_linear %rows, %w1, %sizes layout(in_out) : tensor<8x8xf32>, tensor<4x8x6xf32>, tensor<4xi64> -> tensor<8x6xf32>
    %out = forge.moe_combine %h, %order, %w, %sizes : tensor<8x6xf32>, tensor<8xi64>, tensor<4x2xf32>, tensor<4xi64> -> tensor<4x6xf32>
    return %out : tensor<4x6xf32>
  }
}

// -----

// Without an ep dim of more than one rank the pass changes nothing.
// CHECK-LABEL: module attributes {dist.mesh = {dims = ["ep"], sizes = [1]}}
// CHECK-NOT: dist.expert
module attributes {dist.mesh = {dims = ["ep"], sizes = [1]}} {
  forge.param @m.w1 : tensor<4x8x6xf32> init(normal, std = 2.000000e-02)
  func.func @train_step(%x: tensor<4x8xf32>, %i: tensor<4x2xi64>) -> tensor<8x6xf32> {
    %rows, %sizes, %order = forge.moe_dispatch %x, %i experts(4) : tensor<4x8xf32>, tensor<4x2xi64> -> tensor<8x8xf32>, tensor<4xi64>, tensor<8xi64>
    %w1 = forge.get_param @m.w1 : tensor<4x8x6xf32>
    %h = forge.grouped_linear %rows, %w1, %sizes layout(in_out) : tensor<8x8xf32>, tensor<4x8x6xf32>, tensor<4xi64> -> tensor<8x6xf32>
    return %h : tensor<8x6xf32>
  }
}

// -----

// expected-error @+1 {{forge-shard-experts: ep = 2 needs an MoE model (model.num_experts > 0)}}
module attributes {dist.mesh = {dims = ["ep"], sizes = [2]}} {
  func.func @train_step(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
    return %x : tensor<4x8xf32>
  }
}

// -----

// expected-error @+1 {{forge-shard-experts: optimizer.name = "muon" with ep > 1 is not supported yet (use adamw, lion or schedule_free_adamw)}}
module attributes {dist.mesh = {dims = ["ep"], sizes = [2]}, forge.optimizer = {name = "muon"}} {
  func.func @train_step(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
    return %x : tensor<4x8xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["ep"], sizes = [3]}} {
  func.func @train_step(%x: tensor<4x8xf32>, %i: tensor<4x2xi64>) -> tensor<8x8xf32> {
    // expected-error @+1 {{'forge.moe_dispatch' op forge-shard-experts: 4 experts do not divide over ep = 3}}
    %rows, %sizes, %order = forge.moe_dispatch %x, %i experts(4) : tensor<4x8xf32>, tensor<4x2xi64> -> tensor<8x8xf32>, tensor<4xi64>, tensor<8xi64>
    return %rows : tensor<8x8xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["ep"], sizes = [2]}} {
  forge.param @m.w1 : tensor<4x8x6xf32> init(normal, std = 2.000000e-02)
  func.func @train_step(%x: tensor<4x8xf32>, %i: tensor<4x2xi64>) -> tensor<48xf32> {
    %rows, %sizes, %order = forge.moe_dispatch %x, %i experts(4) : tensor<4x8xf32>, tensor<4x2xi64> -> tensor<8x8xf32>, tensor<4xi64>, tensor<8xi64>
    %w1 = forge.get_param @m.w1 : tensor<4x8x6xf32>
    %h = forge.grouped_linear %rows, %w1, %sizes layout(in_out) : tensor<8x8xf32>, tensor<4x8x6xf32>, tensor<4xi64> -> tensor<8x6xf32>
    // expected-error @+1 {{'forge.reshape' op forge-shard-experts: cannot run on the rows dispatched to the experts' ranks (expected grouped linears, activations and products, then forge.moe_combine)}}
    %r = forge.reshape %h : tensor<8x6xf32> -> tensor<48xf32>
    return %r : tensor<48xf32>
  }
}
