// RUN: forge-opt %s -split-input-file -forge-convert-fp8 -verify-diagnostics | FileCheck %s
// RUN: forge-opt %s -split-input-file -forge-convert-fp8 -forge-build-backward -verify-diagnostics | FileCheck %s --check-prefix=BWD

// Attention/MLP/head linears become fp8 matmuls: both operands through e4m3
// and the output through fp8_grad_cast; a router (and experts) stay as
// they were.
// CHECK-LABEL: func.func @train_step
// CHECK: %[[W:.*]] = forge.get_param @layers.0.attention.q_proj.weight
// CHECK-NEXT: %[[XQ:.*]] = forge.fp8_cast %{{.*}} format("e4m3") : tensor<2x8xbf16>
// CHECK-NEXT: %[[WQ:.*]] = forge.fp8_cast %[[W]] format("e4m3") : tensor<8x8xbf16>
// CHECK-NEXT: %[[Y:.*]] = forge.linear %[[XQ]], %[[WQ]]
// CHECK-NEXT: %[[YG:.*]] = forge.fp8_grad_cast %[[Y]] : tensor<2x8xbf16>
// CHECK-NEXT: %[[R:.*]] = forge.get_param @layers.0.mlp.router.gate.weight
// CHECK-NEXT: forge.linear %[[YG]], %[[R]] : tensor<2x8xbf16>, tensor<4x8xbf16> -> tensor<2x4xbf16>
//
// Backward: the output gradient goes through e5m2 before both matmul VJPs.
// BWD: forge.cross_entropy_grad
// BWD: %[[G:.*]] = forge.fp8_cast %{{.*}} format("e5m2") : tensor<2x8xbf16>
// BWD-DAG: forge.linear_grad_input %[[G]]
// BWD-DAG: forge.linear_grad_weight {{.*}}%[[G]]
module attributes {forge.fp8} {
  forge.param @layers.0.attention.q_proj.weight : tensor<8x8xbf16> init(normal, std = 2.000000e-02)
  forge.param @layers.0.mlp.router.gate.weight : tensor<4x8xbf16> init(normal, std = 2.000000e-02)
  func.func @train_step(%x: tensor<2x8xbf16>, %labels: tensor<2xi64>) -> tensor<f32> {
    %w = forge.get_param @layers.0.attention.q_proj.weight : tensor<8x8xbf16>
    %y = forge.linear %x, %w : tensor<2x8xbf16>, tensor<8x8xbf16> -> tensor<2x8xbf16>
    %r = forge.get_param @layers.0.mlp.router.gate.weight : tensor<4x8xbf16>
    %z = forge.linear %y, %r : tensor<2x8xbf16>, tensor<4x8xbf16> -> tensor<2x4xbf16>
    %l = forge.cross_entropy %z, %labels : tensor<2x4xbf16>, tensor<2xi64> -> tensor<f32>
    return %l : tensor<f32>
  }
}

// -----

// Without forge.fp8 nothing changes.
// CHECK-LABEL: module {
// CHECK-NOT: fp8
module {
  forge.param @layers.0.attention.q_proj.weight : tensor<8x8xbf16> init(normal, std = 2.000000e-02)
  func.func @train_step(%x: tensor<2x8xbf16>, %labels: tensor<2xi64>) -> tensor<f32> {
    %w = forge.get_param @layers.0.attention.q_proj.weight : tensor<8x8xbf16>
    %y = forge.linear %x, %w : tensor<2x8xbf16>, tensor<8x8xbf16> -> tensor<2x8xbf16>
    %l = forge.cross_entropy %y, %labels : tensor<2x8xbf16>, tensor<2xi64> -> tensor<f32>
    return %l : tensor<f32>
  }
}

// -----

func.func @bad(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{'forge.fp8_cast' op format must be e4m3 or e5m2, got 'e3m4'}}
  %y = forge.fp8_cast %x format("e3m4") : tensor<4xf32>
  return %y : tensor<4xf32>
}
