// RUN: forge-opt %s -split-input-file -forge-plan-memory -verify-diagnostics | FileCheck %s

// Persistent first (params, then program inputs, 64-byte aligned): @w at 0,
// @grad.w at 64, %x at 128, %s at 192; the activation region starts at 256.
// %a (step 0) and %b (step 1) overlap in time; %a dies at step 1, so %c
// (step 2) reuses its slot; the reshape is a view of %c; the loss takes %b's
// freed slot. @optimizer_step starts from an empty region again; its
// zeroing of @grad.w is written in place (64), so its other fill gets 256.
// CHECK-LABEL: module attributes {exec.memory = {activations_peak = 128 : i64, gradients = 64 : i64, inputs = 72 : i64, optimizer_state = 0 : i64, other_state = 0 : i64, parameters = 64 : i64, total = 384 : i64}}
// CHECK: forge.param @w {{.*}} {exec.offset = 0 : i64}
// CHECK: forge.param @grad.w {{.*}} {exec.offset = 64 : i64}
forge.param @w : tensor<4x4xf32> init(normal, std = 2.000000e-02)
forge.param @grad.w : tensor<4x4xf32> init(zeros) buffer

// CHECK: func.func @train_step(%{{.*}}: tensor<4x4xf32> {exec.offset = 128 : i64})
func.func @train_step(%x: tensor<4x4xf32>) -> tensor<f32> {
  %w = forge.get_param @w : tensor<4x4xf32>
  // CHECK: forge.mul {{.*}} {exec.offsets = array<i64: 256>}
  %a = forge.mul %x, %w : tensor<4x4xf32>
  // CHECK: forge.relu {{.*}} {exec.offsets = array<i64: 320>}
  %b = forge.relu %a : tensor<4x4xf32>
  // CHECK: forge.relu {{.*}} {exec.offsets = array<i64: 256>}
  %c = forge.relu %b : tensor<4x4xf32>
  // CHECK: forge.reshape {{.*}} {exec.offsets = array<i64: 256>}
  %v = forge.reshape %c : tensor<4x4xf32> -> tensor<2x8xf32>
  // CHECK: forge.z_loss {{.*}} {exec.offsets = array<i64: 320>}
  %l = forge.z_loss %v : tensor<2x8xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// CHECK: func.func @optimizer_step(%{{.*}}: tensor<i64> {exec.offset = 192 : i64})
func.func @optimizer_step(%s: tensor<i64>) -> (tensor<f32>, tensor<f32>) {
  // CHECK: forge.fill {{.*}} {exec.offsets = array<i64: 64>}
  %z = forge.fill 0.0 : tensor<4x4xf32>
  forge.set_param @grad.w, %z : tensor<4x4xf32>
  // CHECK: forge.fill {{.*}} {exec.offsets = array<i64: 256>}
  %n = forge.fill 1.0 : tensor<f32>
  return %n, %n : tensor<f32>, tensor<f32>
}

// -----

// expected-error @+1 {{forge-plan-memory: the module has no @optimizer_step (run forge-build-optimizer first)}}
module {
  func.func @train_step(%x: tensor<f32>) -> tensor<f32> {
    return %x : tensor<f32>
  }
}

// -----

func.func @train_step(%x: tensor<4xf32>) -> tensor<f32> {
  // expected-error @+1 {{'forge.fill' op forge-plan-memory: cannot place a value of type 'tensor<4xf64>' (static f32/bf16/f16/i64/i32 tensors only)}}
  %y = forge.fill 0.0 : tensor<4xf64>
  %l = forge.fill 0.0 : tensor<f32>
  return %l : tensor<f32>
}
func.func @optimizer_step(%s: tensor<i64>) -> (tensor<f32>, tensor<f32>) {
  %n = forge.fill 1.0 : tensor<f32>
  return %n, %n : tensor<f32>, tensor<f32>
}

// -----

// A collective that communicates runs asynchronously: its operand %a and
// result %r stay live until the first op reading %r (step 3), so neither
// %b (step 2) nor %c (step 3) takes %a's slot although %a's last use is
// step 1; the loss (step 4) does.
// Params at 0 and 64, %x at 128, %s at 192; activations from 256.
module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  forge.param @w : tensor<4x4xf32> init(normal, std = 2.000000e-02)
  forge.param @grad.w : tensor<4x4xf32> init(zeros) buffer
  // CHECK: func.func @train_step
  func.func @train_step(%x: tensor<4x4xf32>) -> tensor<f32> {
    // CHECK: forge.relu {{.*}} {exec.offsets = array<i64: 256>}
    %a = forge.relu %x : tensor<4x4xf32>
    // CHECK: dist.all_reduce {{.*}} {exec.offsets = array<i64: 320>}
    %r = dist.all_reduce %a over "dp_shard"(2) reduce("sum") : tensor<4x4xf32>
    // CHECK: forge.relu {{.*}} {exec.offsets = array<i64: 384>}
    %b = forge.relu %x : tensor<4x4xf32>
    // CHECK: forge.add {{.*}} {exec.offsets = array<i64: 448>}
    %c = forge.add %r, %b : tensor<4x4xf32>
    // CHECK: forge.z_loss {{.*}} {exec.offsets = array<i64: 256>}
    %l = forge.z_loss %c : tensor<4x4xf32> -> tensor<f32>
    return %l : tensor<f32>
  }
  func.func @optimizer_step(%s: tensor<i64>) -> (tensor<f32>, tensor<f32>) {
    %n = forge.fill 1.0 : tensor<f32>
    return %n, %n : tensor<f32>, tensor<f32>
  }
}

// -----

// In place: the AdamW update writes the new parameter and moments over the
// old ones (offsets 0, 64, 128: the params' own), and the gradient
// accumulation its sum into @grad.w (192), so their set_params copy nothing
// and nothing lands in the activation region for them. The update of @u
// writes its moments in place but not its parameter: the old @u is read
// after it (by %after).
// CHECK-LABEL: module attributes {exec.memory
// CHECK: forge.param @w {{.*}} {exec.offset = 0 : i64}
// CHECK: forge.param @m {{.*}} {exec.offset = 64 : i64}
// CHECK: forge.param @v {{.*}} {exec.offset = 128 : i64}
// CHECK: forge.param @grad.w {{.*}} {exec.offset = 192 : i64}
// CHECK: forge.param @u {{.*}} {exec.offset = 256 : i64}
// CHECK: forge.param @um {{.*}} {exec.offset = 320 : i64}
// CHECK: forge.param @uv {{.*}} {exec.offset = 384 : i64}
forge.param @w : tensor<4x4xf32> init(normal, std = 2.000000e-02)
forge.param @m : tensor<4x4xf32> init(zeros) buffer
forge.param @v : tensor<4x4xf32> init(zeros) buffer
forge.param @grad.w : tensor<4x4xf32> init(zeros) buffer
forge.param @u : tensor<4x4xf32> init(normal, std = 2.000000e-02)
forge.param @um : tensor<4x4xf32> init(zeros) buffer
forge.param @uv : tensor<4x4xf32> init(zeros) buffer

func.func @train_step(%x: tensor<4x4xf32>) -> tensor<f32> {
  %g = forge.get_param @grad.w : tensor<4x4xf32>
  // CHECK: forge.add {{.*}} {exec.offsets = array<i64: 192>}
  %acc = forge.add %g, %x : tensor<4x4xf32>
  forge.set_param @grad.w, %acc : tensor<4x4xf32>
  %l = forge.z_loss %x : tensor<4x4xf32> -> tensor<f32>
  return %l : tensor<f32>
}

func.func @optimizer_step(%s: tensor<i64>) -> (tensor<f32>, tensor<f32>) {
  %lr = forge.fill 1.0e-3 : tensor<f32>
  %p = forge.get_param @w : tensor<4x4xf32>
  %g = forge.get_param @grad.w : tensor<4x4xf32>
  %m = forge.get_param @m : tensor<4x4xf32>
  %v = forge.get_param @v : tensor<4x4xf32>
  // CHECK: forge.adamw_update {{.*}} {exec.offsets = array<i64: 0, 64, 128>}
  %p1, %m1, %v1 = forge.adamw_update %p, %g, %m, %v, %lr, %lr, %s betas(9.000000e-01, 9.500000e-01) eps(1.000000e-08) weight_decay(1.000000e-01) : tensor<4x4xf32>, tensor<f32>, tensor<f32>, tensor<i64>
  forge.set_param @w, %p1 : tensor<4x4xf32>
  forge.set_param @m, %m1 : tensor<4x4xf32>
  forge.set_param @v, %v1 : tensor<4x4xf32>
  %u = forge.get_param @u : tensor<4x4xf32>
  %um = forge.get_param @um : tensor<4x4xf32>
  %uv = forge.get_param @uv : tensor<4x4xf32>
  // CHECK: forge.adamw_update {{.*}} {exec.offsets = array<i64: {{[0-9]+}}, 320, 384>}
  // CHECK-NOT: array<i64: 256, 320, 384>
  %u1, %um1, %uv1 = forge.adamw_update %u, %g, %um, %uv, %lr, %lr, %s betas(9.000000e-01, 9.500000e-01) eps(1.000000e-08) weight_decay(1.000000e-01) : tensor<4x4xf32>, tensor<f32>, tensor<f32>, tensor<i64>
  %after = forge.z_loss %u : tensor<4x4xf32> -> tensor<f32>
  forge.set_param @u, %u1 : tensor<4x4xf32>
  forge.set_param @um, %um1 : tensor<4x4xf32>
  forge.set_param @uv, %uv1 : tensor<4x4xf32>
  return %after, %lr : tensor<f32>, tensor<f32>
}

// -----

// The optimizer step's zeroing of a gradient (a fill that set_param stores)
// is written straight into the gradient (@grad.w, 64) when nothing reads the
// old gradient after it. @grad.u is read after its fill (by %after), so that
// fill gets an activation slot of its own and set_param copies it.
// Persistent: @w 0, @grad.w 64, @grad.u 128, %x 192, %s 256; activations
// from 320.
// CHECK: forge.param @grad.w {{.*}} {exec.offset = 64 : i64}
// CHECK: forge.param @grad.u {{.*}} {exec.offset = 128 : i64}
forge.param @w : tensor<4x4xf32> init(normal, std = 2.000000e-02)
forge.param @grad.w : tensor<4x4xf32> init(zeros) buffer
forge.param @grad.u : tensor<4x4xf32> init(zeros) buffer

func.func @train_step(%x: tensor<4x4xf32>) -> tensor<f32> {
  %l = forge.z_loss %x : tensor<4x4xf32> -> tensor<f32>
  return %l : tensor<f32>
}

// CHECK: func.func @optimizer_step
func.func @optimizer_step(%s: tensor<i64>) -> (tensor<f32>, tensor<f32>) {
  %g = forge.get_param @grad.w : tensor<4x4xf32>
  // CHECK: forge.z_loss {{.*}} {exec.offsets = array<i64: 320>}
  %n = forge.z_loss %g : tensor<4x4xf32> -> tensor<f32>
  // CHECK: forge.fill {{.*}} {exec.offsets = array<i64: 64>}
  %z = forge.fill 0.000000e+00 : tensor<4x4xf32>
  forge.set_param @grad.w, %z : tensor<4x4xf32>
  %u = forge.get_param @grad.u : tensor<4x4xf32>
  // CHECK: forge.fill {{.*}} {exec.offsets = array<i64: 384>}
  %zu = forge.fill 0.000000e+00 : tensor<4x4xf32>
  %after = forge.z_loss %u : tensor<4x4xf32> -> tensor<f32>
  forge.set_param @grad.u, %zu : tensor<4x4xf32>
  return %n, %after : tensor<f32>, tensor<f32>
}
