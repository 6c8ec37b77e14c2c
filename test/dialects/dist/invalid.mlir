// One case per verifier error of the dist dialect.
// RUN: forge-opt %s -split-input-file -verify-diagnostics

func.func @no_mesh(%x: tensor<8xf32>) -> tensor<32xf32> {
  // expected-error @+1 {{'dist.all_gather' op needs the module attribute dist.mesh}}
  %y = dist.all_gather %x dim(0) over "dp_shard"(4) : tensor<8xf32> -> tensor<32xf32>
  return %y : tensor<32xf32>
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"]}} {
  func.func @bad_mesh(%x: tensor<8xf32>) -> tensor<32xf32> {
    // expected-error @+1 {{'dist.all_gather' op dist.mesh needs 'dims' (strings) and 'sizes' (integers) of the same length}}
    %y = dist.all_gather %x dim(0) over "dp_shard"(4) : tensor<8xf32> -> tensor<32xf32>
    return %y : tensor<32xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [0]}} {
  func.func @bad_size(%x: tensor<8xf32>) -> tensor<8xf32> {
    // expected-error @+1 {{'dist.all_reduce' op dist.mesh dims must be strings and sizes positive integers}}
    %y = dist.all_reduce %x over "dp_shard"(1) reduce("sum") : tensor<8xf32>
    return %y : tensor<8xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [4]}} {
  func.func @bad_fp8_format(%x: tensor<8xbf16>) -> tensor<32xbf16> {
    // expected-error @+1 {{'dist.all_gather' op fp8 must be "e4m3" or "e5m2", got "e3m4"}}
    %y = dist.all_gather %x dim(0) over "dp_shard"(4) {fp8 = "e3m4"} : tensor<8xbf16> -> tensor<32xbf16>
    return %y : tensor<32xbf16>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [4]}} {
  func.func @unknown_group(%x: tensor<8xf32>) -> tensor<32xf32> {
    // expected-error @+1 {{'dist.all_gather' op group 'tp' is not a dim of dist.mesh}}
    %y = dist.all_gather %x dim(0) over "tp"(4) : tensor<8xf32> -> tensor<32xf32>
    return %y : tensor<32xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [4]}} {
  func.func @wrong_size(%x: tensor<8xf32>) -> tensor<16xf32> {
    // expected-error @+1 {{'dist.all_gather' op group 'dp_shard' has 4 ranks in dist.mesh, not 2}}
    %y = dist.all_gather %x dim(0) over "dp_shard"(2) : tensor<8xf32> -> tensor<16xf32>
    return %y : tensor<16xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [4]}} {
  func.func @nonpositive(%x: tensor<8xf32>) -> tensor<8xf32> {
    // expected-error @+1 {{'dist.all_reduce' op group size must be positive, got 0}}
    %y = dist.all_reduce %x over "dp_shard"(0) reduce("sum") : tensor<8xf32>
    return %y : tensor<8xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [4]}} {
  func.func @gather_shape(%x: tensor<8x2xf32>) -> tensor<32x4xf32> {
    // expected-error @+1 {{'dist.all_gather' op the result dim 1 must be 2 (the input's), got 4}}
    %y = dist.all_gather %x dim(0) over "dp_shard"(4) : tensor<8x2xf32> -> tensor<32x4xf32>
    return %y : tensor<32x4xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [4]}} {
  func.func @gather_dim(%x: tensor<8xf32>) -> tensor<32xf32> {
    // expected-error @+1 {{'dist.all_gather' op dim 1 is out of range for rank 1}}
    %y = dist.all_gather %x dim(1) over "dp_shard"(4) : tensor<8xf32> -> tensor<32xf32>
    return %y : tensor<32xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [4]}} {
  func.func @gather_rank(%x: tensor<8xf32>) -> tensor<32x1xf32> {
    // expected-error @+1 {{'dist.all_gather' op input and result ranks differ}}
    %y = dist.all_gather %x dim(0) over "dp_shard"(4) : tensor<8xf32> -> tensor<32x1xf32>
    return %y : tensor<32x1xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [4]}} {
  func.func @gather_type(%x: tensor<8xf32>) -> tensor<32xbf16> {
    // expected-error @+1 {{'dist.all_gather' op input and result element types differ}}
    %y = dist.all_gather %x dim(0) over "dp_shard"(4) : tensor<8xf32> -> tensor<32xbf16>
    return %y : tensor<32xbf16>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [4]}} {
  func.func @scatter_shape(%x: tensor<32xf32>) -> tensor<4xf32> {
    // expected-error @+1 {{'dist.reduce_scatter' op the result dim 0 must be the input's (32) divided by 4, rounded up (the last blocks padded), got 4}}
    %y = dist.reduce_scatter %x dim(0) over "dp_shard"(4) reduce("sum") : tensor<32xf32> -> tensor<4xf32>
    return %y : tensor<4xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [4]}} {
  func.func @scatter_max(%x: tensor<32xf32>) -> tensor<8xf32> {
    // expected-error @+1 {{'dist.reduce_scatter' op reduce must be sum or avg, got 'max'}}
    %y = dist.reduce_scatter %x dim(0) over "dp_shard"(4) reduce("max") : tensor<32xf32> -> tensor<8xf32>
    return %y : tensor<8xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [4]}} {
  func.func @reduce_kind(%x: tensor<f32>) -> tensor<f32> {
    // expected-error @+1 {{'dist.all_reduce' op reduce must be sum, avg or max, got 'min'}}
    %y = dist.all_reduce %x over "dp_shard"(4) reduce("min") : tensor<f32>
    return %y : tensor<f32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard", "tp"], sizes = [2, 2]}} {
  func.func @copy_group(%x: tensor<8xf32>) -> tensor<8xf32> {
    // expected-error @+1 {{'dist.copy' op group 'tp' has 2 ranks in dist.mesh, not 4}}
    %y = dist.copy %x over "tp"(4) : tensor<8xf32>
    return %y : tensor<8xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["ep"], sizes = [2]}} {
  func.func @dispatch_rows(%rows: tensor<8x4xf32>, %sizes: tensor<4xi64>) {
    // expected-error @+1 {{'dist.expert_dispatch' op the received rows must be 2 x the sent rows (8), the most a rank can receive; got 8}}
    %x, %l, %c = dist.expert_dispatch %rows, %sizes over "ep"(2) : tensor<8x4xf32>, tensor<4xi64> -> tensor<8x4xf32>, tensor<2xi64>, tensor<2x2xi64>
    return
  }
}

// -----

module attributes {dist.mesh = {dims = ["ep"], sizes = [2]}} {
  func.func @dispatch_local(%rows: tensor<8x4xf32>, %sizes: tensor<4xi64>) {
    // expected-error @+1 {{'dist.expert_dispatch' op local sizes must be [experts / 2]}}
    %x, %l, %c = dist.expert_dispatch %rows, %sizes over "ep"(2) : tensor<8x4xf32>, tensor<4xi64> -> tensor<16x4xf32>, tensor<4xi64>, tensor<2x2xi64>
    return
  }
}

// -----

module attributes {dist.mesh = {dims = ["ep"], sizes = [2]}} {
  func.func @dispatch_counts(%rows: tensor<8x4xf32>, %sizes: tensor<4xi64>, %c: tensor<2x1xi64>) {
    // expected-error @+1 {{'dist.expert_dispatch' op the counts operand and result must have one type}}
    %x, %l, %c2 = dist.expert_dispatch %rows, %sizes counts %c over "ep"(2) : tensor<8x4xf32>, tensor<4xi64>, tensor<2x1xi64> -> tensor<16x4xf32>, tensor<2xi64>, tensor<2x2xi64>
    return
  }
}

// -----

module attributes {dist.mesh = {dims = ["ep"], sizes = [2]}} {
  func.func @combine_experts(%rows: tensor<16x4xf32>, %c: tensor<2x1xi64>, %sizes: tensor<3xi64>) {
    // expected-error @+1 {{'dist.expert_combine' op 3 experts do not divide over 2 ranks}}
    %y = dist.expert_combine %rows, %c, %sizes over "ep"(2) : tensor<16x4xf32>, tensor<2x1xi64>, tensor<3xi64> -> tensor<8x4xf32>
    return
  }
}

// -----

module attributes {dist.mesh = {dims = ["ep"], sizes = [2]}} {
  func.func @combine_counts(%rows: tensor<16x4xf32>, %c: tensor<2x1xi64>, %sizes: tensor<4xi64>) {
    // expected-error @+1 {{'dist.expert_combine' op counts must be [2, 2] (ranks x local experts), got 'tensor<2x1xi64>'}}
    %y = dist.expert_combine %rows, %c, %sizes over "ep"(2) : tensor<16x4xf32>, tensor<2x1xi64>, tensor<4xi64> -> tensor<8x4xf32>
    return
  }
}

// -----

module attributes {dist.mesh = {dims = ["ep"], sizes = [2]}} {
  func.func @combine_features(%rows: tensor<16x4xf32>, %c: tensor<2x2xi64>, %sizes: tensor<4xi64>) {
    // expected-error @+1 {{'dist.expert_combine' op sent and received rows must have the same features and element type}}
    %y = dist.expert_combine %rows, %c, %sizes over "ep"(2) : tensor<16x4xf32>, tensor<2x2xi64>, tensor<4xi64> -> tensor<8x3xf32>
    return
  }
}

// -----

module attributes {dist.mesh = {dims = ["pp"], sizes = [2]}} {
  func.func @send_peer(%h: tensor<2x8xf32>) -> tensor<f32> {
    // expected-error @+1 {{'dist.send' op peer 2 is not a rank of the 2 of 'pp'}}
    %z = dist.send %h to 2 over "pp"(2) tag(0) : tensor<2x8xf32> -> tensor<f32>
    return %z : tensor<f32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["pp"], sizes = [2]}} {
  func.func @send_result(%h: tensor<2x8xf32>) -> tensor<2xf32> {
    // expected-error @+1 {{'dist.send' op result must be a scalar}}
    %z = dist.send %h to 1 over "pp"(2) tag(0) : tensor<2x8xf32> -> tensor<2xf32>
    return %z : tensor<2xf32>
  }
}

// -----

module attributes {dist.mesh = {dims = ["pp"], sizes = [2]}} {
  func.func @recv_group() -> tensor<2x8xf32> {
    // expected-error @+1 {{'dist.recv' op group 'tp' is not a dim of dist.mesh}}
    %g = dist.recv from 0 over "tp"(2) tag(0) : tensor<2x8xf32>
    return %g : tensor<2x8xf32>
  }
}
