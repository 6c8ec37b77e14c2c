// RUN: forge-opt %s -split-input-file -convert-forge-to-exec -verify-diagnostics | FileCheck %s

// A laid-out FSDP step (the output of forge-schedule and forge-plan-memory):
// the arena holds exec.memory's total; parameters and buffers, then the
// program inputs, then each program's values become buffers in that order;
// a reshape is a buffer at its input's offset and launches nothing; a
// get_param is the parameter's buffer; set_param writes it; collectives
// keep their group, dim and reduce, and say why they are there.
// CHECK-LABEL: module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
// CHECK-NEXT: exec.arena size(576) alignment(64)
// CHECK-NEXT: exec.buffer @w : [2, 4] f32 parameter offset(0) size(32) init(normal, std = 2.000000e-02) shard([0] over ["dp_shard"], global [4, 4])
// CHECK-NEXT: exec.buffer @grad.w : [2, 4] f32 gradient offset(64) size(32) init(zeros)
// CHECK-NEXT: exec.buffer @optimizer.exp_avg.w : [2, 4] f32 optimizer_state offset(128) size(32) init(zeros)
// CHECK-NEXT: exec.buffer @router.ema : [4] f32 state offset(192) size(16) init(ones)
// CHECK-NEXT: exec.buffer @train_step.arg0 : [4, 4] f32 input offset(256) size(64)
// CHECK-NEXT: exec.buffer @train_step.v0 : [4, 4] f32 activation offset(384) size(64)
// CHECK-NEXT: exec.buffer @train_step.v1 : [4, 4] f32 activation offset(448) size(64)
// CHECK-NEXT: exec.buffer @train_step.v2 : [2, 8] f32 activation offset(448) size(64)
// CHECK-NEXT: exec.buffer @train_step.v3 : [] f32 activation offset(384) size(4)
// CHECK-NEXT: exec.buffer @train_step.v4 : [2, 4] f32 activation offset(512) size(32)
// CHECK-NEXT: exec.buffer @train_step.v5 : [2, 4] f32 activation offset(448) size(32)
// CHECK-NEXT: exec.buffer @optimizer_step.arg0 : [] i64 input offset(320) size(8)
// CHECK-NEXT: exec.buffer @optimizer_step.v0 : [] f32 activation offset(384) size(4)
// CHECK-NEXT: exec.buffer @optimizer_step.v1 : [] f32 activation offset(448) size(4)
// CHECK-NEXT: exec.buffer @optimizer_step.v2 : [] f32 activation offset(384) size(4)
// CHECK-NEXT: exec.program @train_step inputs [@train_step.arg0] outputs [@train_step.v3] {
// CHECK-NEXT: exec.collective "all_gather" [@w] -> [@train_step.v0] over "dp_shard"(2) dim(0) stream(1) attrs {data_parallel} origin("dist.all_gather of parameter w")
// CHECK-NEXT: exec.launch "forge.mul" [@train_step.arg0, @train_step.v0] -> [@train_step.v1] stream(0){{$}}
// CHECK-NEXT: exec.launch "forge.z_loss" [@train_step.v2] -> [@train_step.v3] stream(0){{$}}
// CHECK-NEXT: exec.collective "reduce_scatter" [@train_step.v1] -> [@train_step.v4] over "dp_shard"(2) dim(0) reduce("avg") stream(1) origin("dist.reduce_scatter of the gradient of w")
// CHECK-NEXT: exec.launch "forge.add" [@grad.w, @train_step.v4] -> [@train_step.v5] stream(0){{$}}
// CHECK-NEXT: exec.launch "forge.set_param" [@train_step.v5] -> [@grad.w] stream(0){{$}}
// CHECK-NEXT: }
// CHECK-NEXT: exec.program @optimizer_step inputs [@optimizer_step.arg0] outputs [@optimizer_step.v1, @optimizer_step.v2] {
// CHECK-NEXT: exec.launch "forge.global_norm" [@grad.w] -> [@optimizer_step.v0] stream(0) attrs {squared}
// CHECK-NEXT: exec.collective "all_reduce" [@optimizer_step.v0] -> [@optimizer_step.v1] over "dp_shard"(2) reduce("sum") stream(1) origin("dist.all_reduce of the result of forge.global_norm (optimizer_step.v0)")
// CHECK-NEXT: exec.launch "forge.lr_factor" [@optimizer_step.arg0] -> [@optimizer_step.v2] stream(0) attrs {decay = 0 : i64, max_steps = 100 : i64, min_lr_ratio = 1.000000e-01 : f64, rex_alpha = 1.000000e+00 : f64, schedule = "cosine", stable = 0 : i64, warmup = 10 : i64, wsd_decay = "cosine"}
// CHECK-NEXT: }
// CHECK-NEXT: }
module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}, exec.memory = {activations_peak = 192 : i64, gradients = 32 : i64, inputs = 72 : i64, optimizer_state = 32 : i64, other_state = 16 : i64, parameters = 32 : i64, total = 576 : i64}} {
  forge.param @w : tensor<2x4xf32> init(normal, std = 2.000000e-02) {dist.shard = [{dim = 0 : i64, group = "dp_shard"}], exec.offset = 0 : i64}
  forge.param @grad.w : tensor<2x4xf32> init(zeros) buffer {exec.offset = 64 : i64}
  forge.param @optimizer.exp_avg.w : tensor<2x4xf32> init(zeros) buffer {exec.offset = 128 : i64}
  forge.param @router.ema : tensor<4xf32> init(ones) buffer {exec.offset = 192 : i64}
  func.func @train_step(%x: tensor<4x4xf32> {exec.offset = 256 : i64}) -> tensor<f32> {
    %s = forge.get_param @w {exec.stream = 0 : i64} : tensor<2x4xf32>
    %w = dist.all_gather %s dim(0) over "dp_shard"(2) {data_parallel, exec.offsets = array<i64: 384>, exec.stream = 1 : i64} : tensor<2x4xf32> -> tensor<4x4xf32>
    %m = forge.mul %x, %w {exec.offsets = array<i64: 448>, exec.stream = 0 : i64} : tensor<4x4xf32>
    %v = forge.reshape %m {exec.offsets = array<i64: 448>, exec.stream = 0 : i64} : tensor<4x4xf32> -> tensor<2x8xf32>
    %l = forge.z_loss %v {exec.offsets = array<i64: 384>, exec.stream = 0 : i64} : tensor<2x8xf32> -> tensor<f32>
    %g = dist.reduce_scatter %m dim(0) over "dp_shard"(2) reduce("avg") {exec.offsets = array<i64: 512>, exec.stream = 1 : i64} : tensor<4x4xf32> -> tensor<2x4xf32>
    %acc = forge.get_param @grad.w {exec.stream = 0 : i64} : tensor<2x4xf32>
    %sum = forge.add %acc, %g {exec.offsets = array<i64: 448>, exec.stream = 0 : i64} : tensor<2x4xf32>
    forge.set_param @grad.w, %sum {exec.stream = 0 : i64} : tensor<2x4xf32>
    return %l : tensor<f32>
  }
  func.func @optimizer_step(%step: tensor<i64> {exec.offset = 320 : i64}) -> (tensor<f32>, tensor<f32>) {
    %g = forge.get_param @grad.w {exec.stream = 0 : i64} : tensor<2x4xf32>
    %n = forge.global_norm %g {exec.offsets = array<i64: 384>, exec.stream = 0 : i64, squared} : tensor<2x4xf32> -> tensor<f32>
    %t = dist.all_reduce %n over "dp_shard"(2) reduce("sum") {exec.offsets = array<i64: 448>, exec.stream = 1 : i64} : tensor<f32>
    %f = forge.lr_factor %step {decay = 0 : i64, exec.offsets = array<i64: 384>, exec.stream = 0 : i64, max_steps = 100 : i64, min_lr_ratio = 1.000000e-01 : f64, rex_alpha = 1.000000e+00 : f64, schedule = "cosine", stable = 0 : i64, warmup = 10 : i64, wsd_decay = "cosine"} : tensor<i64> -> tensor<f32>
    return %t, %f : tensor<f32>, tensor<f32>
  }
}

// -----

// forge's enum attributes become their strings: exec IR holds builtin
// values only. Programs may return a parameter's buffer directly.
// CHECK-LABEL: module {
// CHECK: exec.launch "forge.grouped_linear" [@f.arg0, @e, @f.arg1] -> [@f.v0] stream(0) attrs {layout = "in_out"}
// CHECK: exec.program @g inputs [] outputs [@e] {
module attributes {exec.memory = {total = 448 : i64}} {
  forge.param @e : tensor<2x4x3xf32> init(zeros) {exec.offset = 0 : i64}
  func.func @f(%x: tensor<6x4xf32> {exec.offset = 128 : i64}, %n: tensor<2xi64> {exec.offset = 256 : i64}) -> tensor<6x3xf32> {
    %w = forge.get_param @e {exec.stream = 0 : i64} : tensor<2x4x3xf32>
    %y = forge.grouped_linear %x, %w, %n layout(in_out) {exec.offsets = array<i64: 320>, exec.stream = 0 : i64} : tensor<6x4xf32>, tensor<2x4x3xf32>, tensor<2xi64> -> tensor<6x3xf32>
    return %y : tensor<6x3xf32>
  }
  func.func @g() -> tensor<2x4x3xf32> {
    %w = forge.get_param @e {exec.stream = 0 : i64} : tensor<2x4x3xf32>
    return %w : tensor<2x4x3xf32>
  }
}

// -----

// The global shape undoes the splits from the innermost out: an uneven
// (padded) split records the extent it cut, an even one multiplies.
// CHECK-LABEL: module attributes {dist.mesh
// CHECK-NEXT: exec.arena size(64) alignment(64)
// CHECK-NEXT: exec.buffer @u : [4, 2] f32 parameter offset(0) size(32) init(zeros) shard([1, 0] over ["tp", "dp_shard"], global [7, 4])
module attributes {dist.mesh = {dims = ["dp_shard", "tp"], sizes = [2, 2]}, exec.memory = {total = 64 : i64}} {
  forge.param @u : tensor<4x2xf32> init(zeros) {dist.shard = [{dim = 1 : i64, group = "tp"}, {dim = 0 : i64, group = "dp_shard", size = 7 : i64}], exec.offset = 0 : i64}
}

// -----

// expected-error @+1 {{convert-forge-to-exec: the module has no memory layout: run forge-plan-memory first}}
module {
}

// -----

module attributes {exec.memory = {total = 64 : i64}} {
  // expected-error @+1 {{'forge.param' op convert-forge-to-exec: parameter 'w' has no memory layout: run forge-plan-memory first}}
  forge.param @w : tensor<4xf32> init(zeros)
}

// -----

module attributes {exec.memory = {total = 64 : i64}} {
  // expected-error @+1 {{'func.func' op convert-forge-to-exec: @f argument 0 has no memory layout: run forge-plan-memory first}}
  func.func @f(%x: tensor<4xf32>) {
    return
  }
}

// -----

module attributes {exec.memory = {total = 64 : i64}} {
  func.func @f() -> tensor<4xf32> {
    // expected-error @+1 {{'forge.fill' op convert-forge-to-exec: op has no memory layout: run forge-plan-memory first}}
    %z = forge.fill 0.0 {exec.stream = 0 : i64} : tensor<4xf32>
    return %z : tensor<4xf32>
  }
}

// -----

module attributes {exec.memory = {total = 64 : i64}} {
  func.func @f() -> tensor<4xf32> {
    // expected-error @+1 {{'forge.fill' op convert-forge-to-exec: op has no exec.stream: run forge-schedule first}}
    %z = forge.fill 0.0 {exec.offsets = array<i64: 0>} : tensor<4xf32>
    return %z : tensor<4xf32>
  }
}

// -----

module attributes {exec.memory = {total = 64 : i64}} {
  forge.param @f.v0 : tensor<4xf32> init(zeros) {exec.offset = 0 : i64}
  func.func @f() -> tensor<4xf32> {
    // expected-error @+1 {{'forge.fill' op convert-forge-to-exec: buffer name 'f.v0' is used twice}}
    %z = forge.fill 0.0 {exec.offsets = array<i64: 0>, exec.stream = 0 : i64} : tensor<4xf32>
    return %z : tensor<4xf32>
  }
}
