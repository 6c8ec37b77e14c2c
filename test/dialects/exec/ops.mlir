// The exec ops parse, verify and print back.
// RUN: forge-opt %s -split-input-file | forge-opt -split-input-file | FileCheck %s

// CHECK-LABEL: module attributes {dist.mesh
module attributes {dist.mesh = {dims = ["dp_shard", "tp"], sizes = [2, 2]}} {
  // CHECK: exec.arena size(1600) alignment(64)
  exec.arena size(1600) alignment(64)
  // CHECK: exec.buffer @w : [4, 8] f32 parameter offset(0) size(128) init(normal, std = 2.000000e-02) shard([1, 0] over ["tp", "dp_shard"], global [8, 16])
  exec.buffer @w : [4, 8] f32 parameter offset(0) size(128) init(normal, std = 2.000000e-02) shard([1, 0] over ["tp", "dp_shard"], global [8, 16])
  // CHECK: exec.buffer @grad.w : [4, 8] f32 gradient offset(128) size(128) init(zeros)
  exec.buffer @grad.w : [4, 8] f32 gradient offset(128) size(128) init(zeros)
  // CHECK: exec.buffer @optimizer.exp_avg.w : [4, 8] f32 optimizer_state offset(256) size(128) init(zeros)
  exec.buffer @optimizer.exp_avg.w : [4, 8] f32 optimizer_state offset(256) size(128) init(zeros)
  // CHECK: exec.buffer @router.ema : [4] bf16 state offset(384) size(8) init(ones)
  exec.buffer @router.ema : [4] bf16 state offset(384) size(8) init(ones)
  // CHECK: exec.buffer @train_step.arg0 : [2, 4] i64 input offset(448) size(64)
  exec.buffer @train_step.arg0 : [2, 4] i64 input offset(448) size(64)
  // CHECK: exec.buffer @train_step.arg1 : [2, 4] i32 input offset(512) size(32)
  exec.buffer @train_step.arg1 : [2, 4] i32 input offset(512) size(32)
  // CHECK: exec.buffer @train_step.v0 : [8, 8] f32 activation offset(576) size(256)
  exec.buffer @train_step.v0 : [8, 8] f32 activation offset(576) size(256)
  // A view: a second buffer at the same offset.
  // CHECK: exec.buffer @train_step.v1 : [64] f32 activation offset(576) size(256)
  exec.buffer @train_step.v1 : [64] f32 activation offset(576) size(256)
  exec.buffer @train_step.v2 : [8, 8] f32 activation offset(832) size(256)
  exec.buffer @train_step.v3 : [8, 8] f32 activation offset(1088) size(256)
  // CHECK: exec.buffer @train_step.v4 : [] f32 activation offset(1344) size(4)
  exec.buffer @train_step.v4 : [] f32 activation offset(1344) size(4)

  // CHECK: exec.program @train_step inputs [@train_step.arg0, @train_step.arg1] outputs [@train_step.v4] {
  exec.program @train_step inputs [@train_step.arg0, @train_step.arg1] outputs [@train_step.v4] {
    // CHECK-NEXT: exec.collective "all_gather" [@w] -> [@train_step.v0] over "dp_shard"(2) dim(0) stream(1) attrs {data_parallel} origin("dist.all_gather of parameter w for layers.0 (job.toml:3:1)")
    exec.collective "all_gather" [@w] -> [@train_step.v0] over "dp_shard"(2) dim(0) stream(1) attrs {data_parallel} origin("dist.all_gather of parameter w for layers.0 (job.toml:3:1)")
    // CHECK-NEXT: exec.launch "forge.rmsnorm" [@train_step.v0, @router.ema] -> [@train_step.v2] stream(0) attrs {eps = 9.9999999999999995E-7 : f64}
    exec.launch "forge.rmsnorm" [@train_step.v0, @router.ema] -> [@train_step.v2] stream(0) attrs {eps = 1.0e-6 : f64}
    // CHECK-NEXT: exec.collective "all_reduce" [@train_step.v2] -> [@train_step.v3] over "tp"(2) reduce("sum") stream(1) origin("row-parallel output")
    exec.collective "all_reduce" [@train_step.v2] -> [@train_step.v3] over "tp"(2) reduce("sum") stream(1) origin("row-parallel output")
    // CHECK-NEXT: exec.collective "reduce_scatter" [@train_step.v3] -> [@grad.w] over "dp_shard"(2) dim(0) reduce("avg") stream(1) origin("gradient")
    exec.collective "reduce_scatter" [@train_step.v3] -> [@grad.w] over "dp_shard"(2) dim(0) reduce("avg") stream(1) origin("gradient")
    // CHECK-NEXT: exec.launch "forge.fill" [] -> [@train_step.v4] stream(0) attrs {value = 0.000000e+00 : f64}
    exec.launch "forge.fill" [] -> [@train_step.v4] stream(0) attrs {value = 0.0 : f64}
    // CHECK-NEXT: exec.launch "forge.set_param" [@train_step.v2] -> [@optimizer.exp_avg.w] stream(0){{$}}
    exec.launch "forge.set_param" [@train_step.v2] -> [@optimizer.exp_avg.w] stream(0)
  }
  // An uneven split: 7 rows over 2 ranks are blocks of 4, the last padded.
  // CHECK: exec.buffer @u : [4, 2] f32 parameter offset(1536) size(32) init(zeros) shard([0] over ["dp_shard"], global [7, 2])
  exec.buffer @u : [4, 2] f32 parameter offset(1536) size(32) init(zeros) shard([0] over ["dp_shard"], global [7, 2])
  // A padded FSDP block: 5 rows over 2 ranks are blocks of 3.
  exec.buffer @pad.block : [3, 4] f32 activation offset(1408) size(48)
  exec.buffer @pad.whole : [5, 4] f32 activation offset(1472) size(80)
  // CHECK: exec.program @pad
  // CHECK-NEXT: exec.collective "all_gather" [@pad.block] -> [@pad.whole]
  // CHECK-NEXT: exec.collective "reduce_scatter" [@pad.whole] -> [@pad.block]
  exec.program @pad inputs [] outputs [] {
    exec.collective "all_gather" [@pad.block] -> [@pad.whole] over "dp_shard"(2) dim(0) stream(1) origin("test")
    exec.collective "reduce_scatter" [@pad.whole] -> [@pad.block] over "dp_shard"(2) dim(0) reduce("sum") stream(1) origin("test")
  }
  // CHECK: exec.program @optimizer_step inputs [] outputs [] {
  // CHECK-NEXT: }
  exec.program @optimizer_step inputs [] outputs [] {
  }
}

// -----

// A module without a mesh: unsharded buffers, no collectives.
// CHECK-LABEL: module {
// CHECK: exec.arena size(0) alignment(128)
exec.arena size(0) alignment(128)
// CHECK: exec.buffer @empty : [0, 4] bf16 activation offset(0) size(0)
exec.buffer @empty : [0, 4] bf16 activation offset(0) size(0)
