// Every forge op parses, verifies and prints back to the same text.
// RUN: forge-opt %s | FileCheck %s
// RUN: forge-opt %s | forge-opt | FileCheck %s
// RUN: forge-opt %s -mlir-print-op-generic | forge-opt | FileCheck %s

// CHECK: forge.param @token_embedding.embedding.weight : tensor<64x16xbf16> init( normal, std = 2.000000e-02)
forge.param @token_embedding.embedding.weight : tensor<64x16xbf16> init(normal, std = 2.000000e-02)
// CHECK: forge.param @norm.weight : tensor<16xbf16> init( ones)
forge.param @norm.weight : tensor<16xbf16> init(ones)
// CHECK: forge.param @norm.bias : tensor<16xbf16> init( zeros)
forge.param @norm.bias : tensor<16xbf16> init(zeros)
// CHECK: forge.param @layers.1.mlp.router.expert_ema : tensor<4xf32> init( zeros) buffer
forge.param @"layers.1.mlp.router.expert_ema" : tensor<4xf32> init(zeros) buffer

// CHECK-LABEL: func.func @dense
func.func @dense(%tokens: tensor<2x8xi64>, %labels: tensor<2x8xi64>, %docs: tensor<2x8xi32>,
                 %w: tensor<32x16xbf16>, %wo: tensor<16x32xbf16>,
                 %mqa: tensor<2x8x1x8xbf16>) -> tensor<f32> {
  // CHECK: forge.get_param @token_embedding.embedding.weight : tensor<64x16xbf16>
  %table = forge.get_param @token_embedding.embedding.weight : tensor<64x16xbf16>
  // CHECK: forge.embedding %{{.*}}[%{{.*}}] : tensor<64x16xbf16>, tensor<2x8xi64> -> tensor<2x8x16xbf16>
  %h = forge.embedding %table[%tokens] : tensor<64x16xbf16>, tensor<2x8xi64> -> tensor<2x8x16xbf16>
  %nw = forge.get_param @norm.weight : tensor<16xbf16>
  %nb = forge.get_param @norm.bias : tensor<16xbf16>
  // CHECK: forge.rmsnorm %{{.*}}, %{{.*}} eps(1.000000e-05) : tensor<2x8x16xbf16>, tensor<16xbf16>
  %n = forge.rmsnorm %h, %nw eps(1.000000e-05) : tensor<2x8x16xbf16>, tensor<16xbf16>
  // CHECK: forge.layernorm %{{.*}}, %{{.*}}, %{{.*}} eps(1.000000e-05) : tensor<2x8x16xbf16>, tensor<16xbf16>, tensor<16xbf16>
  %ln = forge.layernorm %n, %nw, %nb eps(1.000000e-05) : tensor<2x8x16xbf16>, tensor<16xbf16>, tensor<16xbf16>
  // CHECK: forge.linear %{{.*}}, %{{.*}} : tensor<2x8x16xbf16>, tensor<32x16xbf16> -> tensor<2x8x32xbf16>
  %q = forge.linear %ln, %w : tensor<2x8x16xbf16>, tensor<32x16xbf16> -> tensor<2x8x32xbf16>
  // CHECK: forge.reshape %{{.*}} : tensor<2x8x32xbf16> -> tensor<2x8x4x8xbf16>
  %q4 = forge.reshape %q : tensor<2x8x32xbf16> -> tensor<2x8x4x8xbf16>
  %k4 = forge.reshape %q : tensor<2x8x32xbf16> -> tensor<2x8x4x8xbf16>
  // CHECK: forge.rope %{{.*}} theta(1.000000e+04) : tensor<2x8x4x8xbf16>
  %qr = forge.rope %q4 theta(1.000000e+04) : tensor<2x8x4x8xbf16>
  %kv = forge.reshape %q : tensor<2x8x32xbf16> -> tensor<2x8x2x16xbf16>
  %k2 = forge.reshape %kv : tensor<2x8x2x16xbf16> -> tensor<2x8x4x8xbf16>
  // CHECK: forge.attention %{{.*}}, %{{.*}}, %{{.*}} causal scale(1.250000e-01) : tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16> -> tensor<2x8x4x8xbf16>
  %o = forge.attention %qr, %k4, %k2 causal scale(1.250000e-01) : tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16> -> tensor<2x8x4x8xbf16>
  // CHECK: forge.attention %{{.*}}, %{{.*}}, %{{.*}} doc_ids(%{{.*}} : tensor<2x8xi32>) causal scale(1.250000e-01)
  %od = forge.attention %qr, %k4, %k2 doc_ids(%docs : tensor<2x8xi32>) causal scale(1.250000e-01) : tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16> -> tensor<2x8x4x8xbf16>
  // CHECK: forge.attention %{{.*}}, %{{.*}}, %{{.*}} scale(1.000000e+00) : tensor<2x8x4x8xbf16>, tensor<2x8x1x8xbf16>
  %o1 = forge.attention %qr, %mqa, %mqa scale(1.000000e+00) : tensor<2x8x4x8xbf16>, tensor<2x8x1x8xbf16>, tensor<2x8x1x8xbf16> -> tensor<2x8x4x8xbf16>
  %flat = forge.reshape %o : tensor<2x8x4x8xbf16> -> tensor<2x8x32xbf16>
  // CHECK: forge.silu %{{.*}} : tensor<2x8x32xbf16>
  %s = forge.silu %flat : tensor<2x8x32xbf16>
  // CHECK: forge.gelu
  %g = forge.gelu %s : tensor<2x8x32xbf16>
  // CHECK: forge.relu
  %r = forge.relu %g : tensor<2x8x32xbf16>
  // CHECK: forge.tanh
  %t = forge.tanh %r : tensor<2x8x32xbf16>
  // CHECK: forge.mul %{{.*}}, %{{.*}} : tensor<2x8x32xbf16>
  %m = forge.mul %t, %flat : tensor<2x8x32xbf16>
  // CHECK: forge.add %{{.*}}, %{{.*}} : tensor<2x8x32xbf16>
  %a = forge.add %m, %flat : tensor<2x8x32xbf16>
  %down = forge.linear %a, %wo : tensor<2x8x32xbf16>, tensor<16x32xbf16> -> tensor<2x8x16xbf16>
  %logits = forge.linear %down, %table : tensor<2x8x16xbf16>, tensor<64x16xbf16> -> tensor<2x8x64xbf16>
  // CHECK: forge.cross_entropy %{{.*}}, %{{.*}} : tensor<2x8x64xbf16>, tensor<2x8xi64> -> tensor<f32>
  %ce = forge.cross_entropy %logits, %labels : tensor<2x8x64xbf16>, tensor<2x8xi64> -> tensor<f32>
  // CHECK: forge.chunked_cross_entropy %{{.*}}, %{{.*}}, %{{.*}} chunk(4) {z_weight = 1.000000e-04 : f64} : tensor<2x8x16xbf16>, tensor<64x16xbf16>, tensor<2x8xi64> -> tensor<f32>
  %cce = forge.chunked_cross_entropy %down, %table, %labels chunk(4) {z_weight = 1.000000e-04 : f64} : tensor<2x8x16xbf16>, tensor<64x16xbf16>, tensor<2x8xi64> -> tensor<f32>
  %l2 = forge.reshape %logits : tensor<2x8x64xbf16> -> tensor<16x64xbf16>
  // CHECK: forge.z_loss %{{.*}} : tensor<16x64xbf16> -> tensor<f32>
  %z = forge.z_loss %l2 : tensor<16x64xbf16> -> tensor<f32>
  // CHECK: forge.scale %{{.*}} by(1.000000e-04) : tensor<f32>
  %zs = forge.scale %z by(1.000000e-04) : tensor<f32>
  %sum = forge.add %ce, %zs : tensor<f32>
  %sum2 = forge.add %sum, %cce : tensor<f32>
  return %sum2 : tensor<f32>
}

// CHECK-LABEL: func.func @moe
func.func @moe(%x: tensor<6x16xbf16>, %gate: tensor<4x16xbf16>, %bias: tensor<4xbf16>,
               %w0: tensor<8x16xbf16>, %w1: tensor<8x16xbf16>, %w2: tensor<8x16xbf16>,
               %w3: tensor<8x16xbf16>, %packed: tensor<4x8x16xbf16>) -> (tensor<6x16xbf16>, tensor<f32>) {
  %logits = forge.linear %x, %gate : tensor<6x16xbf16>, tensor<4x16xbf16> -> tensor<6x4xbf16>
  // CHECK: forge.softmax_topk %{{.*}} k(2) : tensor<6x4xbf16> -> tensor<6x2xf32>, tensor<6x2xi64>, tensor<6x4xf32>
  %w, %i, %p = forge.softmax_topk %logits k(2) : tensor<6x4xbf16> -> tensor<6x2xf32>, tensor<6x2xi64>, tensor<6x4xf32>
  // CHECK: forge.sigmoid_topk %{{.*}}, %{{.*}} k(2) bias_schedule("cosine_decay") : tensor<6x4xbf16>, tensor<4xbf16> -> tensor<6x2xf32>, tensor<6x2xi64>, tensor<6x4xf32>
  %sw, %si, %ss = forge.sigmoid_topk %logits, %bias k(2) bias_schedule("cosine_decay") : tensor<6x4xbf16>, tensor<4xbf16> -> tensor<6x2xf32>, tensor<6x2xi64>, tensor<6x4xf32>
  // CHECK: forge.moe_capacity %{{.*}}, %{{.*}} experts(4) factor(1.250000e+00) : tensor<6x2xi64>, tensor<6x2xf32>
  %kept = forge.moe_capacity %i, %w experts(4) factor(1.250000e+00) : tensor<6x2xi64>, tensor<6x2xf32>
  // CHECK: forge.moe_dispatch %{{.*}}, %{{.*}} experts(4) : tensor<6x16xbf16>, tensor<6x2xi64> -> tensor<12x16xbf16>, tensor<4xi64>, tensor<12xi64>
  %rows, %sizes, %order = forge.moe_dispatch %x, %i experts(4) : tensor<6x16xbf16>, tensor<6x2xi64> -> tensor<12x16xbf16>, tensor<4xi64>, tensor<12xi64>
  // CHECK: forge.stack %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<8x16xbf16>, tensor<8x16xbf16>, tensor<8x16xbf16>, tensor<8x16xbf16> -> tensor<4x8x16xbf16>
  %stacked = forge.stack %w0, %w1, %w2, %w3 : tensor<8x16xbf16>, tensor<8x16xbf16>, tensor<8x16xbf16>, tensor<8x16xbf16> -> tensor<4x8x16xbf16>
  // CHECK: forge.grouped_linear %{{.*}}, %{{.*}}, %{{.*}} layout( out_in) : tensor<12x16xbf16>, tensor<4x8x16xbf16>, tensor<4xi64> -> tensor<12x8xbf16>
  %h = forge.grouped_linear %rows, %stacked, %sizes layout(out_in) : tensor<12x16xbf16>, tensor<4x8x16xbf16>, tensor<4xi64> -> tensor<12x8xbf16>
  // CHECK: forge.grouped_linear %{{.*}}, %{{.*}}, %{{.*}} layout( in_out) : tensor<12x8xbf16>, tensor<4x8x16xbf16>, tensor<4xi64> -> tensor<12x16xbf16>
  %y = forge.grouped_linear %h, %packed, %sizes layout(in_out) : tensor<12x8xbf16>, tensor<4x8x16xbf16>, tensor<4xi64> -> tensor<12x16xbf16>
  // CHECK: forge.moe_combine %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} gradient_scale : tensor<12x16xbf16>, tensor<12xi64>, tensor<6x2xf32>, tensor<4xi64> -> tensor<6x16xbf16>
  %out = forge.moe_combine %y, %order, %kept, %sizes gradient_scale : tensor<12x16xbf16>, tensor<12xi64>, tensor<6x2xf32>, tensor<4xi64> -> tensor<6x16xbf16>
  // CHECK: forge.moe_aux_loss %{{.*}}, %{{.*}} : tensor<6x4xf32>, tensor<6x2xi64> -> tensor<f32>
  %aux = forge.moe_aux_loss %p, %i : tensor<6x4xf32>, tensor<6x2xi64> -> tensor<f32>
  return %out, %aux : tensor<6x16xbf16>, tensor<f32>
}

// CHECK-LABEL: func.func @optimizer
func.func @optimizer(%p: tensor<8x4xbf16>, %g: tensor<8x4xbf16>, %m: tensor<8x4xbf16>,
                     %v: tensor<8x4xbf16>, %x: tensor<8x4xbf16>, %step: tensor<i64>,
                     %state: tensor<4xf32>) -> (tensor<8x4xbf16>, tensor<4xf32>) {
  // CHECK: forge.global_norm %{{.*}}, %{{.*}} : tensor<8x4xbf16>, tensor<8x4xbf16> -> tensor<f32>
  %n = forge.global_norm %g, %m : tensor<8x4xbf16>, tensor<8x4xbf16> -> tensor<f32>
  // CHECK: forge.clip_coefficient %{{.*}} max_norm(1.000000e+00) : tensor<f32>
  %c = forge.clip_coefficient %n max_norm(1.0) : tensor<f32>
  // CHECK: forge.lr_factor %{{.*}} {decay = 0 : i64, max_steps = 100 : i64, min_lr_ratio = 1.000000e-01 : f64, rex_alpha = 1.000000e+00 : f64, schedule = "wsd", stable = 20 : i64, warmup = 10 : i64, wsd_decay = "sqrt"} : tensor<i64> -> tensor<f32>
  %f = forge.lr_factor %step {schedule = "wsd", warmup = 10 : i64, decay = 0 : i64, stable = 20 : i64, min_lr_ratio = 0.1 : f64, max_steps = 100 : i64, wsd_decay = "sqrt", rex_alpha = 1.0 : f64} : tensor<i64> -> tensor<f32>
  // CHECK: forge.adamw_update %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} betas(9.000000e-01, 0.94999999999999996) eps(1.000000e-08) weight_decay(1.000000e-01) : tensor<8x4xbf16>, tensor<f32>, tensor<f32>, tensor<i64>
  %a0, %a1, %a2 = forge.adamw_update %p, %g, %m, %v, %f, %c, %step betas(0.9, 0.95) eps(1.0e-8) weight_decay(0.1) : tensor<8x4xbf16>, tensor<f32>, tensor<f32>, tensor<i64>
  // CHECK: forge.lion_update %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} betas(9.000000e-01, 0.98999999999999999) weight_decay(1.000000e-01) : tensor<8x4xbf16>, tensor<f32>, tensor<f32>
  %l0, %l1 = forge.lion_update %a0, %g, %m, %f, %c betas(0.9, 0.99) weight_decay(0.1) : tensor<8x4xbf16>, tensor<f32>, tensor<f32>
  // CHECK: forge.muon_update %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} momentum(0.94999999999999996) ns_steps(5) weight_decay(1.000000e-01) : tensor<8x4xbf16>, tensor<f32>, tensor<f32>
  %u0, %u1 = forge.muon_update %l0, %g, %m, %f, %c momentum(0.95) ns_steps(5) weight_decay(0.1) : tensor<8x4xbf16>, tensor<f32>, tensor<f32>
  // CHECK: forge.schedule_free_count %{{.*}}, %{{.*}} beta1(9.000000e-01) warmup(10) : tensor<4xf32>, tensor<f32>
  %s1 = forge.schedule_free_count %state, %f beta1(0.9) warmup(10) : tensor<4xf32>, tensor<f32>
  // CHECK: forge.schedule_free_adamw_update %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} betas(9.000000e-01, 0.99899999999999999) eps(1.000000e-08) weight_decay(0.000000e+00) warmup(10) : tensor<8x4xbf16>, tensor<f32>, tensor<f32>, tensor<4xf32>
  %y, %z1, %v1, %x1 = forge.schedule_free_adamw_update %u0, %g, %m, %v, %x, %f, %c, %s1 betas(0.9, 0.999) eps(1.0e-8) weight_decay(0.0) warmup(10) : tensor<8x4xbf16>, tensor<f32>, tensor<f32>, tensor<4xf32>
  // CHECK: forge.schedule_free_interpolate %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} weight(1.000000e+00) : tensor<8x4xbf16>, tensor<4xf32>
  %e = forge.schedule_free_interpolate %y, %z1, %x1, %s1 weight(1.0) : tensor<8x4xbf16>, tensor<4xf32>
  return %e, %s1 : tensor<8x4xbf16>, tensor<4xf32>
}
