// RUN: forge-opt %s -split-input-file -forge-shard-fsdp -verify-diagnostics | FileCheck %s

// Trainable parameters become dim-0 shards over dp_shard; every read gathers
// the full tensor for the same uses; buffers stay replicated.
// CHECK-LABEL: module attributes {dist.mesh
// CHECK: forge.param @w : tensor<2x8xf32> init( normal, std = 2.000000e-02) {dist.shard = [{dim = 0 : i64, group = "dp_shard"}]}
// CHECK: forge.param @n : tensor<4xf32> init( ones) {dist.shard = [{dim = 0 : i64, group = "dp_shard"}]}
// CHECK: forge.param @b : tensor<3xf32> init( zeros) buffer
// CHECK-NOT: dist.shard
// CHECK: func.func @train_step
// CHECK: %[[S:.*]] = forge.get_param @w : tensor<2x8xf32>
// CHECK: %[[W:.*]] = dist.all_gather %[[S]] dim(0) over "dp_shard"(4) {data_parallel, dist.origin = {of = "w", pass = "forge-shard-fsdp", phase = "forward", what = "weight gather"}} : tensor<2x8xf32> -> tensor<8x8xf32>
// CHECK: forge.linear %{{.*}}, %[[W]]
// CHECK: %[[NS:.*]] = forge.get_param @n : tensor<4xf32>
// CHECK: dist.all_gather %[[NS]] dim(0) over "dp_shard"(4) {data_parallel{{.*}}} : tensor<4xf32> -> tensor<16xf32>
// CHECK: forge.get_param @b : tensor<3xf32>
// CHECK-NOT: dist.all_gather
// CHECK: return
module attributes {dist.mesh = {dims = ["dp_replicate", "dp_shard"], sizes = [1, 4]}} {
  forge.param @w : tensor<8x8xf32> init(normal, std = 2.000000e-02)
  forge.param @n : tensor<16xf32> init(ones)
  forge.param @b : tensor<3xf32> init(zeros) buffer
  func.func @train_step(%x: tensor<2x8xf32>) -> tensor<f32> {
    %w = forge.get_param @w : tensor<8x8xf32>
    %y = forge.linear %x, %w : tensor<2x8xf32>, tensor<8x8xf32> -> tensor<2x8xf32>
    %n = forge.get_param @n : tensor<16xf32>
    %b = forge.get_param @b : tensor<3xf32>
    %l = forge.global_norm %y, %n, %b : tensor<2x8xf32>, tensor<16xf32>, tensor<3xf32> -> tensor<f32>
    return %l : tensor<f32>
  }
}

// -----

// Without a dp_shard dim of more than one rank the pass changes nothing.
// CHECK-LABEL: module attributes {dist.mesh = {dims = ["dp_replicate", "dp_shard"], sizes = [2, 1]}}
// CHECK: forge.param @w : tensor<8x8xf32>
// CHECK-NOT: dist.
module attributes {dist.mesh = {dims = ["dp_replicate", "dp_shard"], sizes = [2, 1]}} {
  forge.param @w : tensor<8x8xf32> init(normal, std = 2.000000e-02)
}

// -----

// A dim 0 that dp_shard does not divide is padded (FSDP2's uneven shards):
// 8 rows over 3 ranks are blocks of 3, the last with one row of padding,
// and the gather drops it.
// CHECK-LABEL: module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [3]}}
// CHECK: forge.param @w : tensor<3x8xf32> init( normal, std = 2.000000e-02) {dist.shard = [{dim = 0 : i64, group = "dp_shard", size = 8 : i64}]}
// CHECK: dist.all_gather %{{.*}} dim(0) over "dp_shard"(3) {data_parallel{{.*}}} : tensor<3x8xf32> -> tensor<8x8xf32>
module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [3]}} {
  forge.param @w : tensor<8x8xf32> init(normal, std = 2.000000e-02)
  func.func @train_step(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %w = forge.get_param @w : tensor<8x8xf32>
    %y = forge.linear %x, %w : tensor<2x8xf32>, tensor<8x8xf32> -> tensor<2x8xf32>
    return %y : tensor<2x8xf32>
  }
}

// -----

// expected-error @+1 {{forge-shard-fsdp: dist.mesh dims must be strings and sizes positive integers}}
module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [-1]}} {
}

// -----

// fp8 (forge-convert-fp8 ran before): a weight gather read only by an fp8
// cast takes the cast in (one byte per element moves); the activation's
// cast stays, and so does the cast of a weight that something else reads
// too (@v also feeds the norm).
// CHECK-LABEL: module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}}
// CHECK: %[[X:.*]] = forge.fp8_cast %arg0 format("e4m3")
// CHECK: %[[WS:.*]] = forge.get_param @w : tensor<4x8xbf16>
// CHECK: %[[W:.*]] = dist.all_gather %[[WS]] dim(0) over "dp_shard"(2) {data_parallel, {{.*}}fp8 = "e4m3"} : tensor<4x8xbf16> -> tensor<8x8xbf16>
// CHECK-NOT: forge.fp8_cast %[[W]]
// CHECK: forge.linear %[[X]], %[[W]]
// CHECK: %[[V:.*]] = dist.all_gather %{{.*}} dim(0) over "dp_shard"(2) {data_parallel, dist.origin = {{{.*}}}} : tensor<4x8xbf16> -> tensor<8x8xbf16>
// CHECK: %[[VQ:.*]] = forge.fp8_cast %[[V]] format("e4m3")
// CHECK: forge.linear %[[X]], %[[VQ]]
module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  forge.param @w : tensor<8x8xbf16> init(normal, std = 2.000000e-02)
  forge.param @v : tensor<8x8xbf16> init(normal, std = 2.000000e-02)
  func.func @train_step(%x: tensor<2x8xbf16>) -> tensor<f32> {
    %xq = forge.fp8_cast %x format("e4m3") : tensor<2x8xbf16>
    %w = forge.get_param @w : tensor<8x8xbf16>
    %wq = forge.fp8_cast %w format("e4m3") : tensor<8x8xbf16>
    %y = forge.linear %xq, %wq : tensor<2x8xbf16>, tensor<8x8xbf16> -> tensor<2x8xbf16>
    %v = forge.get_param @v : tensor<8x8xbf16>
    %vq = forge.fp8_cast %v format("e4m3") : tensor<8x8xbf16>
    %z = forge.linear %xq, %vq : tensor<2x8xbf16>, tensor<8x8xbf16> -> tensor<2x8xbf16>
    %l = forge.global_norm %y, %z, %v : tensor<2x8xbf16>, tensor<2x8xbf16>, tensor<8x8xbf16> -> tensor<f32>
    return %l : tensor<f32>
  }
}
