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

// -----

// A pipeline stage (the last of two, 1F1B over 3 micro-batches: one
// micro-batch in flight): @train_step becomes @forward.0 and @backward.0 at
// the backward's first op; the forward value the backward reads is kept in
// a slot buffer, the parameter read is repeated; the actions are recorded
// (backward, micro-batch, slot, model chunk).
// CHECK-LABEL: module attributes {dist.mesh = {dims = ["pp"], sizes = [2]}, dist.pipeline = {micro_batches = 3 : i64, schedule = "1f1b"}, dist.pipeline_actions = array<i64: 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 2, 0, 0, 1, 2, 0, 0>, dist.stage = 1 : i64}
// CHECK: forge.param @pipeline.stash.0.0 : tensor<2x8xf32> init( zeros) buffer
// CHECK-NOT: forge.param @pipeline.stash.1
// CHECK-NOT: @train_step
// CHECK: func.func @forward.0(%{{.*}}: tensor<2x8xf32>) -> tensor<f32>
// CHECK: dist.recv from 0 over "pp"(2) tag(0)
// CHECK: %[[Y:.*]] = forge.linear
// CHECK: %[[L:.*]] = forge.global_norm %[[Y]]
// CHECK: forge.set_param @pipeline.stash.0.0, %[[Y]]
// CHECK: return %[[L]] : tensor<f32>
// CHECK: func.func @backward.0(%{{.*}}: tensor<2x8xf32>) {
// CHECK: %[[K:.*]] = forge.get_param @pipeline.stash.0.0 {{.*}}: tensor<2x8xf32>
// CHECK: %[[W:.*]] = forge.get_param @w {{.*}}: tensor<8x8xf32>
// CHECK: %[[DY:.*]] = forge.scale %[[K]]
// CHECK: %[[DH:.*]] = forge.linear_grad_input %[[DY]], %[[W]]
// CHECK: dist.send %[[DH]] to 0 over "pp"(2) tag(1)
// CHECK: return
module attributes {dist.mesh = {dims = ["pp"], sizes = [2]}, dist.stage = 1 : i64, dist.pipeline = {schedule = "1f1b", micro_batches = 3 : i64}} {
  forge.param @w : tensor<8x8xf32> init(normal, std = 2.000000e-02)
  func.func @train_step(%x: tensor<2x8xf32>) -> tensor<f32> {
    %h = dist.recv from 0 over "pp"(2) tag(0) : tensor<2x8xf32>
    %w = forge.get_param @w : tensor<8x8xf32>
    %y = forge.linear %h, %w : tensor<2x8xf32>, tensor<8x8xf32> -> tensor<2x8xf32>
    %l = forge.global_norm %y : tensor<2x8xf32> -> tensor<f32>
    %one = forge.fill 1.0 {forge.backward_begin} : tensor<f32>
    %dy = forge.scale %y by(2.0) : tensor<2x8xf32>
    %dh = forge.linear_grad_input %dy, %w : tensor<2x8xf32>, tensor<8x8xf32> -> tensor<2x8xf32>
    %s = dist.send %dh to 0 over "pp"(2) tag(1) : tensor<2x8xf32> -> tensor<f32>
    return %l : tensor<f32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["pp"], sizes = [2]}, dist.stage = 0 : i64, dist.pipeline = {schedule = "1f1b", micro_batches = 3 : i64}} {
  // expected-error @+1 {{forge-schedule: @train_step of a pipeline stage must be differentiated (forge-build-backward marks where its backward begins)}}
  func.func @train_step(%x: tensor<2x8xf32>) -> tensor<f32> {
    %l = forge.global_norm %x : tensor<2x8xf32> -> tensor<f32>
    return %l : tensor<f32>
  }
}

// -----

// expected-error @+1 {{forge-schedule: distributed.pp_schedule = "interleaved_1f1b" runs the micro-batches in groups of pp: train.grad_accum_steps (3) must be a multiple of pp (2)}}
module attributes {dist.mesh = {dims = ["pp"], sizes = [2]}, dist.stage = 0 : i64, dist.pipeline = {schedule = "interleaved_1f1b", micro_batches = 3 : i64}} {
  func.func @train_step(%x: tensor<2x8xf32>) -> tensor<f32> {
    %l = forge.global_norm %x : tensor<2x8xf32> -> tensor<f32>
    return %l : tensor<f32>
  }
}
