// RUN: forge-opt %s -split-input-file -forge-schedule -verify-diagnostics | FileCheck %s

// The order is stable: a program already in a topological order keeps it,
// independent ops included, and the reads and writes of a parameter keep
// their order. Kernels go to stream 0, collectives to stream 1; the
// terminator has no stream.
module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  forge.param @w : tensor<2x4xf32> init(normal, std = 2.000000e-02) {dist.shard = [{dim = 0 : i64, group = "dp_shard"}]}
  forge.param @grad.w : tensor<2x4xf32> init(zeros) buffer

  // CHECK-LABEL: func.func @train_step
  func.func @train_step(%x: tensor<4x4xf32>) -> tensor<f32> {
    // CHECK-NEXT: forge.get_param @w {exec.stream = 0 : i64}
    // CHECK-NEXT: dist.all_gather {{.*}} {data_parallel, exec.stream = 1 : i64}
    // CHECK-NEXT: forge.relu %{{.*}} {exec.stream = 0 : i64}
    // CHECK-NEXT: forge.mul {{.*}} {exec.stream = 0 : i64}
    // CHECK-NEXT: dist.reduce_scatter {{.*}} {exec.stream = 1 : i64}
    // CHECK-NEXT: forge.get_param @grad.w {exec.stream = 0 : i64}
    // CHECK-NEXT: forge.add {{.*}} {exec.stream = 0 : i64}
    // CHECK-NEXT: forge.set_param @grad.w, {{.*}} {exec.stream = 0 : i64}
    // CHECK-NEXT: forge.get_param @grad.w {exec.stream = 0 : i64}
    // CHECK-NEXT: forge.z_loss {{.*}} {exec.stream = 0 : i64}
    // CHECK-NEXT: return %{{.*}} : tensor<f32>
    %s = forge.get_param @w : tensor<2x4xf32>
    %w = dist.all_gather %s dim(0) over "dp_shard"(2) {data_parallel} : tensor<2x4xf32> -> tensor<4x4xf32>
    %r = forge.relu %x : tensor<4x4xf32>
    %m = forge.mul %r, %w : tensor<4x4xf32>
    %g = dist.reduce_scatter %m dim(0) over "dp_shard"(2) reduce("avg") : tensor<4x4xf32> -> tensor<2x4xf32>
    %acc = forge.get_param @grad.w : tensor<2x4xf32>
    %sum = forge.add %acc, %g : tensor<2x4xf32>
    forge.set_param @grad.w, %sum : tensor<2x4xf32>
    %after = forge.get_param @grad.w : tensor<2x4xf32>
    %l = forge.z_loss %after : tensor<2x4xf32> -> tensor<f32>
    return %l : tensor<f32>
  }
}

// -----

// A program without ops and one with a single op.
// CHECK-LABEL: func.func @empty()
// CHECK-NEXT: return
func.func @empty() {
  return
}
// CHECK-LABEL: func.func @one
// CHECK-NEXT: forge.fill 0.000000e+00 {exec.stream = 0 : i64} : tensor<f32>
func.func @one() -> tensor<f32> {
  %z = forge.fill 0.0 : tensor<f32>
  return %z : tensor<f32>
}

// -----

// expected-error @+1 {{forge-schedule: @two_blocks has several blocks; a program is straight-line code}}
func.func @two_blocks() {
  return
^bb1:
  return
}

// -----

// FSDP prefetch: each weight gather moves up to just before the op that
// reads the previous weight gather's result, so it transfers while that op
// computes; the first gather and the gathers of parameters the program
// writes stay in place.
module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  forge.param @a : tensor<2x4xf32> init(normal, std = 2.000000e-02) {dist.shard = [{dim = 0 : i64, group = "dp_shard"}]}
  forge.param @b : tensor<2x4xf32> init(normal, std = 2.000000e-02) {dist.shard = [{dim = 0 : i64, group = "dp_shard"}]}
  forge.param @c : tensor<2x4xf32> init(normal, std = 2.000000e-02) {dist.shard = [{dim = 0 : i64, group = "dp_shard"}]}

  // CHECK-LABEL: func.func @prefetch
  func.func @prefetch(%x: tensor<4x4xf32>) -> tensor<4x4xf32> {
    // CHECK-NEXT: forge.get_param @a
    // CHECK-NEXT: %[[A:.*]] = dist.all_gather
    // CHECK-NEXT: forge.get_param @b
    // CHECK-NEXT: %[[B:.*]] = dist.all_gather
    // CHECK-NEXT: %[[XA:.*]] = forge.mul %{{.*}}, %[[A]]
    // CHECK-NEXT: forge.get_param @c
    // CHECK-NEXT: %[[C:.*]] = dist.all_gather
    // CHECK-NEXT: %[[XB:.*]] = forge.mul %[[XA]], %[[B]]
    // CHECK-NEXT: forge.mul %[[XB]], %[[C]]
    %sa = forge.get_param @a : tensor<2x4xf32>
    %a = dist.all_gather %sa dim(0) over "dp_shard"(2) {data_parallel} : tensor<2x4xf32> -> tensor<4x4xf32>
    %xa = forge.mul %x, %a : tensor<4x4xf32>
    %sb = forge.get_param @b : tensor<2x4xf32>
    %b = dist.all_gather %sb dim(0) over "dp_shard"(2) {data_parallel} : tensor<2x4xf32> -> tensor<4x4xf32>
    %xb = forge.mul %xa, %b : tensor<4x4xf32>
    %sc = forge.get_param @c : tensor<2x4xf32>
    %c = dist.all_gather %sc dim(0) over "dp_shard"(2) {data_parallel} : tensor<2x4xf32> -> tensor<4x4xf32>
    %xc = forge.mul %xb, %c : tensor<4x4xf32>
    return %xc : tensor<4x4xf32>
  }
}
