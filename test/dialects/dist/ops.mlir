// The dist collectives parse, verify and print back.
// RUN: forge-opt %s | forge-opt | FileCheck %s

module attributes {dist.mesh = {dims = ["dp_replicate", "dp_shard"], sizes = [2, 4]}} {
  func.func @f(%shard: tensor<8x16xf32>, %s: tensor<f32>) -> (tensor<32x16xf32>, tensor<8x16xf32>, tensor<f32>) {
    // CHECK: dist.all_gather %{{.*}} dim(0) over "dp_shard"(4) {data_parallel} : tensor<8x16xf32> -> tensor<32x16xf32>
    %full = dist.all_gather %shard dim(0) over "dp_shard"(4) {data_parallel} : tensor<8x16xf32> -> tensor<32x16xf32>
    // CHECK: dist.reduce_scatter %{{.*}} dim(0) over "dp_shard"(4) reduce("avg") : tensor<32x16xf32> -> tensor<8x16xf32>
    %g = dist.reduce_scatter %full dim(0) over "dp_shard"(4) reduce("avg") : tensor<32x16xf32> -> tensor<8x16xf32>
    // CHECK: dist.all_reduce %{{.*}} over "dp_replicate"(2) reduce("sum") : tensor<f32>
    %t = dist.all_reduce %s over "dp_replicate"(2) reduce("sum") : tensor<f32>
    return %full, %g, %t : tensor<32x16xf32>, tensor<8x16xf32>, tensor<f32>
  }
}
