// RUN: forge-opt %s -split-input-file -forge-build-backward -verify-diagnostics | FileCheck %s

// A two-layer toy with a tied head: embedding -> rmsnorm -> linear (x2) ->
// cross-entropy. The table is used twice, so its gradients are summed; the
// unused parameter gets a zero gradient.
forge.param @table : tensor<16x8xf32> init(normal, std = 2.000000e-02)
forge.param @norm : tensor<8xf32> init(ones)
forge.param @w : tensor<8x8xf32> init(normal, std = 2.000000e-02)
forge.param @unused : tensor<8xf32> init(zeros)
forge.param @ema : tensor<4xf32> init(zeros) buffer

// CHECK-LABEL: func.func @train_step
// CHECK-SAME: -> (tensor<f32>, tensor<16x8xf32>, tensor<8xf32>, tensor<8x8xf32>, tensor<8xf32>)
// CHECK-SAME: attributes {forge.grads = [@table, @norm, @w, @unused]}
func.func @train_step(%tokens: tensor<2x4xi64>, %labels: tensor<2x4xi64>) -> tensor<f32> {
  %t = forge.get_param @table : tensor<16x8xf32>
  %h = forge.embedding %t[%tokens] : tensor<16x8xf32>, tensor<2x4xi64> -> tensor<2x4x8xf32>
  %nw = forge.get_param @norm : tensor<8xf32>
  %n = forge.rmsnorm %h, %nw eps(1.000000e-05) : tensor<2x4x8xf32>, tensor<8xf32>
  %w = forge.get_param @w : tensor<8x8xf32>
  %y = forge.linear %n, %w : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
  %r = forge.add %y, %h : tensor<2x4x8xf32>
  %t2 = forge.get_param @table : tensor<16x8xf32>
  %logits = forge.linear %r, %t2 : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = forge.cross_entropy %logits, %labels : tensor<2x4x16xf32>, tensor<2x4xi64> -> tensor<f32>
  return %loss : tensor<f32>
}
// CHECK: %[[ONE:.*]] = forge.fill 1.000000e+00 {forge.backward_begin} : tensor<f32>
// CHECK: %[[DLOGITS:.*]] = forge.cross_entropy_grad %[[LOGITS:.*]], %{{.*}}, %[[ONE]]
// CHECK: %[[DR:.*]] = forge.linear_grad_input %[[DLOGITS]], %{{.*}} : tensor<2x4x16xf32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
// CHECK: %[[DT2:.*]] = forge.linear_grad_weight %[[DLOGITS]], %{{.*}} : tensor<2x4x16xf32>, tensor<2x4x8xf32> -> tensor<16x8xf32>
// CHECK: forge.linear_grad_input %[[DR]]
// CHECK: %[[DW:.*]] = forge.linear_grad_weight %[[DR]]
// CHECK: %[[DX:.*]], %[[DNW:.*]] = forge.rmsnorm_grad
// The residual: the embedding output's cotangent is the sum of two paths.
// CHECK: %[[DH:.*]] = forge.add %[[DR]], %[[DX]] : tensor<2x4x8xf32>
// CHECK: %[[DT1:.*]] = forge.embedding_grad %[[DH]][%{{.*}}] : tensor<2x4x8xf32>, tensor<2x4xi64> -> tensor<16x8xf32>
// CHECK: %[[DT:.*]] = forge.add %[[DT2]], %[[DT1]] : tensor<16x8xf32>
// CHECK: %[[DU:.*]] = forge.fill 0.000000e+00 : tensor<8xf32>
// CHECK: return %{{.*}}, %[[DT]], %[[DNW]], %[[DW]], %[[DU]]

// -----

// MoE routing: the router gets gradients through the renormalized weights
// and through the aux loss's probabilities.
forge.param @gate : tensor<4x8xf32> init(normal, std = 2.000000e-02)
forge.param @experts : tensor<4x8x8xf32> init(normal, std = 2.000000e-02)

// CHECK-LABEL: func.func @train_step
func.func @train_step(%x: tensor<6x8xf32>, %labels: tensor<6xi64>) -> tensor<f32> {
  %g = forge.get_param @gate : tensor<4x8xf32>
  %logits = forge.linear %x, %g : tensor<6x8xf32>, tensor<4x8xf32> -> tensor<6x4xf32>
  %w, %i, %p = forge.softmax_topk %logits k(2) : tensor<6x4xf32> -> tensor<6x2xf32>, tensor<6x2xi64>, tensor<6x4xf32>
  %aux = forge.moe_aux_loss %p, %i : tensor<6x4xf32>, tensor<6x2xi64> -> tensor<f32>
  %rows, %sizes, %order = forge.moe_dispatch %x, %i experts(4) : tensor<6x8xf32>, tensor<6x2xi64> -> tensor<12x8xf32>, tensor<4xi64>, tensor<12xi64>
  %e = forge.get_param @experts : tensor<4x8x8xf32>
  %y = forge.grouped_linear %rows, %e, %sizes layout(in_out) : tensor<12x8xf32>, tensor<4x8x8xf32>, tensor<4xi64> -> tensor<12x8xf32>
  %out = forge.moe_combine %y, %order, %w, %sizes : tensor<12x8xf32>, tensor<12xi64>, tensor<6x2xf32>, tensor<4xi64> -> tensor<6x8xf32>
  %z = forge.z_loss %out : tensor<6x8xf32> -> tensor<f32>
  %s = forge.scale %aux by(1.000000e-02) : tensor<f32>
  %loss = forge.add %z, %s : tensor<f32>
  return %loss : tensor<f32>
}
// CHECK: forge.scale %{{.*}} by(1.000000e-02) : tensor<f32>
// CHECK: forge.z_loss_grad
// CHECK: %[[DROWS:[^,]*]], %[[DW:[^ ]*]] = forge.moe_combine_grad
// CHECK: forge.grouped_linear_grad_input %[[DROWS]], %{{.*}}, %{{.*}} layout( in_out)
// CHECK: forge.grouped_linear_grad_weight %[[DROWS]], %{{.*}}, %{{.*}} layout( in_out)
// CHECK: forge.moe_dispatch_grad
// CHECK: %[[DP:.*]] = forge.moe_aux_loss_grad
// CHECK: forge.softmax_topk_grad %{{.*}}, %{{.*}}, %[[DW]], %[[DP]]
// CHECK: forge.linear_grad_weight
// CHECK: return

// -----

// expected-error @+1 {{forge-build-backward: the module has no func.func @train_step to differentiate}}
module {
  func.func @other() {
    return
  }
}

// -----

func.func @train_step(%x: tensor<f32>) -> tensor<f32> attributes {forge.grads = []} {
  // expected-error @-1 {{forge-build-backward: @train_step is already differentiated (it has forge.grads)}}
  return %x : tensor<f32>
}

// -----

func.func @train_step(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{forge-build-backward: @train_step must return exactly one tensor<f32> loss}}
  return %x : tensor<4xf32>
}

// -----

func.func @train_step(%x: tensor<2x4x2x8xf32>) -> tensor<f32> {
  // expected-error @+1 {{'forge.rope_grad' op has no VJP rule in forge-build-backward; the loss depends on it}}
  %r = forge.rope_grad %x theta(1.000000e+04) : tensor<2x4x2x8xf32>
  %f = forge.reshape %r : tensor<2x4x2x8xf32> -> tensor<8x16xf32>
  %z = forge.z_loss %f : tensor<8x16xf32> -> tensor<f32>
  return %z : tensor<f32>
}

// -----

// Expert parallelism: the VJP of the dispatch returns the rows' cotangents
// to their ranks (dist.expert_combine) and the VJP of the combine sends the
// outputs' cotangents to the experts with the forward's counts.
module attributes {dist.mesh = {dims = ["ep"], sizes = [2]}} {
  forge.param @experts : tensor<2x8x8xf32> init(normal, std = 2.000000e-02) {dist.shard = [{dim = 0 : i64, group = "ep"}]}
  // CHECK-LABEL: func.func @train_step
  func.func @train_step(%x: tensor<6x8xf32>, %w: tensor<6x2xf32>, %i: tensor<6x2xi64>) -> tensor<f32> {
    %rows, %sizes, %order = forge.moe_dispatch %x, %i experts(4) : tensor<6x8xf32>, tensor<6x2xi64> -> tensor<12x8xf32>, tensor<4xi64>, tensor<12xi64>
    // CHECK: %[[X:.*]], %[[L:.*]], %[[C:.*]] = dist.expert_dispatch %{{.*}}, %[[S:[^ ]*]] over "ep"(2)
    %r, %l, %c = dist.expert_dispatch %rows, %sizes over "ep"(2) : tensor<12x8xf32>, tensor<4xi64> -> tensor<24x8xf32>, tensor<2xi64>, tensor<2x2xi64>
    %e = forge.get_param @experts : tensor<2x8x8xf32>
    %y = forge.grouped_linear %r, %e, %l layout(in_out) : tensor<24x8xf32>, tensor<2x8x8xf32>, tensor<2xi64> -> tensor<24x8xf32>
    %back = dist.expert_combine %y, %c, %sizes over "ep"(2) : tensor<24x8xf32>, tensor<2x2xi64>, tensor<4xi64> -> tensor<12x8xf32>
    %out = forge.moe_combine %back, %order, %w, %sizes : tensor<12x8xf32>, tensor<12xi64>, tensor<6x2xf32>, tensor<4xi64> -> tensor<6x8xf32>
    %z = forge.z_loss %out : tensor<6x8xf32> -> tensor<f32>
    return %z : tensor<f32>
  }
  // CHECK: %[[DB:[^,]*]], %{{.*}} = forge.moe_combine_grad
  // CHECK: %[[DY:.*]], %{{.*}}, %{{.*}} = dist.expert_dispatch %[[DB]], %[[S]] counts %[[C]] over "ep"(2) {dist.origin = {{{.*}}pass = "forge-build-backward", phase = "backward"{{.*}}} : tensor<12x8xf32>, tensor<4xi64>, tensor<2x2xi64> -> tensor<24x8xf32>, tensor<2xi64>, tensor<2x2xi64>
  // CHECK: %[[DR:.*]] = forge.grouped_linear_grad_input %[[DY]], %{{.*}}, %[[L]] layout( in_out)
  // CHECK: forge.grouped_linear_grad_weight %[[DY]], %[[X]], %[[L]] layout( in_out)
  // CHECK: %[[DROWS:.*]] = dist.expert_combine %[[DR]], %[[C]], %[[S]] over "ep"(2) {{.*}} : tensor<24x8xf32>, tensor<2x2xi64>, tensor<4xi64> -> tensor<12x8xf32>
  // CHECK: forge.moe_dispatch_grad %[[DROWS]]
}

// -----

// Pipeline stages: the VJP of a send receives the gradient of what it sent
// (tag 1, the backward direction); the VJP of a receive sends the gradient
// of what it received back. The loss seed marks where the backward begins.
module attributes {dist.mesh = {dims = ["pp"], sizes = [3]}} {
  forge.param @w : tensor<8x8xf32> init(normal, std = 2.000000e-02)
  // CHECK-LABEL: func.func @train_step
  func.func @train_step(%x: tensor<2x8xf32>) -> tensor<f32> {
    // CHECK: %[[H:.*]] = dist.recv from 0 over "pp"(3) tag(0)
    %h = dist.recv from 0 over "pp"(3) tag(0) : tensor<2x8xf32>
    %w = forge.get_param @w : tensor<8x8xf32>
    %y = forge.linear %h, %w : tensor<2x8xf32>, tensor<8x8xf32> -> tensor<2x8xf32>
    // CHECK: %[[Z:.*]] = dist.send %[[Y:.*]] to 2 over "pp"(3) tag(0)
    %z = dist.send %y to 2 over "pp"(3) tag(0) : tensor<2x8xf32> -> tensor<f32>
    return %z : tensor<f32>
  }
  // CHECK: forge.fill 1.000000e+00 {forge.backward_begin} : tensor<f32>
  // CHECK: %[[DY:.*]] = dist.recv from 2 over "pp"(3) tag(1) {dist.origin = {{{.*}}phase = "backward"{{.*}}} : tensor<2x8xf32>
  // CHECK: %[[DH:.*]] = forge.linear_grad_input %[[DY]]
  // CHECK: forge.linear_grad_weight %[[DY]], %[[H]]
  // CHECK: dist.send %[[DH]] to 0 over "pp"(3) tag(1) {{.*}} : tensor<2x8xf32> -> tensor<f32>
  // CHECK: return %[[Z]]
}
