// The dist collectives parse, verify and print back.
// RUN: forge-opt %s -split-input-file | forge-opt -split-input-file | FileCheck %s

module attributes {dist.mesh = {dims = ["dp_replicate", "dp_shard"], sizes = [2, 4]}} {
  func.func @f(%shard: tensor<8x16xf32>, %s: tensor<f32>) -> (tensor<32x16xf32>, tensor<8x16xf32>, tensor<f32>) {
    // CHECK: dist.all_gather %{{.*}} dim(0) over "dp_shard"(4) {data_parallel} : tensor<8x16xf32> -> tensor<32x16xf32>
    %full = dist.all_gather %shard dim(0) over "dp_shard"(4) {data_parallel} : tensor<8x16xf32> -> tensor<32x16xf32>
    // CHECK: dist.all_gather %{{.*}} dim(0) over "dp_shard"(4) {data_parallel, fp8 = "e4m3"} : tensor<8x16xf32> -> tensor<32x16xf32>
    %full8 = dist.all_gather %shard dim(0) over "dp_shard"(4) {data_parallel, fp8 = "e4m3"} : tensor<8x16xf32> -> tensor<32x16xf32>
    // CHECK: dist.reduce_scatter %{{.*}} dim(0) over "dp_shard"(4) reduce("avg") : tensor<32x16xf32> -> tensor<8x16xf32>
    %g = dist.reduce_scatter %full dim(0) over "dp_shard"(4) reduce("avg") : tensor<32x16xf32> -> tensor<8x16xf32>
    // CHECK: dist.all_reduce %{{.*}} over "dp_replicate"(2) reduce("sum") : tensor<f32>
    %t = dist.all_reduce %s over "dp_replicate"(2) reduce("sum") : tensor<f32>
    return %full, %g, %t : tensor<32x16xf32>, tensor<8x16xf32>, tensor<f32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard", "tp"], sizes = [2, 2]}} {
  // CHECK: forge.param @w : tensor<4x16xf32> init( normal, std = 2.000000e-02) {dist.shard = [{dim = 1 : i64, group = "tp"}, {dim = 0 : i64, group = "dp_shard"}]}
  forge.param @w : tensor<4x16xf32> init(normal, std = 0.02) {dist.shard = [{dim = 1 : i64, group = "tp"}, {dim = 0 : i64, group = "dp_shard"}]}
  func.func @copy(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    // CHECK: dist.copy %{{.*}} over "tp"(2) : tensor<2x8xf32>
    %y = dist.copy %x over "tp"(2) : tensor<2x8xf32>
    return %y : tensor<2x8xf32>
  }
  // Uneven blocks: 7 rows over 2 ranks are blocks of 4, the last padded;
  // slice keeps a block of a replicated tensor.
  func.func @padded(%x: tensor<4x3xf32>, %r: tensor<2x8x4xf32>) -> (tensor<7x3xf32>, tensor<4x3xf32>, tensor<2x4x4xf32>) {
    // CHECK: dist.all_gather %{{.*}} dim(0) over "dp_shard"(2) {data_parallel} : tensor<4x3xf32> -> tensor<7x3xf32>
    %g = dist.all_gather %x dim(0) over "dp_shard"(2) {data_parallel} : tensor<4x3xf32> -> tensor<7x3xf32>
    // CHECK: dist.reduce_scatter %{{.*}} dim(0) over "dp_shard"(2) reduce("avg") : tensor<7x3xf32> -> tensor<4x3xf32>
    %s = dist.reduce_scatter %g dim(0) over "dp_shard"(2) reduce("avg") : tensor<7x3xf32> -> tensor<4x3xf32>
    // CHECK: dist.slice %{{.*}} dim(1) over "tp"(2) : tensor<2x8x4xf32> -> tensor<2x4x4xf32>
    %b = dist.slice %r dim(1) over "tp"(2) : tensor<2x8x4xf32> -> tensor<2x4x4xf32>
    return %g, %s, %b : tensor<7x3xf32>, tensor<4x3xf32>, tensor<2x4x4xf32>
  }
}

// -----

// Expert parallelism's all-to-alls: rows to the experts' ranks (exchanging
// counts, or with them known) and back.
module attributes {dist.mesh = {dims = ["ep"], sizes = [2]}} {
  func.func @experts(%rows: tensor<8x4xbf16>, %sizes: tensor<4xi64>) -> tensor<8x4xbf16> {
    // CHECK: %[[X:.*]], %{{.*}}, %[[C:.*]] = dist.expert_dispatch %{{.*}}, %{{.*}} over "ep"(2) : tensor<8x4xbf16>, tensor<4xi64> -> tensor<16x4xbf16>, tensor<2xi64>, tensor<2x2xi64>
    %x, %local, %counts = dist.expert_dispatch %rows, %sizes over "ep"(2) : tensor<8x4xbf16>, tensor<4xi64> -> tensor<16x4xbf16>, tensor<2xi64>, tensor<2x2xi64>
    // CHECK: dist.expert_combine %[[X]], %[[C]], %{{.*}} over "ep"(2) : tensor<16x4xbf16>, tensor<2x2xi64>, tensor<4xi64> -> tensor<8x4xbf16>
    %back = dist.expert_combine %x, %counts, %sizes over "ep"(2) : tensor<16x4xbf16>, tensor<2x2xi64>, tensor<4xi64> -> tensor<8x4xbf16>
    // CHECK: dist.expert_dispatch %{{.*}}, %{{.*}} counts %[[C]] over "ep"(2) : tensor<8x4xbf16>, tensor<4xi64>, tensor<2x2xi64> -> tensor<16x4xbf16>, tensor<2xi64>, tensor<2x2xi64>
    %y, %l2, %c2 = dist.expert_dispatch %back, %sizes counts %counts over "ep"(2) : tensor<8x4xbf16>, tensor<4xi64>, tensor<2x2xi64> -> tensor<16x4xbf16>, tensor<2xi64>, tensor<2x2xi64>
    return %back : tensor<8x4xbf16>
  }
}

// -----

// Pipeline stages' point-to-point transfers.
module attributes {dist.mesh = {dims = ["pp"], sizes = [2]}} {
  func.func @p2p(%h: tensor<2x8xbf16>) -> (tensor<f32>, tensor<2x8xbf16>) {
    // CHECK: dist.send %{{.*}} to 1 over "pp"(2) tag(0) : tensor<2x8xbf16> -> tensor<f32>
    %z = dist.send %h to 1 over "pp"(2) tag(0) : tensor<2x8xbf16> -> tensor<f32>
    // CHECK: dist.recv from 1 over "pp"(2) tag(1) : tensor<2x8xbf16>
    %g = dist.recv from 1 over "pp"(2) tag(1) : tensor<2x8xbf16>
    return %z, %g : tensor<f32>, tensor<2x8xbf16>
  }
}
