// One case per verifier error of the forge dialect.
// RUN: forge-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{'forge.param' op requires a statically shaped tensor type, got 'tensor<?x16xbf16>'}}
forge.param @p : tensor<?x16xbf16> init(ones)

// -----

// expected-error @+1 {{'forge.param' op requires a floating-point element type, got 'i32'}}
forge.param @p : tensor<16xi32> init(zeros)

// -----

// expected-error @+1 {{'forge.param' op with init 'normal' requires a std}}
forge.param @p : tensor<16x16xbf16> init(normal)

// -----

// expected-error @+1 {{'forge.param' op with init 'ones' takes no std}}
forge.param @p : tensor<16xbf16> init(ones, std = 2.000000e-02)

// -----

// expected-error @+1 {{'forge.param' op requires std > 0, got -1}}
forge.param @p : tensor<16x16xbf16> init(normal, std = -1.000000e+00)

// -----

func.func @f() {
  // expected-error @+1 {{'forge.param' op expects parent op 'builtin.module'}}
  forge.param @p : tensor<16xbf16> init(ones)
  return
}

// -----

func.func @f() -> tensor<16xbf16> {
  // expected-error @+1 {{'forge.get_param' op 'missing' does not name a forge.param}}
  %0 = forge.get_param @missing : tensor<16xbf16>
  return %0 : tensor<16xbf16>
}

// -----

forge.param @p : tensor<16xbf16> init(ones)
func.func @f() -> tensor<16xf32> {
  // expected-error @+1 {{'forge.get_param' op result type 'tensor<16xf32>' does not match the type 'tensor<16xbf16>' of parameter 'p'}}
  %0 = forge.get_param @p : tensor<16xf32>
  return %0 : tensor<16xf32>
}

// -----

func.func @f(%t: tensor<64xbf16>, %i: tensor<2x8xi64>) {
  // expected-error @+1 {{'forge.embedding' op expects a table of rank 2, got 'tensor<64xbf16>'}}
  %0 = forge.embedding %t[%i] : tensor<64xbf16>, tensor<2x8xi64> -> tensor<2x8x16xbf16>
  return
}

// -----

func.func @f(%t: tensor<64x16xbf16>, %i: tensor<2x8xi64>) {
  // expected-error @+1 {{'forge.embedding' op result must be 'tensor<2x8x16xbf16>' (ids shape + [dim]), got 'tensor<2x8x32xbf16>'}}
  %0 = forge.embedding %t[%i] : tensor<64x16xbf16>, tensor<2x8xi64> -> tensor<2x8x32xbf16>
  return
}

// -----

func.func @f(%x: tensor<?x16xbf16>, %w: tensor<32x16xbf16>) {
  // expected-error @+1 {{'forge.linear' op requires static shapes, got 'tensor<?x16xbf16>'}}
  %0 = forge.linear %x, %w : tensor<?x16xbf16>, tensor<32x16xbf16> -> tensor<?x32xbf16>
  return
}

// -----

func.func @f(%x: tensor<4x16xbf16>, %w: tensor<2x32x16xbf16>) {
  // expected-error @+1 {{'forge.linear' op expects a [out, in] weight of rank 2, got 'tensor<2x32x16xbf16>'}}
  %0 = forge.linear %x, %w : tensor<4x16xbf16>, tensor<2x32x16xbf16> -> tensor<4x32xbf16>
  return
}

// -----

func.func @f(%x: tensor<bf16>, %w: tensor<32x16xbf16>) {
  // expected-error @+1 {{'forge.linear' op expects an input of rank >= 1}}
  %0 = forge.linear %x, %w : tensor<bf16>, tensor<32x16xbf16> -> tensor<32xbf16>
  return
}

// -----

func.func @f(%x: tensor<4x16xbf16>, %w: tensor<16x32xbf16>) {
  // expected-error @+1 {{'forge.linear' op input features (16) do not match the weight's in (32); the weight is [out, in]}}
  %0 = forge.linear %x, %w : tensor<4x16xbf16>, tensor<16x32xbf16> -> tensor<4x16xbf16>
  return
}

// -----

func.func @f(%x: tensor<4x16xbf16>, %w: tensor<32x16xf32>) {
  // expected-error @+1 {{'forge.linear' op input and weight element types differ: 'bf16' vs 'f32'}}
  %0 = forge.linear %x, %w : tensor<4x16xbf16>, tensor<32x16xf32> -> tensor<4x32xbf16>
  return
}

// -----

func.func @f(%x: tensor<4x16xbf16>, %w: tensor<32x16xbf16>) {
  // expected-error @+1 {{'forge.linear' op result must be 'tensor<4x32xbf16>', got 'tensor<4x16xbf16>'}}
  %0 = forge.linear %x, %w : tensor<4x16xbf16>, tensor<32x16xbf16> -> tensor<4x16xbf16>
  return
}

// -----

func.func @f(%x: tensor<12x16xbf16>, %w: tensor<8x16xbf16>, %s: tensor<4xi64>) {
  // expected-error @+1 {{'forge.grouped_linear' op expects a [experts, ., .] weight of rank 3, got 'tensor<8x16xbf16>'}}
  %0 = forge.grouped_linear %x, %w, %s layout(out_in) : tensor<12x16xbf16>, tensor<8x16xbf16>, tensor<4xi64> -> tensor<12x8xbf16>
  return
}

// -----

func.func @f(%x: tensor<12x16xbf16>, %w: tensor<4x8x16xbf16>, %s: tensor<3xi64>) {
  // expected-error @+1 {{'forge.grouped_linear' op has 3 group sizes for 4 experts}}
  %0 = forge.grouped_linear %x, %w, %s layout(out_in) : tensor<12x16xbf16>, tensor<4x8x16xbf16>, tensor<3xi64> -> tensor<12x8xbf16>
  return
}

// -----

func.func @f(%x: tensor<12x16xbf16>, %w: tensor<4x8x16xbf16>, %s: tensor<4xi64>) {
  // expected-error @+1 {{'forge.grouped_linear' op input features (16) do not match the weight's in (8) for layout in_out}}
  %0 = forge.grouped_linear %x, %w, %s layout(in_out) : tensor<12x16xbf16>, tensor<4x8x16xbf16>, tensor<4xi64> -> tensor<12x16xbf16>
  return
}

// -----

func.func @f(%x: tensor<12x16xbf16>, %w: tensor<4x8x16xf32>, %s: tensor<4xi64>) {
  // expected-error @+1 {{'forge.grouped_linear' op input and weight element types differ: 'bf16' vs 'f32'}}
  %0 = forge.grouped_linear %x, %w, %s layout(out_in) : tensor<12x16xbf16>, tensor<4x8x16xf32>, tensor<4xi64> -> tensor<12x8xbf16>
  return
}

// -----

func.func @f(%x: tensor<12x16xbf16>, %w: tensor<4x8x16xbf16>, %s: tensor<4xi64>) {
  // expected-error @+1 {{'forge.grouped_linear' op result must be 'tensor<12x8xbf16>', got 'tensor<12x16xbf16>'}}
  %0 = forge.grouped_linear %x, %w, %s layout(out_in) : tensor<12x16xbf16>, tensor<4x8x16xbf16>, tensor<4xi64> -> tensor<12x16xbf16>
  return
}

// -----

func.func @f() {
  // expected-error @+1 {{'forge.stack' op requires at least one input}}
  %0 = "forge.stack"() : () -> tensor<0x4xbf16>
  return
}

// -----

func.func @f(%a: tensor<8x16xbf16>, %b: tensor<8x16xbf16>) {
  // expected-error @+1 {{'forge.stack' op result must be 'tensor<2x8x16xbf16>' (2 x input), got 'tensor<2x16x8xbf16>'}}
  %0 = forge.stack %a, %b : tensor<8x16xbf16>, tensor<8x16xbf16> -> tensor<2x16x8xbf16>
  return
}

// -----

func.func @f(%x: tensor<4x16xbf16>, %w: tensor<8xbf16>) {
  // expected-error @+1 {{'forge.rmsnorm' op expects weight of shape [16] (the input's last dimension), got 'tensor<8xbf16>'}}
  %0 = forge.rmsnorm %x, %w eps(1.000000e-05) : tensor<4x16xbf16>, tensor<8xbf16>
  return
}

// -----

func.func @f(%x: tensor<4x16xbf16>, %w: tensor<16xf32>) {
  // expected-error @+1 {{'forge.rmsnorm' op weight element type 'f32' differs from the input's 'bf16'}}
  %0 = forge.rmsnorm %x, %w eps(1.000000e-05) : tensor<4x16xbf16>, tensor<16xf32>
  return
}

// -----

func.func @f(%x: tensor<4x16xbf16>, %w: tensor<16xbf16>) {
  // expected-error @+1 {{'forge.rmsnorm' op requires eps > 0, got 0}}
  %0 = forge.rmsnorm %x, %w eps(0.000000e+00) : tensor<4x16xbf16>, tensor<16xbf16>
  return
}

// -----

func.func @f(%x: tensor<bf16>, %w: tensor<16xbf16>) {
  // expected-error @+1 {{'forge.rmsnorm' op expects an input of rank >= 1}}
  %0 = forge.rmsnorm %x, %w eps(1.000000e-05) : tensor<bf16>, tensor<16xbf16>
  return
}

// -----

func.func @f(%x: tensor<4x16xbf16>, %w: tensor<16xbf16>, %b: tensor<4xbf16>) {
  // expected-error @+1 {{'forge.layernorm' op expects bias of shape [16] (the input's last dimension), got 'tensor<4xbf16>'}}
  %0 = forge.layernorm %x, %w, %b eps(1.000000e-05) : tensor<4x16xbf16>, tensor<16xbf16>, tensor<4xbf16>
  return
}

// -----

func.func @f(%x: tensor<4x16xbf16>) {
  // expected-error @+1 {{'forge.reshape' op cannot change the element type ('bf16' -> 'f32')}}
  %0 = forge.reshape %x : tensor<4x16xbf16> -> tensor<64xf32>
  return
}

// -----

func.func @f(%x: tensor<4x16xbf16>) {
  // expected-error @+1 {{'forge.reshape' op cannot reshape [4, 16] (64 elements) to [4, 8] (32 elements)}}
  %0 = forge.reshape %x : tensor<4x16xbf16> -> tensor<4x8xbf16>
  return
}

// -----

func.func @f(%x: tensor<4x16xbf16>) {
  // expected-error @+1 {{'forge.rope' op expects [batch, seq, heads, head_dim] of rank 4, got 'tensor<4x16xbf16>'}}
  %0 = forge.rope %x theta(1.000000e+04) : tensor<4x16xbf16>
  return
}

// -----

func.func @f(%x: tensor<2x8x4x7xbf16>) {
  // expected-error @+1 {{'forge.rope' op requires an even head_dim for rotate-half, got 7}}
  %0 = forge.rope %x theta(1.000000e+04) : tensor<2x8x4x7xbf16>
  return
}

// -----

func.func @f(%x: tensor<2x8x4x8xbf16>) {
  // expected-error @+1 {{'forge.rope' op requires theta > 0, got 0}}
  %0 = forge.rope %x theta(0.000000e+00) : tensor<2x8x4x8xbf16>
  return
}

// -----

func.func @f(%q: tensor<2x8x32xbf16>, %k: tensor<2x8x4x8xbf16>) {
  // expected-error @+1 {{'forge.attention' op expects q [batch, seq, heads, head_dim] of rank 4, got 'tensor<2x8x32xbf16>'}}
  %0 = forge.attention %q, %k, %k scale(1.0) : tensor<2x8x32xbf16>, tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16> -> tensor<2x8x32xbf16>
  return
}

// -----

func.func @f(%q: tensor<2x8x4x8xbf16>, %k: tensor<2x8x32xbf16>) {
  // expected-error @+1 {{'forge.attention' op expects k [batch, seq, kv_heads, head_dim] of rank 4, got 'tensor<2x8x32xbf16>'}}
  %0 = forge.attention %q, %k, %q scale(1.0) : tensor<2x8x4x8xbf16>, tensor<2x8x32xbf16>, tensor<2x8x4x8xbf16> -> tensor<2x8x4x8xbf16>
  return
}

// -----

func.func @f(%q: tensor<2x8x4x8xbf16>, %v: tensor<2x8x32xbf16>) {
  // expected-error @+1 {{'forge.attention' op expects v [batch, seq, kv_heads, head_dim] of rank 4, got 'tensor<2x8x32xbf16>'}}
  %0 = forge.attention %q, %q, %v scale(1.0) : tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16>, tensor<2x8x32xbf16> -> tensor<2x8x4x8xbf16>
  return
}

// -----

func.func @f(%q: tensor<2x8x4x8xbf16>, %k: tensor<2x8x2x8xbf16>, %v: tensor<2x8x4x8xbf16>) {
  // expected-error @+1 {{'forge.attention' op k and v must have the same type, got 'tensor<2x8x2x8xbf16>' and 'tensor<2x8x4x8xbf16>'}}
  %0 = forge.attention %q, %k, %v scale(1.0) : tensor<2x8x4x8xbf16>, tensor<2x8x2x8xbf16>, tensor<2x8x4x8xbf16> -> tensor<2x8x4x8xbf16>
  return
}

// -----

func.func @f(%q: tensor<2x8x4x8xbf16>, %k: tensor<2x4x4x8xbf16>) {
  // expected-error @+1 {{'forge.attention' op q 'tensor<2x8x4x8xbf16>' and k 'tensor<2x4x4x8xbf16>' disagree on batch, seq, head_dim or element type}}
  %0 = forge.attention %q, %k, %k scale(1.0) : tensor<2x8x4x8xbf16>, tensor<2x4x4x8xbf16>, tensor<2x4x4x8xbf16> -> tensor<2x8x4x8xbf16>
  return
}

// -----

func.func @f(%q: tensor<2x8x4x8xbf16>, %k: tensor<2x8x3x8xbf16>) {
  // expected-error @+1 {{'forge.attention' op kv heads (3) must divide query heads (4)}}
  %0 = forge.attention %q, %k, %k scale(1.0) : tensor<2x8x4x8xbf16>, tensor<2x8x3x8xbf16>, tensor<2x8x3x8xbf16> -> tensor<2x8x4x8xbf16>
  return
}

// -----

func.func @f(%q: tensor<2x8x4x8xbf16>, %d: tensor<2x4xi32>) {
  // expected-error @+1 {{'forge.attention' op doc_ids must be [batch, seq] = [2, 8], got 'tensor<2x4xi32>'}}
  %0 = forge.attention %q, %q, %q doc_ids(%d : tensor<2x4xi32>) causal scale(1.0) : tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16> -> tensor<2x8x4x8xbf16>
  return
}

// -----

func.func @f(%q: tensor<2x8x4x8xbf16>) {
  // expected-error @+1 {{'forge.attention' op result must have the type of q ('tensor<2x8x4x8xbf16>'), got 'tensor<2x8x4x8xf32>'}}
  %0 = forge.attention %q, %q, %q scale(1.0) : tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16> -> tensor<2x8x4x8xf32>
  return
}

// -----

func.func @f(%q: tensor<2x8x4x8xbf16>) {
  // expected-error @+1 {{'forge.attention' op requires scale > 0, got 0}}
  %0 = forge.attention %q, %q, %q scale(0.0) : tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16>, tensor<2x8x4x8xbf16> -> tensor<2x8x4x8xbf16>
  return
}

// -----

func.func @f(%l: tensor<6x4x1xbf16>) {
  // expected-error @+1 {{'forge.softmax_topk' op expects logits [tokens, experts] of rank 2, got 'tensor<6x4x1xbf16>'}}
  %w, %i, %p = forge.softmax_topk %l k(2) : tensor<6x4x1xbf16> -> tensor<6x2xf32>, tensor<6x2xi64>, tensor<6x4xf32>
  return
}

// -----

func.func @f(%l: tensor<6x4xbf16>) {
  // expected-error @+1 {{'forge.softmax_topk' op k must be in [1, 4] (the number of experts), got 5}}
  %w, %i, %p = forge.softmax_topk %l k(5) : tensor<6x4xbf16> -> tensor<6x5xf32>, tensor<6x5xi64>, tensor<6x4xf32>
  return
}

// -----

func.func @f(%l: tensor<6x4xbf16>) {
  // expected-error @+1 {{'forge.softmax_topk' op weights must be 'tensor<6x2xf32>', got 'tensor<6x2xbf16>'}}
  %w, %i, %p = forge.softmax_topk %l k(2) : tensor<6x4xbf16> -> tensor<6x2xbf16>, tensor<6x2xi64>, tensor<6x4xf32>
  return
}

// -----

func.func @f(%l: tensor<6x4xbf16>) {
  // expected-error @+1 {{'forge.softmax_topk' op indices must be 'tensor<6x2xi64>', got 'tensor<6x2xi32>'}}
  %w, %i, %p = forge.softmax_topk %l k(2) : tensor<6x4xbf16> -> tensor<6x2xf32>, tensor<6x2xi32>, tensor<6x4xf32>
  return
}

// -----

func.func @f(%l: tensor<6x4xbf16>) {
  // expected-error @+1 {{'forge.softmax_topk' op per-expert output must be 'tensor<6x4xf32>', got 'tensor<6x2xf32>'}}
  %w, %i, %p = forge.softmax_topk %l k(2) : tensor<6x4xbf16> -> tensor<6x2xf32>, tensor<6x2xi64>, tensor<6x2xf32>
  return
}

// -----

func.func @f(%l: tensor<6x4xbf16>, %b: tensor<3xbf16>) {
  // expected-error @+1 {{'forge.sigmoid_topk' op bias must be [4], got 'tensor<3xbf16>'}}
  %w, %i, %s = forge.sigmoid_topk %l, %b k(2) bias_schedule("constant") : tensor<6x4xbf16>, tensor<3xbf16> -> tensor<6x2xf32>, tensor<6x2xi64>, tensor<6x4xf32>
  return
}

// -----

func.func @f(%l: tensor<6x4xbf16>, %b: tensor<4xbf16>) {
  // expected-error @+1 {{'forge.sigmoid_topk' op bias_schedule must be constant, cosine_decay or linear_warmup, got 'exp'}}
  %w, %i, %s = forge.sigmoid_topk %l, %b k(2) bias_schedule("exp") : tensor<6x4xbf16>, tensor<4xbf16> -> tensor<6x2xf32>, tensor<6x2xi64>, tensor<6x4xf32>
  return
}

// -----

func.func @f(%i: tensor<6x2xi64>, %w: tensor<6x1xf32>) {
  // expected-error @+1 {{'forge.moe_capacity' op indices and weights must both be [tokens, k], got 'tensor<6x2xi64>' and 'tensor<6x1xf32>'}}
  %0 = forge.moe_capacity %i, %w experts(4) factor(1.0) : tensor<6x2xi64>, tensor<6x1xf32>
  return
}

// -----

func.func @f(%i: tensor<6x2xi64>, %w: tensor<6x2xf32>) {
  // expected-error @+1 {{'forge.moe_capacity' op requires experts >= 1, got 0}}
  %0 = forge.moe_capacity %i, %w experts(0) factor(1.0) : tensor<6x2xi64>, tensor<6x2xf32>
  return
}

// -----

func.func @f(%i: tensor<6x2xi64>, %w: tensor<6x2xf32>) {
  // expected-error @+1 {{'forge.moe_capacity' op requires a capacity factor > 0, got 0}}
  %0 = forge.moe_capacity %i, %w experts(4) factor(0.0) : tensor<6x2xi64>, tensor<6x2xf32>
  return
}

// -----

func.func @f(%x: tensor<6x16xbf16>, %i: tensor<12xi64>) {
  // expected-error @+1 {{'forge.moe_dispatch' op expects indices [tokens, k] of rank 2, got 'tensor<12xi64>'}}
  %r, %s, %o = forge.moe_dispatch %x, %i experts(4) : tensor<6x16xbf16>, tensor<12xi64> -> tensor<12x16xbf16>, tensor<4xi64>, tensor<12xi64>
  return
}

// -----

func.func @f(%x: tensor<5x16xbf16>, %i: tensor<6x2xi64>) {
  // expected-error @+1 {{'forge.moe_dispatch' op input has 5 tokens but indices have 6}}
  %r, %s, %o = forge.moe_dispatch %x, %i experts(4) : tensor<5x16xbf16>, tensor<6x2xi64> -> tensor<12x16xbf16>, tensor<4xi64>, tensor<12xi64>
  return
}

// -----

func.func @f(%x: tensor<6x16xbf16>, %i: tensor<6x2xi64>) {
  // expected-error @+1 {{'forge.moe_dispatch' op rows must be 'tensor<12x16xbf16>' (tokens * k copies), got 'tensor<6x16xbf16>'}}
  %r, %s, %o = forge.moe_dispatch %x, %i experts(4) : tensor<6x16xbf16>, tensor<6x2xi64> -> tensor<6x16xbf16>, tensor<4xi64>, tensor<12xi64>
  return
}

// -----

func.func @f(%x: tensor<6x16xbf16>, %i: tensor<6x2xi64>) {
  // expected-error @+1 {{'forge.moe_dispatch' op group_sizes must be 'tensor<4xi64>', got 'tensor<3xi64>'}}
  %r, %s, %o = forge.moe_dispatch %x, %i experts(4) : tensor<6x16xbf16>, tensor<6x2xi64> -> tensor<12x16xbf16>, tensor<3xi64>, tensor<12xi64>
  return
}

// -----

func.func @f(%x: tensor<6x16xbf16>, %i: tensor<6x2xi64>) {
  // expected-error @+1 {{'forge.moe_dispatch' op order must be 'tensor<12xi64>', got 'tensor<6xi64>'}}
  %r, %s, %o = forge.moe_dispatch %x, %i experts(4) : tensor<6x16xbf16>, tensor<6x2xi64> -> tensor<12x16xbf16>, tensor<4xi64>, tensor<6xi64>
  return
}

// -----

func.func @f(%y: tensor<10x16xbf16>, %o: tensor<12xi64>, %w: tensor<6x2xf32>, %s: tensor<4xi64>) {
  // expected-error @+1 {{'forge.moe_combine' op has 10 rows for 12 (tokens * k) routed copies}}
  %0 = forge.moe_combine %y, %o, %w, %s : tensor<10x16xbf16>, tensor<12xi64>, tensor<6x2xf32>, tensor<4xi64> -> tensor<6x16xbf16>
  return
}

// -----

func.func @f(%y: tensor<12x16xbf16>, %o: tensor<10xi64>, %w: tensor<6x2xf32>, %s: tensor<4xi64>) {
  // expected-error @+1 {{'forge.moe_combine' op order must be [12], got 'tensor<10xi64>'}}
  %0 = forge.moe_combine %y, %o, %w, %s : tensor<12x16xbf16>, tensor<10xi64>, tensor<6x2xf32>, tensor<4xi64> -> tensor<6x16xbf16>
  return
}

// -----

func.func @f(%y: tensor<12x16xbf16>, %o: tensor<12xi64>, %w: tensor<6x2xf32>, %s: tensor<2x2xi64>) {
  // expected-error @+1 {{'forge.moe_combine' op group_sizes must be [experts], got 'tensor<2x2xi64>'}}
  %0 = forge.moe_combine %y, %o, %w, %s : tensor<12x16xbf16>, tensor<12xi64>, tensor<6x2xf32>, tensor<2x2xi64> -> tensor<6x16xbf16>
  return
}

// -----

func.func @f(%y: tensor<12x16xbf16>, %o: tensor<12xi64>, %w: tensor<6x2xf32>, %s: tensor<4xi64>) {
  // expected-error @+1 {{'forge.moe_combine' op result must be 'tensor<6x16xbf16>', got 'tensor<12x16xbf16>'}}
  %0 = forge.moe_combine %y, %o, %w, %s : tensor<12x16xbf16>, tensor<12xi64>, tensor<6x2xf32>, tensor<4xi64> -> tensor<12x16xbf16>
  return
}

// -----

func.func @f(%p: tensor<6x4xf32>, %i: tensor<5x2xi64>) {
  // expected-error @+1 {{'forge.moe_aux_loss' op expects probs [tokens, experts] and indices [tokens, k] over the same tokens, got 'tensor<6x4xf32>' and 'tensor<5x2xi64>'}}
  %0 = forge.moe_aux_loss %p, %i : tensor<6x4xf32>, tensor<5x2xi64> -> tensor<f32>
  return
}

// -----

func.func @f(%l: tensor<16xbf16>, %t: tensor<i64>) {
  // expected-error @+1 {{'forge.cross_entropy' op expects logits of rank >= 2, got 'tensor<16xbf16>'}}
  %0 = forge.cross_entropy %l, %t : tensor<16xbf16>, tensor<i64> -> tensor<f32>
  return
}

// -----

func.func @f(%l: tensor<2x8x64xbf16>, %t: tensor<2x4xi64>) {
  // expected-error @+1 {{'forge.cross_entropy' op labels must have shape [2, 8] (the logits without the vocab dimension), got [2, 4]}}
  %0 = forge.cross_entropy %l, %t : tensor<2x8x64xbf16>, tensor<2x4xi64> -> tensor<f32>
  return
}

// -----

func.func @f(%h: tensor<2x8x16xbf16>, %w: tensor<64xbf16>, %t: tensor<2x8xi64>) {
  // expected-error @+1 {{'forge.chunked_cross_entropy' op expects a [vocab, dim] head weight of rank 2, got 'tensor<64xbf16>'}}
  %0 = forge.chunked_cross_entropy %h, %w, %t chunk(4) : tensor<2x8x16xbf16>, tensor<64xbf16>, tensor<2x8xi64> -> tensor<f32>
  return
}

// -----

func.func @f(%h: tensor<2x8x16xbf16>, %w: tensor<64x32xbf16>, %t: tensor<2x8xi64>) {
  // expected-error @+1 {{'forge.chunked_cross_entropy' op hidden 'tensor<2x8x16xbf16>' must end in the head's dim (32)}}
  %0 = forge.chunked_cross_entropy %h, %w, %t chunk(4) : tensor<2x8x16xbf16>, tensor<64x32xbf16>, tensor<2x8xi64> -> tensor<f32>
  return
}

// -----

func.func @f(%h: tensor<2x8x16xbf16>, %w: tensor<64x16xbf16>, %t: tensor<2x8xi64>) {
  // expected-error @+1 {{'forge.chunked_cross_entropy' op requires chunk >= 1, got 0}}
  %0 = forge.chunked_cross_entropy %h, %w, %t chunk(0) : tensor<2x8x16xbf16>, tensor<64x16xbf16>, tensor<2x8xi64> -> tensor<f32>
  return
}

// -----

func.func @f(%h: tensor<2x8x16xbf16>, %w: tensor<64x16xbf16>, %t: tensor<2x8xi64>) {
  // expected-error @+1 {{'forge.chunked_cross_entropy' op requires z_weight >= 0, got -1}}
  %0 = forge.chunked_cross_entropy %h, %w, %t chunk(4) {z_weight = -1.0 : f64} : tensor<2x8x16xbf16>, tensor<64x16xbf16>, tensor<2x8xi64> -> tensor<f32>
  return
}

// -----

func.func @f(%h: tensor<2x8x16xbf16>, %w: tensor<64x16xbf16>, %t: tensor<16xi64>) {
  // expected-error @+1 {{'forge.chunked_cross_entropy' op labels must have shape [2, 8] (the logits without the vocab dimension), got [16]}}
  %0 = forge.chunked_cross_entropy %h, %w, %t chunk(4) : tensor<2x8x16xbf16>, tensor<64x16xbf16>, tensor<16xi64> -> tensor<f32>
  return
}

// -----

func.func @f(%l: tensor<2x8x64xbf16>) {
  // expected-error @+1 {{'forge.z_loss' op expects logits [rows, classes] of rank 2, got 'tensor<2x8x64xbf16>'}}
  %0 = forge.z_loss %l : tensor<2x8x64xbf16> -> tensor<f32>
  return
}

// -----

func.func @f(%x: tensor<3x4xf32>) {
  // expected-error @+1 {{'forge.unstack' op needs one result per slice of the leading dimension (3), got 2}}
  %a, %b = forge.unstack %x : tensor<3x4xf32> -> tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @f(%x: tensor<2x4xf32>) {
  // expected-error @+1 {{'forge.unstack' op results must be 'tensor<4xf32>', got 'tensor<2xf32>'}}
  %a, %b = forge.unstack %x : tensor<2x4xf32> -> tensor<4xf32>, tensor<2xf32>
  return
}

// -----

func.func @f() {
  // expected-error @+1 {{'forge.fill' op requires static shapes, got 'tensor<?xf32>'}}
  %0 = forge.fill 0.0 : tensor<?xf32>
  return
}

// -----

func.func @f(%d: tensor<2x8x16xf32>, %i: tensor<2x4xi64>) {
  // expected-error @+1 {{'forge.embedding_grad' op dout must be ids shape + [dim] = [2, 4, 16], got [2, 8, 16]}}
  %0 = forge.embedding_grad %d[%i] : tensor<2x8x16xf32>, tensor<2x4xi64> -> tensor<64x16xf32>
  return
}

// -----

func.func @f(%d: tensor<2x8x16xf32>, %i: tensor<2x8xi64>) {
  // expected-error @+1 {{'forge.embedding_grad' op expects a [vocab, dim] result of rank 2, got 'tensor<64xf32>'}}
  %0 = forge.embedding_grad %d[%i] : tensor<2x8x16xf32>, tensor<2x8xi64> -> tensor<64xf32>
  return
}

// -----

func.func @f(%dy: tensor<4x16xf32>, %w: tensor<32x8xf32>) {
  // expected-error @+1 {{'forge.linear_grad_input' op dy must end in the weight's out (32), got 'tensor<4x16xf32>'}}
  %0 = forge.linear_grad_input %dy, %w : tensor<4x16xf32>, tensor<32x8xf32> -> tensor<4x8xf32>
  return
}

// -----

func.func @f(%dy: tensor<4x32xf32>, %w: tensor<32x8xf32>) {
  // expected-error @+1 {{'forge.linear_grad_input' op result must have shape [4, 8], got [4, 32]}}
  %0 = forge.linear_grad_input %dy, %w : tensor<4x32xf32>, tensor<32x8xf32> -> tensor<4x32xf32>
  return
}

// -----

func.func @f(%dy: tensor<4x32xf32>, %x: tensor<5x8xf32>) {
  // expected-error @+1 {{'forge.linear_grad_weight' op dy 'tensor<4x32xf32>' and input 'tensor<5x8xf32>' must share their leading dimensions}}
  %0 = forge.linear_grad_weight %dy, %x : tensor<4x32xf32>, tensor<5x8xf32> -> tensor<32x8xf32>
  return
}

// -----

func.func @f(%dy: tensor<4x32xf32>, %x: tensor<4x8xf32>) {
  // expected-error @+1 {{'forge.linear_grad_weight' op result must be [32, 8], got 'tensor<8x32xf32>'}}
  %0 = forge.linear_grad_weight %dy, %x : tensor<4x32xf32>, tensor<4x8xf32> -> tensor<8x32xf32>
  return
}

// -----

func.func @f(%dy: tensor<12x8xf32>, %w: tensor<4x8x16xf32>, %s: tensor<4xi64>) {
  // expected-error @+1 {{'forge.grouped_linear_grad_input' op expects dy [rows, 8] and a result [rows, 16], got 'tensor<12x8xf32>' and 'tensor<12x8xf32>'}}
  %0 = forge.grouped_linear_grad_input %dy, %w, %s layout(out_in) : tensor<12x8xf32>, tensor<4x8x16xf32>, tensor<4xi64> -> tensor<12x8xf32>
  return
}

// -----

func.func @f(%dy: tensor<12x8xf32>, %x: tensor<12x4xf32>, %s: tensor<4xi64>) {
  // expected-error @+1 {{'forge.grouped_linear_grad_weight' op expects dy [rows, 8] and input [rows, 16], got 'tensor<12x8xf32>' and 'tensor<12x4xf32>'}}
  %0 = forge.grouped_linear_grad_weight %dy, %x, %s layout(out_in) : tensor<12x8xf32>, tensor<12x4xf32>, tensor<4xi64> -> tensor<4x8x16xf32>
  return
}

// -----

func.func @f(%p: tensor<6x4xf32>, %i: tensor<6x2xi64>, %dw: tensor<6x3xf32>) {
  // expected-error @+1 {{'forge.softmax_topk_grad' op expects [tokens, experts] scores with [tokens, k] indices and dweights, got 'tensor<6x4xf32>', 'tensor<6x2xi64>', 'tensor<6x3xf32>'}}
  %0 = forge.softmax_topk_grad %p, %i, %dw, %p : tensor<6x4xf32>, tensor<6x2xi64>, tensor<6x3xf32> -> tensor<6x4xbf16>
  return
}

// -----

func.func @f(%p: tensor<6x4xf32>, %i: tensor<6x2xi64>, %dw: tensor<6x2xf32>) {
  // expected-error @+1 {{'forge.softmax_topk_grad' op dlogits must be [6, 4], got 'tensor<6x2xbf16>'}}
  %0 = forge.softmax_topk_grad %p, %i, %dw, %p : tensor<6x4xf32>, tensor<6x2xi64>, tensor<6x2xf32> -> tensor<6x2xbf16>
  return
}

// -----

func.func @f(%s: tensor<6x4xf32>, %i: tensor<6x2xi64>, %dw: tensor<6x2xf32>) {
  // expected-error @+1 {{'forge.sigmoid_topk_grad' op dbias must be [4], got 'tensor<2xbf16>'}}
  %0, %1 = forge.sigmoid_topk_grad %s, %i, %dw, %s : tensor<6x4xf32>, tensor<6x2xi64>, tensor<6x2xf32> -> tensor<6x4xbf16>, tensor<2xbf16>
  return
}

// -----

func.func @f(%d: tensor<12x8xf32>, %o: tensor<10xi64>) {
  // expected-error @+1 {{'forge.moe_dispatch_grad' op order must be [12], got 'tensor<10xi64>'}}
  %0 = forge.moe_dispatch_grad %d, %o : tensor<12x8xf32>, tensor<10xi64> -> tensor<6x8xf32>
  return
}

// -----

func.func @f(%d: tensor<12x8xf32>, %o: tensor<12xi64>) {
  // expected-error @+1 {{'forge.moe_dispatch_grad' op result 'tensor<5x8xf32>' must be [tokens, dim] with tokens dividing the copies of 'tensor<12x8xf32>'}}
  %0 = forge.moe_dispatch_grad %d, %o : tensor<12x8xf32>, tensor<12xi64> -> tensor<5x8xf32>
  return
}

// -----

func.func @f(%i: tensor<5x2xi64>, %l: tensor<f32>) {
  // expected-error @+1 {{'forge.moe_aux_loss_grad' op indices must be [tokens, k] over the result's tokens, got 'tensor<5x2xi64>'}}
  %0 = forge.moe_aux_loss_grad %i, %l : tensor<5x2xi64>, tensor<f32> -> tensor<6x4xf32>
  return
}

// -----

func.func @f() {
  %0 = forge.fill 0.0 : tensor<4xf32>
  // expected-error @+1 {{'forge.set_param' op 'missing' does not name a forge.param}}
  forge.set_param @missing, %0 : tensor<4xf32>
  return
}

// -----

forge.param @p : tensor<4xbf16> init(ones)
func.func @f() {
  %0 = forge.fill 0.0 : tensor<4xf32>
  // expected-error @+1 {{'forge.set_param' op value type 'tensor<4xf32>' does not match the type 'tensor<4xbf16>' of parameter 'p'}}
  forge.set_param @p, %0 : tensor<4xf32>
  return
}

// -----

func.func @f(%n: tensor<f32>) {
  // expected-error @+1 {{'forge.clip_coefficient' op requires max_norm > 0, got 0}}
  %0 = forge.clip_coefficient %n max_norm(0.0) : tensor<f32>
  return
}

// -----

func.func @f(%s: tensor<i64>) {
  // expected-error @+1 {{'forge.lr_factor' op unknown schedule 'step'; known: cosine, linear, wsd, constant, rex, none}}
  %0 = forge.lr_factor %s {schedule = "step", warmup = 0 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 0.1 : f64, max_steps = 10 : i64, wsd_decay = "cosine", rex_alpha = 1.0 : f64} : tensor<i64> -> tensor<f32>
  return
}

// -----

func.func @f(%s: tensor<i64>) {
  // expected-error @+1 {{'forge.lr_factor' op wsd_decay must be cosine, linear or sqrt, got 'exp'}}
  %0 = forge.lr_factor %s {schedule = "wsd", warmup = 0 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 0.1 : f64, max_steps = 10 : i64, wsd_decay = "exp", rex_alpha = 1.0 : f64} : tensor<i64> -> tensor<f32>
  return
}

// -----

func.func @f(%s: tensor<i64>) {
  // expected-error @+1 {{'forge.lr_factor' op requires warmup, decay, stable >= 0 and max_steps > 0}}
  %0 = forge.lr_factor %s {schedule = "cosine", warmup = -1 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 0.1 : f64, max_steps = 10 : i64, wsd_decay = "cosine", rex_alpha = 1.0 : f64} : tensor<i64> -> tensor<f32>
  return
}

// -----

func.func @f(%s: tensor<i64>) {
  // expected-error @+1 {{'forge.lr_factor' op requires min_lr_ratio in [0, 1], got 2}}
  %0 = forge.lr_factor %s {schedule = "cosine", warmup = 0 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 2.0 : f64, max_steps = 10 : i64, wsd_decay = "cosine", rex_alpha = 1.0 : f64} : tensor<i64> -> tensor<f32>
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %lr: tensor<f32>, %s: tensor<i64>) {
  // expected-error @+1 {{'forge.adamw_update' op requires betas in [0, 1), got (9.000000e-01, 1.000000e+00)}}
  %a, %b, %c = forge.adamw_update %p, %p, %p, %p, %lr, %lr, %s betas(0.9, 1.0) eps(1.0e-8) weight_decay(0.1) : tensor<4xf32>, tensor<f32>, tensor<f32>, tensor<i64>
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %lr: tensor<f32>, %s: tensor<i64>) {
  // expected-error @+1 {{'forge.adamw_update' op requires eps > 0 and weight_decay >= 0}}
  %a, %b, %c = forge.adamw_update %p, %p, %p, %p, %lr, %lr, %s betas(0.9, 0.95) eps(0.0) weight_decay(0.1) : tensor<4xf32>, tensor<f32>, tensor<f32>, tensor<i64>
  return
}

// -----

func.func @f(%x: tensor<6x16xbf16>, %i: tensor<6x2xi64>) {
  // expected-error @+1 {{'forge.moe_dispatch' op requires experts >= 1, got -1}}
  %r, %s, %o = forge.moe_dispatch %x, %i experts(-1) : tensor<6x16xbf16>, tensor<6x2xi64> -> tensor<12x16xbf16>, tensor<4xi64>, tensor<12xi64>
  return
}

// -----

func.func @f(%h: tensor<2x8x16xbf16>, %w: tensor<64x16xbf16>, %t: tensor<2x8xi64>) {
  // expected-error @+1 {{'forge.chunked_cross_entropy' op requires chunk >= 1, got -4}}
  %0 = forge.chunked_cross_entropy %h, %w, %t chunk(-4) : tensor<2x8x16xbf16>, tensor<64x16xbf16>, tensor<2x8xi64> -> tensor<f32>
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %lr: tensor<f32>) {
  // expected-error @+1 {{'forge.lion_update' op requires betas in [0, 1), got (1.000000e+00, 9.900000e-01)}}
  %a, %b = forge.lion_update %p, %p, %p, %lr, %lr betas(1.0, 0.99) weight_decay(0.1) : tensor<4xf32>, tensor<f32>, tensor<f32>
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %lr: tensor<f32>) {
  // expected-error @+1 {{'forge.lion_update' op requires weight_decay >= 0}}
  %a, %b = forge.lion_update %p, %p, %p, %lr, %lr betas(0.9, 0.99) weight_decay(-0.1) : tensor<4xf32>, tensor<f32>, tensor<f32>
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %lr: tensor<f32>) {
  // expected-error @+1 {{'forge.muon_update' op requires a parameter of rank >= 2, got 'tensor<4xf32>'}}
  %a, %b = forge.muon_update %p, %p, %p, %lr, %lr momentum(0.95) ns_steps(5) weight_decay(0.1) : tensor<4xf32>, tensor<f32>, tensor<f32>
  return
}

// -----

func.func @f(%p: tensor<4x4xf32>, %lr: tensor<f32>) {
  // expected-error @+1 {{'forge.muon_update' op requires momentum in [0, 1), got 1}}
  %a, %b = forge.muon_update %p, %p, %p, %lr, %lr momentum(1.0) ns_steps(5) weight_decay(0.1) : tensor<4x4xf32>, tensor<f32>, tensor<f32>
  return
}

// -----

func.func @f(%p: tensor<4x4xf32>, %lr: tensor<f32>) {
  // expected-error @+1 {{'forge.muon_update' op requires ns_steps >= 1, got 0}}
  %a, %b = forge.muon_update %p, %p, %p, %lr, %lr momentum(0.95) ns_steps(0) weight_decay(0.1) : tensor<4x4xf32>, tensor<f32>, tensor<f32>
  return
}

// -----

func.func @f(%p: tensor<4x4xf32>, %lr: tensor<f32>) {
  // expected-error @+1 {{'forge.muon_update' op requires weight_decay >= 0}}
  %a, %b = forge.muon_update %p, %p, %p, %lr, %lr momentum(0.95) ns_steps(5) weight_decay(-0.1) : tensor<4x4xf32>, tensor<f32>, tensor<f32>
  return
}

// -----

func.func @f(%s: tensor<3xf32>, %lr: tensor<f32>) {
  // expected-error @+1 {{'forge.schedule_free_count' op operand #0 must be tensor<4xf32> schedule-free state, but got 'tensor<3xf32>'}}
  %0 = forge.schedule_free_count %s, %lr beta1(0.9) warmup(0) : tensor<3xf32>, tensor<f32>
  return
}

// -----

func.func @f(%s: tensor<4xf32>, %lr: tensor<f32>) {
  // expected-error @+1 {{'forge.schedule_free_count' op requires beta1 in [0, 1), got 1}}
  %0 = forge.schedule_free_count %s, %lr beta1(1.0) warmup(0) : tensor<4xf32>, tensor<f32>
  return
}

// -----

func.func @f(%s: tensor<4xf32>, %lr: tensor<f32>) {
  // expected-error @+1 {{'forge.schedule_free_count' op requires warmup >= 0, got -1}}
  %0 = forge.schedule_free_count %s, %lr beta1(0.9) warmup(-1) : tensor<4xf32>, tensor<f32>
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %lr: tensor<f32>, %s: tensor<4xf32>) {
  // expected-error @+1 {{'forge.schedule_free_adamw_update' op requires betas in [0, 1), got (9.000000e-01, 1.000000e+00)}}
  %a, %b, %c, %d = forge.schedule_free_adamw_update %p, %p, %p, %p, %p, %lr, %lr, %s betas(0.9, 1.0) eps(1.0e-8) weight_decay(0.0) warmup(0) : tensor<4xf32>, tensor<f32>, tensor<f32>, tensor<4xf32>
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %lr: tensor<f32>, %s: tensor<4xf32>) {
  // expected-error @+1 {{'forge.schedule_free_adamw_update' op requires eps > 0, weight_decay >= 0 and warmup >= 0}}
  %a, %b, %c, %d = forge.schedule_free_adamw_update %p, %p, %p, %p, %p, %lr, %lr, %s betas(0.9, 0.999) eps(1.0e-8) weight_decay(0.0) warmup(-5) : tensor<4xf32>, tensor<f32>, tensor<f32>, tensor<4xf32>
  return
}

// -----

func.func @f(%p: tensor<4xf32>, %s: tensor<4xf32>) {
  // expected-error @+1 {{'forge.schedule_free_interpolate' op requires weight in [0, 1], got 1.5}}
  %0 = forge.schedule_free_interpolate %p, %p, %p, %s weight(1.5) : tensor<4xf32>, tensor<4xf32>
  return
}
