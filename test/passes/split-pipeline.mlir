// RUN: forge-opt %s -split-input-file -forge-split-pipeline -verify-diagnostics | FileCheck %s
// The ops' FQN locations place them on stages, so a diagnostic about an op
// is at its FQN, not at a line: that case is checked from the message.
// RUN: not forge-opt %S/Inputs/split-pipeline-skip.mlir -forge-split-pipeline 2>&1 | FileCheck %s --check-prefix=SKIP
// SKIP: error: loc("layers.2"): 'forge.add' op forge-split-pipeline: reads a value of pipeline stage 0 from stage 2 (only the hidden state passes, one stage at a time)

// Three layers over two stages: layers 0 and 1 (and the embedding) on the
// first, layer 2 and the head on the last; the hidden state crosses once,
// as a send whose zero is the first stage's loss and a receive.
// CHECK-LABEL: module attributes {dist.mesh
// CHECK: module @stage0 attributes {{{.*}}dist.stage = 0 : i64
// CHECK: forge.param @emb
// CHECK: forge.param @layers.0.w
// CHECK: forge.param @layers.1.w
// CHECK-NOT: forge.param
// CHECK: func.func @train_step(%[[T:.*]]: tensor<2x4xi64>, %{{.*}}: tensor<2x4xi64>) -> tensor<f32>
// CHECK: forge.embedding %{{.*}}[%[[T]]]
// CHECK: forge.linear
// CHECK: %[[H:.*]] = forge.linear
// CHECK: %[[Z:.*]] = dist.send %[[H]] to 1 over "pp"(2) tag(0) {dist.origin = {of = "stage 1", pass = "forge-split-pipeline", phase = "forward", what = "hidden state to the next stage"}} : tensor<2x4x8xf32> -> tensor<f32>
// CHECK: return %[[Z]] : tensor<f32>
// CHECK: module @stage1 attributes {{{.*}}dist.stage = 1 : i64
// CHECK: forge.param @layers.2.w
// CHECK: forge.param @head
// CHECK: func.func @train_step(%{{.*}}: tensor<2x4xi64>, %[[L:.*]]: tensor<2x4xi64>) -> tensor<f32>
// CHECK: %[[R:.*]] = dist.recv from 0 over "pp"(2) tag(0) {{.*}} : tensor<2x4x8xf32>
// CHECK: forge.linear %[[R]]
// CHECK: forge.cross_entropy {{.*}}, %[[L]]
module attributes {dist.mesh = {dims = ["pp"], sizes = [2]}} {
  forge.param @emb : tensor<16x8xf32> init(normal, std = 2.000000e-02)
  forge.param @layers.0.w : tensor<8x8xf32> init(normal, std = 2.000000e-02)
  forge.param @layers.1.w : tensor<8x8xf32> init(normal, std = 2.000000e-02)
  forge.param @layers.2.w : tensor<8x8xf32> init(normal, std = 2.000000e-02)
  forge.param @head : tensor<16x8xf32> init(normal, std = 2.000000e-02)
  func.func @train_step(%t: tensor<2x4xi64>, %l: tensor<2x4xi64>) -> tensor<f32> {
    %e = forge.get_param @emb : tensor<16x8xf32> loc("token_embedding")
    %x = forge.embedding %e[%t] : tensor<16x8xf32>, tensor<2x4xi64> -> tensor<2x4x8xf32> loc("token_embedding")
    %w0 = forge.get_param @layers.0.w : tensor<8x8xf32> loc("layers.0")
    %h0 = forge.linear %x, %w0 : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32> loc("layers.0")
    %w1 = forge.get_param @layers.1.w : tensor<8x8xf32> loc("layers.1")
    %h1 = forge.linear %h0, %w1 : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32> loc("layers.1")
    %w2 = forge.get_param @layers.2.w : tensor<8x8xf32> loc("layers.2")
    %h2 = forge.linear %h1, %w2 : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32> loc("layers.2")
    %hw = forge.get_param @head : tensor<16x8xf32> loc("output_head")
    %lg = forge.linear %h2, %hw : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32> loc("output_head")
    %loss = forge.cross_entropy %lg, %l : tensor<2x4x16xf32>, tensor<2x4xi64> -> tensor<f32> loc("loss")
    return %loss : tensor<f32>
  }
}

// -----

// A weight read on two stages (tied embeddings) cannot be split.
module attributes {dist.mesh = {dims = ["pp"], sizes = [2]}} {
  // expected-error @+1 {{forge-split-pipeline: parameter 'emb' is read by several pipeline stages (tied weights cannot be split)}}
  forge.param @emb : tensor<16x8xf32> init(normal, std = 2.000000e-02)
  forge.param @layers.0.w : tensor<8x8xf32> init(normal, std = 2.000000e-02)
  forge.param @layers.1.w : tensor<8x8xf32> init(normal, std = 2.000000e-02)
  func.func @train_step(%t: tensor<2x4xi64>, %l: tensor<2x4xi64>) -> tensor<f32> {
    %e = forge.get_param @emb : tensor<16x8xf32> loc("token_embedding")
    %x = forge.embedding %e[%t] : tensor<16x8xf32>, tensor<2x4xi64> -> tensor<2x4x8xf32> loc("token_embedding")
    %w0 = forge.get_param @layers.0.w : tensor<8x8xf32> loc("layers.0")
    %h0 = forge.linear %x, %w0 : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32> loc("layers.0")
    %w1 = forge.get_param @layers.1.w : tensor<8x8xf32> loc("layers.1")
    %h1 = forge.linear %h0, %w1 : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32> loc("layers.1")
    %hw = forge.get_param @emb : tensor<16x8xf32> loc("output_head")
    %lg = forge.linear %h1, %hw : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32> loc("output_head")
    %loss = forge.cross_entropy %lg, %l : tensor<2x4x16xf32>, tensor<2x4xi64> -> tensor<f32> loc("loss")
    return %loss : tensor<f32>
  }
}

// -----

// expected-error @+1 {{forge-split-pipeline: 1 layers cannot fill 2 pipeline stages}}
module attributes {dist.mesh = {dims = ["pp"], sizes = [2]}} {
  func.func @train_step(%t: tensor<2x4xf32>) -> tensor<f32> {
    %a = forge.scale %t by(2.0) : tensor<2x4xf32> loc("layers.0")
    %n = forge.global_norm %a : tensor<2x4xf32> -> tensor<f32> loc("loss")
    return %n : tensor<f32>
  }
}

// -----

// Without a pp dim of more than one rank the pass changes nothing.
// CHECK-LABEL: module attributes {dist.mesh = {dims = ["pp"], sizes = [1]}}
// CHECK-NOT: module @stage
module attributes {dist.mesh = {dims = ["pp"], sizes = [1]}} {
  func.func @train_step(%t: tensor<2x4xf32>) -> tensor<f32> {
    %n = forge.global_norm %t : tensor<2x4xf32> -> tensor<f32>
    return %n : tensor<f32>
  }
}
