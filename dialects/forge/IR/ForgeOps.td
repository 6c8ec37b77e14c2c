//===- ForgeOps.td - forge graph ops -----------------------*- tablegen -*-===//

#ifndef FORGE_OPS_TD
#define FORGE_OPS_TD

include "dialects/forge/IR/ForgeDialect.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/IR/BuiltinAttributes.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Forge_FloatTensor : RankedTensorOf<[AnyFloat]>;
def Forge_IntTensor : RankedTensorOf<[AnySignlessInteger]>;
def Forge_Scalar : 0DTensorOf<[F32]>;

//===----------------------------------------------------------------------===//
// Parameters
//===----------------------------------------------------------------------===//

def Forge_ParamOp : Forge_Op<"param", [Symbol, HasParent<"::mlir::ModuleOp">]> {
  let summary = "A model parameter (or persistent buffer) and its initializer.";
  let description = [{
    Declares one parameter of the model at module level. The symbol name is
    the parameter's KempnerForge FQN, so IR, checkpoints and logs agree on
    names. `init` is the initializer of reference §2.7: `normal` draws from
    N(0, std²) (`std` is `init_std`, or `init_std / sqrt(2 * n_layers)` for
    the residual projections `o_proj` and `down_proj`), `ones` and `zeros`
    fill. A `buffer` is state that is saved and restored but not trained.

    Example:

    ```mlir
    forge.param @"layers.0.attention.o_proj.weight" : tensor<256x256xbf16> init(normal, std = 0.0070710678118654751)
    forge.param @"norm.weight" : tensor<256xbf16> init(ones)
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, TypeAttrOf<AnyRankedTensor>:$type,
                       Forge_InitKindAttr:$init, OptionalAttr<F64Attr>:$std,
                       UnitAttr:$buffer);
  let assemblyFormat = [{
    $sym_name `:` $type `init` `(` `` $init (`,` `std` `=` $std^)? `)`
    (`buffer` $buffer^)? attr-dict
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    ::mlir::RankedTensorType getTensorType() {
      return ::mlir::cast<::mlir::RankedTensorType>(getType());
    }
  }];
}

def Forge_GetParamOp : Forge_Op<"get_param", [MemoryEffects<[MemRead]>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "The current value of a parameter.";
  let description = [{
    Reads the parameter named by `name`. The result type must be the
    parameter's type. It reads state (not Pure): a `forge.set_param` of the
    same parameter before it changes what it returns.

    Example:

    ```mlir
    %w = forge.get_param @"output_head.proj.weight" : tensor<32000x256xbf16>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$name);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
}

//===----------------------------------------------------------------------===//
// Dense compute
//===----------------------------------------------------------------------===//

def Forge_EmbeddingOp : Forge_Op<"embedding", [Pure]> {
  let summary = "Looks up rows of an embedding table.";
  let description = [{
    `result[..., :] = table[ids[...], :]` for a `[vocab, dim]` table.

    Example:

    ```mlir
    %h = forge.embedding %table[%tokens] : tensor<32000x256xbf16>, tensor<4x512xi64> -> tensor<4x512x256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$table, Forge_IntTensor:$ids);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $table `[` $ids `]` attr-dict `:` type($table) `,` type($ids) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Forge_LinearOp : Forge_Op<"linear", [Pure]> {
  let summary = "Multiplies by the transpose of a [out, in] weight.";
  let description = [{
    `result = x @ weight^T` over the last dimension of `x`, as PyTorch's
    bias-free `nn.Linear`.

    Example:

    ```mlir
    %q = forge.linear %x, %wq : tensor<4x512x256xbf16>, tensor<256x256xbf16> -> tensor<4x512x256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$input, Forge_FloatTensor:$weight);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Forge_GroupedLinearOp : Forge_Op<"grouped_linear", [Pure]> {
  let summary = "Per-expert linear over rows grouped by expert.";
  let description = [{
    The rows of `input` are grouped by expert: the first `group_sizes[0]`
    rows belong to expert 0, the next `group_sizes[1]` to expert 1, and so
    on. Each group is multiplied by its expert's weight: with
    `layout = out_in` the weight is `[experts, out, in]` (stacked `nn.Linear`
    weights), with `in_out` it is `[experts, in, out]` (KempnerForge's packed
    experts).

    Example:

    ```mlir
    %y = forge.grouped_linear %x, %w, %sizes layout(out_in) : tensor<4096x256xbf16>, tensor<4x768x256xbf16>, tensor<4xi64> -> tensor<4096x768xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$input, Forge_FloatTensor:$weight,
                       Forge_IntTensor:$group_sizes,
                       Forge_WeightLayoutAttr:$layout);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `,` $group_sizes `layout` `(` $layout `)` attr-dict `:`
    type($input) `,` type($weight) `,` type($group_sizes) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Forge_StackOp : Forge_Op<"stack", [Pure, SameTypeOperands]> {
  let summary = "Stacks tensors of one type along a new leading dimension.";
  let description = [{
    `result[i] = inputs[i]`. Unpacked experts stack their per-expert weights
    into one `[experts, out, in]` tensor for `forge.grouped_linear`.

    Example:

    ```mlir
    %w = forge.stack %w0, %w1, %w2, %w3 : tensor<768x256xbf16> -> tensor<4x768x256xbf16>
    ```
  }];
  let arguments = (ins Variadic<Forge_FloatTensor>:$inputs);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = "$inputs attr-dict `:` type($inputs) `->` type($result)";
  let hasVerifier = 1;
}

def Forge_RMSNormOp : Forge_Op<"rmsnorm", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "RMS normalization over the last dimension.";
  let description = [{
    `x * rsqrt(mean(x^2) + eps) * weight`, computed in f32 and rounded to the
    input's type.

    Example:

    ```mlir
    %n = forge.rmsnorm %x, %w eps(1.000000e-05) : tensor<4x512x256xbf16>, tensor<256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$input, Forge_FloatTensor:$weight,
                       F64Attr:$eps);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `eps` `(` $eps `)` attr-dict `:` type($input) `,` type($weight)
  }];
  let hasVerifier = 1;
}

def Forge_LayerNormOp : Forge_Op<"layernorm", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "Layer normalization over the last dimension.";
  let description = [{
    `(x - mean(x)) * rsqrt(var(x) + eps) * weight + bias` with the biased
    variance, as `nn.LayerNorm`.

    Example:

    ```mlir
    %n = forge.layernorm %x, %w, %b eps(1.000000e-05) : tensor<4x512x256xbf16>, tensor<256xbf16>, tensor<256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$input, Forge_FloatTensor:$weight,
                       Forge_FloatTensor:$bias, F64Attr:$eps);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `,` $bias `eps` `(` $eps `)` attr-dict `:` type($input)
    `,` type($weight) `,` type($bias)
  }];
  let hasVerifier = 1;
}

def Forge_ReshapeOp : Forge_Op<"reshape", [Pure]> {
  let summary = "Reinterprets a tensor with another shape of the same size.";
  let description = [{
    Row-major reshape; both shapes are static and hold the same number of
    elements.

    Example:

    ```mlir
    %q4 = forge.reshape %q : tensor<4x512x256xbf16> -> tensor<4x512x4x64xbf16>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def Forge_RopeOp : Forge_Op<"rope", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "Rotary position embedding, rotate-half layout.";
  let description = [{
    For `x` of shape `[batch, seq, heads, head_dim]` at position `p`, with
    `inv_freq_i = theta^(-2i/head_dim)` and `a = p * inv_freq_i` (f32):
    the first half `x1` and second half `x2` of each head vector become
    `[x1*cos(a) - x2*sin(a), x2*cos(a) + x1*sin(a)]` (HF Llama convention).
    Positions run over the whole sequence, also across packed documents.

    Example:

    ```mlir
    %qr = forge.rope %q theta(1.000000e+04) : tensor<4x512x4x64xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$input, F64Attr:$theta);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = "$input `theta` `(` $theta `)` attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Forge_AttentionOp : Forge_Op<"attention", [Pure]> {
  let summary = "Scaled dot-product attention with GQA and document masks.";
  let description = [{
    `q` is `[batch, seq, heads, head_dim]`, `k` and `v` are
    `[batch, seq, kv_heads, head_dim]`; kv head `j` serves query heads
    `j*r .. j*r+r-1` with `r = heads / kv_heads`. Scores are scaled by
    `scale` (1/sqrt(head_dim) by default). With `causal`, query `i` sees keys
    `<= i`; with `doc_ids` (`[batch, seq]`) it also sees only keys of its own
    document (block-diagonal mask for packed sequences). No dropout.

    Example:

    ```mlir
    %o = forge.attention %q, %k, %v causal scale(1.250000e-01) : tensor<4x512x4x64xbf16>, tensor<4x512x2x64xbf16>, tensor<4x512x2x64xbf16> -> tensor<4x512x4x64xbf16>
    %p = forge.attention %q, %k, %v doc_ids(%docs : tensor<4x512xi32>) causal scale(1.250000e-01) : tensor<4x512x4x64xbf16>, tensor<4x512x4x64xbf16>, tensor<4x512x4x64xbf16> -> tensor<4x512x4x64xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$q, Forge_FloatTensor:$k,
                       Forge_FloatTensor:$v, Optional<Forge_IntTensor>:$doc_ids,
                       UnitAttr:$causal, F64Attr:$scale);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $q `,` $k `,` $v (`doc_ids` `(` $doc_ids^ `:` type($doc_ids) `)`)?
    (`causal` $causal^)? `scale` `(` $scale `)` attr-dict `:` type($q) `,`
    type($k) `,` type($v) `->` type($result)
  }];
  let hasVerifier = 1;
}

class Forge_UnaryOp<string mnemonic, string what, string formula>
    : Forge_Op<mnemonic, [Pure, SameOperandsAndResultType]> {
  let summary = "Element-wise " # what # ".";
  let description = "Computes `" # formula # "` for every element.\n\n"
                    "Example:\n\n```mlir\n%y = forge." # mnemonic #
                    " %x : tensor<4x512x768xbf16>\n```";
  let arguments = (ins Forge_FloatTensor:$input);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def Forge_SiluOp : Forge_UnaryOp<"silu", "SiLU", "x * sigmoid(x)">;
def Forge_GeluOp : Forge_UnaryOp<"gelu", "exact (erf) GELU",
                                 "x * 0.5 * (1 + erf(x / sqrt(2)))">;
def Forge_ReluOp : Forge_UnaryOp<"relu", "ReLU", "max(x, 0)">;
def Forge_TanhOp : Forge_UnaryOp<"tanh", "hyperbolic tangent", "tanh(x)">;

class Forge_BinaryOp<string mnemonic, string what, string formula>
    : Forge_Op<mnemonic, [Pure, SameOperandsAndResultType]> {
  let summary = "Element-wise " # what # " of two tensors of one type.";
  let description = "Computes `" # formula # "` element-wise; both operands "
                    "and the result have the same type.\n\nExample:\n\n"
                    "```mlir\n%z = forge." # mnemonic #
                    " %x, %y : tensor<4x512x256xbf16>\n```";
  let arguments = (ins Forge_FloatTensor:$lhs, Forge_FloatTensor:$rhs);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def Forge_AddOp : Forge_BinaryOp<"add", "sum", "lhs + rhs">;
def Forge_MulOp : Forge_BinaryOp<"mul", "product", "lhs * rhs">;

def Forge_ScaleOp : Forge_Op<"scale", [Pure, SameOperandsAndResultType]> {
  let summary = "Multiplies a tensor by a constant.";
  let description = [{
    `result = factor * input`; used to weight loss terms.

    Example:

    ```mlir
    %w = forge.scale %aux by(1.000000e-02) : tensor<f32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$input, F64Attr:$factor);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = "$input `by` `(` $factor `)` attr-dict `:` type($input)";
}

//===----------------------------------------------------------------------===//
// FP8 training (emulated on the CPU)
//===----------------------------------------------------------------------===//

def Forge_Fp8CastOp : Forge_Op<"fp8_cast", [Pure, SameOperandsAndResultType]> {
  let summary = "Rounds a tensor through fp8 with a dynamic tensor-wise scale.";
  let description = [{
    The value an fp8 matmul sees (torchao's tensorwise recipe, reference
    §3.8): with `amax = max|input|` (f32) and `fmax` the format's largest
    value (448 for `e4m3`, 57344 for `e5m2`), `scale = fmax / amax` (1 when
    amax is 0), and each element becomes `round(input * scale) / scale`,
    where `round` is round-to-nearest-even into the format's value set
    (e4m3fn: 4 exponent bits, bias 7, 3 mantissa bits, subnormals, no
    infinities; e5m2: 5, 15, 2), saturating at `fmax`. The CPU backend
    computes this exactly, so fp8 training is testable without fp8
    hardware; a GPU backend runs the same scaling with native fp8 GEMMs.
    Its VJP passes the cotangent through (the straight-through estimator
    of fp8 training).

    Example:

    ```mlir
    %xq = forge.fp8_cast %x format("e4m3") : tensor<4x512x256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$input, StrAttr:$format);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = "$input `format` `(` $format `)` attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Forge_Fp8GradCastOp : Forge_Op<"fp8_grad_cast", [Pure, SameOperandsAndResultType]> {
  let summary = "Identity whose gradient is rounded through fp8 e5m2.";
  let description = [{
    Returns `input`. Its VJP is `forge.fp8_cast` of the cotangent with
    format `e5m2`: an fp8 linear's output gradient enters both backward
    matmuls in e5m2, as torchao's Float8Linear does.

    Example:

    ```mlir
    %y = forge.fp8_grad_cast %yl : tensor<4x512x256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$input);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

def Forge_SoftmaxTopKOp : Forge_Op<"softmax_topk", [Pure]> {
  let summary = "Softmax router: top-k experts per token, renormalized.";
  let description = [{
    For router logits `[tokens, experts]`: `probs = softmax(logits)` (f32),
    `indices` are the `k` largest probabilities per token (largest first,
    ties to the lower index) and `weights` are those probabilities divided by
    their sum.

    Example:

    ```mlir
    %w, %i, %p = forge.softmax_topk %logits k(2) : tensor<2048x4xbf16> -> tensor<2048x2xf32>, tensor<2048x2xi64>, tensor<2048x4xf32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$logits, I64Attr:$k);
  let results = (outs Forge_FloatTensor:$weights, Forge_IntTensor:$indices,
                      Forge_FloatTensor:$probs);
  let assemblyFormat = [{
    $logits `k` `(` $k `)` attr-dict `:` type($logits) `->` type($weights) `,`
    type($indices) `,` type($probs)
  }];
  let hasVerifier = 1;
}

def Forge_SigmoidTopKOp : Forge_Op<"sigmoid_topk", [Pure]> {
  let summary = "Sigmoid router with a trainable expert bias.";
  let description = [{
    `scores = sigmoid(logits + bias)` (f32); the bias changes both which
    experts are selected and their weights, as in KempnerForge. `indices`
    are the `k` largest scores per token, `weights` those scores divided by
    their sum. KempnerForge also moves the bias toward balanced load outside
    the gradient (`bias_schedule`: constant, cosine_decay or linear_warmup of
    the base rate 0.001); forge records the schedule here but does not apply
    that update yet (forgec warns), so the bias trains through its gradient
    only.

    Example:

    ```mlir
    %w, %i, %s = forge.sigmoid_topk %logits, %bias k(2) bias_schedule("constant") : tensor<2048x4xbf16>, tensor<4xbf16> -> tensor<2048x2xf32>, tensor<2048x2xi64>, tensor<2048x4xf32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$logits, Forge_FloatTensor:$bias,
                       I64Attr:$k, StrAttr:$bias_schedule);
  let results = (outs Forge_FloatTensor:$weights, Forge_IntTensor:$indices,
                      Forge_FloatTensor:$scores);
  let assemblyFormat = [{
    $logits `,` $bias `k` `(` $k `)` `bias_schedule` `(` $bias_schedule `)`
    attr-dict `:` type($logits) `,` type($bias) `->` type($weights) `,`
    type($indices) `,` type($scores)
  }];
  let hasVerifier = 1;
}

def Forge_MoeCapacityOp : Forge_Op<"moe_capacity", [Pure,
    AllTypesMatch<["weights", "result"]>]> {
  let summary = "Drops routing weights beyond each expert's capacity.";
  let description = [{
    `capacity = max(1, ceil(tokens * k / experts * factor))`. Independently
    for each top-k slot, the first `capacity` tokens (in token order) routed
    to an expert keep their weight and later ones get weight 0: no
    renormalization, no rerouting (dropped tokens pass through the residual).

    Example:

    ```mlir
    %kept = forge.moe_capacity %indices, %weights experts(4) factor(1.250000e+00) : tensor<2048x2xi64>, tensor<2048x2xf32>
    ```
  }];
  let arguments = (ins Forge_IntTensor:$indices, Forge_FloatTensor:$weights,
                       I64Attr:$experts, F64Attr:$factor);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $indices `,` $weights `experts` `(` $experts `)` `factor` `(` $factor `)`
    attr-dict `:` type($indices) `,` type($weights)
  }];
  let hasVerifier = 1;
}

def Forge_MoeDispatchOp : Forge_Op<"moe_dispatch", [Pure]> {
  let summary = "Groups token copies by expert for grouped matmuls.";
  let description = [{
    Each token is copied once per selected expert; the `tokens * k` copies
    are ordered by expert (stable in token order). `rows` holds the copies,
    `group_sizes[e]` how many go to expert `e`, and `order[r]` the flat
    `(token * k + slot)` index copy `r` came from.

    Example:

    ```mlir
    %rows, %sizes, %order = forge.moe_dispatch %x, %indices experts(4) : tensor<2048x256xbf16>, tensor<2048x2xi64> -> tensor<4096x256xbf16>, tensor<4xi64>, tensor<4096xi64>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$input, Forge_IntTensor:$indices,
                       I64Attr:$experts);
  let results = (outs Forge_FloatTensor:$rows, Forge_IntTensor:$group_sizes,
                      Forge_IntTensor:$order);
  let assemblyFormat = [{
    $input `,` $indices `experts` `(` $experts `)` attr-dict `:` type($input)
    `,` type($indices) `->` type($rows) `,` type($group_sizes) `,` type($order)
  }];
  let hasVerifier = 1;
}

def Forge_MoeCombineOp : Forge_Op<"moe_combine", [Pure]> {
  let summary = "Weights expert outputs and sums them back per token.";
  let description = [{
    `result[t] = sum over slots s of weights[t, s] * rows[r]` where `r` is
    the copy of `(t, s)` (inverse of `order`). With `gradient_scale`
    (`moe_gradient_scale`), the output of expert `e` is also multiplied by
    `(tokens * k / experts) / group_sizes[e]`, forward and backward, as in
    KempnerForge.

    Example:

    ```mlir
    %y = forge.moe_combine %out, %order, %weights, %sizes : tensor<4096x256xbf16>, tensor<4096xi64>, tensor<2048x2xf32>, tensor<4xi64> -> tensor<2048x256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$rows, Forge_IntTensor:$order,
                       Forge_FloatTensor:$weights, Forge_IntTensor:$group_sizes,
                       UnitAttr:$gradient_scale);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $rows `,` $order `,` $weights `,` $group_sizes (`gradient_scale` $gradient_scale^)?
    attr-dict `:` type($rows) `,` type($order) `,` type($weights) `,`
    type($group_sizes) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Forge_MoeAuxLossOp : Forge_Op<"moe_aux_loss", [Pure]> {
  let summary = "Load-balancing loss of a router.";
  let description = [{
    `experts * sum_i f_i * P_i` with `f_i` the fraction of the `tokens * k`
    assignments that went to expert `i` (no gradient) and `P_i` the mean
    router probability (or sigmoid score) of expert `i` over tokens.

    Example:

    ```mlir
    %aux = forge.moe_aux_loss %probs, %indices : tensor<2048x4xf32>, tensor<2048x2xi64> -> tensor<f32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$probs, Forge_IntTensor:$indices);
  let results = (outs Forge_Scalar:$result);
  let assemblyFormat = [{
    $probs `,` $indices attr-dict `:` type($probs) `,` type($indices) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

def Forge_ZLossOp : Forge_Op<"z_loss", [Pure]> {
  let summary = "Mean squared log-partition of logits.";
  let description = [{
    `mean over rows of logsumexp(logits[row, :])^2`, computed in f32, over
    every row (positions labelled -100 included, as in KempnerForge). Used
    for the output z-loss (`train.z_loss_weight`) and the router z-loss.

    Example:

    ```mlir
    %z = forge.z_loss %router_logits : tensor<2048x4xbf16> -> tensor<f32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$logits);
  let results = (outs Forge_Scalar:$result);
  let assemblyFormat = "$logits attr-dict `:` type($logits) `->` type($result)";
  let hasVerifier = 1;
}

def Forge_CrossEntropyOp : Forge_Op<"cross_entropy", [Pure]> {
  let summary = "Mean token cross-entropy with an ignore index.";
  let description = [{
    `logits` are `[..., vocab]`, `labels` the same shape without the vocab
    dimension. The loss is the mean of `-log softmax(logits)[label]` (f32)
    over positions whose label is not `ignore_index` (-100); 0 when every
    label is ignored.

    Example:

    ```mlir
    %loss = forge.cross_entropy %logits, %labels : tensor<4x512x32000xbf16>, tensor<4x512xi64> -> tensor<f32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$logits, Forge_IntTensor:$labels,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index);
  let results = (outs Forge_Scalar:$result);
  let assemblyFormat = [{
    $logits `,` $labels attr-dict `:` type($logits) `,` type($labels) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Forge_ChunkedCrossEntropyOp : Forge_Op<"chunked_cross_entropy", [Pure]> {
  let summary = "Output head and cross-entropy, chunk by chunk.";
  let description = [{
    The same loss as `forge.linear` followed by `forge.cross_entropy`, but
    the logits of at most `chunk` tokens exist at a time: `hidden` is
    `[..., dim]`, `weight` the `[vocab, dim]` output head. With `z_weight`
    > 0 the output z-loss (over all positions) is added with that weight, so
    it also never needs the full logits.

    Example:

    ```mlir
    %loss = forge.chunked_cross_entropy %h, %w, %labels chunk(4096) : tensor<4x512x256xbf16>, tensor<32000x256xbf16>, tensor<4x512xi64> -> tensor<f32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$hidden, Forge_FloatTensor:$weight,
                       Forge_IntTensor:$labels, I64Attr:$chunk,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                       DefaultValuedAttr<F64Attr, "0.0">:$z_weight);
  let results = (outs Forge_Scalar:$result);
  let assemblyFormat = [{
    $hidden `,` $weight `,` $labels `chunk` `(` $chunk `)` attr-dict `:`
    type($hidden) `,` type($weight) `,` type($labels) `->` type($result)
  }];
  let hasVerifier = 1;
}


//===----------------------------------------------------------------------===//
// Constants and backward ops (created by forge-build-backward)
//===----------------------------------------------------------------------===//

def Forge_FillOp : Forge_Op<"fill", [Pure]> {
  let summary = "A tensor with every element equal to a constant.";
  let description = [{
    Seeds the backward pass (the loss cotangent is 1) and stands for a zero
    cotangent where an output was not used.

    Example:

    ```mlir
    %one = forge.fill 1.000000e+00 : tensor<f32>
    ```
  }];
  let arguments = (ins F64Attr:$value);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = "$value attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Forge_UnstackOp : Forge_Op<"unstack", [Pure]> {
  let summary = "Splits a tensor along its leading dimension.";
  let description = [{
    The inverse of `forge.stack`: `results[i] = input[i]`. It is the VJP of
    `forge.stack`, giving each expert's weight its own gradient.

    Example:

    ```mlir
    %a, %b = forge.unstack %w : tensor<2x768x256xbf16> -> tensor<768x256xbf16>, tensor<768x256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$input);
  let results = (outs Variadic<Forge_FloatTensor>:$results);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($results)";
  let hasVerifier = 1;
}

def Forge_EmbeddingGradOp : Forge_Op<"embedding_grad", [Pure]> {
  let summary = "Gradient of an embedding table.";
  let description = [{
    `result[v, :] = sum over positions n with ids[n] == v of dout[n, :]`.

    Example:

    ```mlir
    %dt = forge.embedding_grad %dout[%tokens] : tensor<4x512x256xbf16>, tensor<4x512xi64> -> tensor<32000x256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$dout, Forge_IntTensor:$ids);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $dout `[` $ids `]` attr-dict `:` type($dout) `,` type($ids) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Forge_LinearGradInputOp : Forge_Op<"linear_grad_input", [Pure]> {
  let summary = "Input gradient of forge.linear: dy @ weight.";
  let description = [{
    For `y = x @ weight^T` with `weight` `[out, in]`: `dx = dy @ weight`.

    Example:

    ```mlir
    %dx = forge.linear_grad_input %dy, %w : tensor<4x512x768xbf16>, tensor<768x256xbf16> -> tensor<4x512x256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$dy, Forge_FloatTensor:$weight);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $dy `,` $weight attr-dict `:` type($dy) `,` type($weight) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Forge_LinearGradWeightOp : Forge_Op<"linear_grad_weight", [Pure]> {
  let summary = "Weight gradient of forge.linear: dy^T @ x.";
  let description = [{
    `dweight[o, i] = sum over all leading positions of dy[..., o] * x[..., i]`.

    Example:

    ```mlir
    %dw = forge.linear_grad_weight %dy, %x : tensor<4x512x768xbf16>, tensor<4x512x256xbf16> -> tensor<768x256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$dy, Forge_FloatTensor:$input);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $dy `,` $input attr-dict `:` type($dy) `,` type($input) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Forge_GroupedLinearGradInputOp : Forge_Op<"grouped_linear_grad_input", [Pure]> {
  let summary = "Input gradient of forge.grouped_linear.";
  let description = [{
    Per expert group, `dx = dy @ W_e` (in `out_in` terms).

    Example:

    ```mlir
    %dx = forge.grouped_linear_grad_input %dy, %w, %sizes layout(out_in) : tensor<4096x768xbf16>, tensor<4x768x256xbf16>, tensor<4xi64> -> tensor<4096x256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$dy, Forge_FloatTensor:$weight,
                       Forge_IntTensor:$group_sizes,
                       Forge_WeightLayoutAttr:$layout);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $dy `,` $weight `,` $group_sizes `layout` `(` $layout `)` attr-dict `:`
    type($dy) `,` type($weight) `,` type($group_sizes) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Forge_GroupedLinearGradWeightOp : Forge_Op<"grouped_linear_grad_weight", [Pure]> {
  let summary = "Weight gradient of forge.grouped_linear.";
  let description = [{
    Per expert group, `dW_e = dy_e^T @ x_e`, laid out as the weight
    (`layout`).

    Example:

    ```mlir
    %dw = forge.grouped_linear_grad_weight %dy, %x, %sizes layout(out_in) : tensor<4096x768xbf16>, tensor<4096x256xbf16>, tensor<4xi64> -> tensor<4x768x256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$dy, Forge_FloatTensor:$input,
                       Forge_IntTensor:$group_sizes,
                       Forge_WeightLayoutAttr:$layout);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $dy `,` $input `,` $group_sizes `layout` `(` $layout `)` attr-dict `:`
    type($dy) `,` type($input) `,` type($group_sizes) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Forge_RMSNormGradOp : Forge_Op<"rmsnorm_grad", [Pure,
    AllTypesMatch<["input", "dy", "dinput"]>, AllTypesMatch<["weight", "dweight"]>]> {
  let summary = "Gradients of forge.rmsnorm.";
  let description = [{
    With `r = rsqrt(mean(x^2) + eps)`: `dweight = sum(dy * x * r)` over rows
    and `dx = r * dy * w - x * r^3 * mean(dy * w * x)`.

    Example:

    ```mlir
    %dx, %dw = forge.rmsnorm_grad %x, %w, %dy eps(1.000000e-05) : tensor<4x512x256xbf16>, tensor<256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$input, Forge_FloatTensor:$weight,
                       Forge_FloatTensor:$dy, F64Attr:$eps);
  let results = (outs Forge_FloatTensor:$dinput, Forge_FloatTensor:$dweight);
  let assemblyFormat = [{
    $input `,` $weight `,` $dy `eps` `(` $eps `)` attr-dict `:` type($input) `,` type($weight)
  }];
}

def Forge_LayerNormGradOp : Forge_Op<"layernorm_grad", [Pure,
    AllTypesMatch<["input", "dy", "dinput"]>,
    AllTypesMatch<["weight", "dweight", "dbias"]>]> {
  let summary = "Gradients of forge.layernorm.";
  let description = [{
    Standard LayerNorm backward: `dbias = sum(dy)`, `dweight = sum(dy *
    xhat)`, `dx = r * (g - mean(g) - xhat * mean(g * xhat))` with
    `g = dy * w`.

    Example:

    ```mlir
    %dx, %dw, %db = forge.layernorm_grad %x, %w, %dy eps(1.000000e-05) : tensor<4x512x256xbf16>, tensor<256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$input, Forge_FloatTensor:$weight,
                       Forge_FloatTensor:$dy, F64Attr:$eps);
  let results = (outs Forge_FloatTensor:$dinput, Forge_FloatTensor:$dweight,
                      Forge_FloatTensor:$dbias);
  let assemblyFormat = [{
    $input `,` $weight `,` $dy `eps` `(` $eps `)` attr-dict `:` type($input) `,` type($weight)
  }];
}

def Forge_RopeGradOp : Forge_Op<"rope_grad", [Pure, AllTypesMatch<["dy", "result"]>]> {
  let summary = "Gradient of forge.rope: the rotation by the opposite angle.";
  let description = [{
    A rotation's transpose is its inverse, so `dx` rotates `dy` by `-angle`.

    Example:

    ```mlir
    %dq = forge.rope_grad %dqr theta(1.000000e+04) : tensor<4x512x4x64xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$dy, F64Attr:$theta);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = "$dy `theta` `(` $theta `)` attr-dict `:` type($dy)";
}

def Forge_AttentionGradOp : Forge_Op<"attention_grad", [Pure,
    AllTypesMatch<["q", "out", "dout", "dq"]>,
    AllTypesMatch<["k", "v", "dk", "dv"]>]> {
  let summary = "Gradients of forge.attention.";
  let description = [{
    Recomputes the attention probabilities from `q` and `k` (as flash
    attention does) and returns `dq`, `dk`, `dv`; the GQA heads sharing a kv
    head sum into its gradient. Same mask attributes as the forward op.

    Example:

    ```mlir
    %dq, %dk, %dv = forge.attention_grad %q, %k, %v, %o, %do causal scale(1.250000e-01) : tensor<4x512x4x64xbf16>, tensor<4x512x2x64xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$q, Forge_FloatTensor:$k,
                       Forge_FloatTensor:$v, Forge_FloatTensor:$out,
                       Forge_FloatTensor:$dout, Optional<Forge_IntTensor>:$doc_ids,
                       UnitAttr:$causal, F64Attr:$scale);
  let results = (outs Forge_FloatTensor:$dq, Forge_FloatTensor:$dk,
                      Forge_FloatTensor:$dv);
  let assemblyFormat = [{
    $q `,` $k `,` $v `,` $out `,` $dout
    (`doc_ids` `(` $doc_ids^ `:` type($doc_ids) `)`)?
    (`causal` $causal^)? `scale` `(` $scale `)` attr-dict `:` type($q) `,` type($k)
  }];
}

class Forge_UnaryGradOp<string mnemonic, string forward>
    : Forge_Op<mnemonic, [Pure, SameOperandsAndResultType]> {
  let summary = "Gradient of forge." # forward # ".";
  let description = "`dx = dy * " # forward # "'(x)`.\n\nExample:\n\n"
                    "```mlir\n%dx = forge." # mnemonic #
                    " %x, %dy : tensor<4x512x768xbf16>\n```";
  let arguments = (ins Forge_FloatTensor:$input, Forge_FloatTensor:$dy);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = "$input `,` $dy attr-dict `:` type($result)";
}

def Forge_SiluGradOp : Forge_UnaryGradOp<"silu_grad", "silu">;
def Forge_GeluGradOp : Forge_UnaryGradOp<"gelu_grad", "gelu">;
def Forge_ReluGradOp : Forge_UnaryGradOp<"relu_grad", "relu">;
def Forge_TanhGradOp : Forge_UnaryGradOp<"tanh_grad", "tanh">;

def Forge_SoftmaxTopKGradOp : Forge_Op<"softmax_topk_grad", [Pure,
    AllTypesMatch<["probs", "dprobs"]>]> {
  let summary = "Router logits gradient of forge.softmax_topk.";
  let description = [{
    Back-propagates the cotangents of the renormalized weights and of the
    probabilities through the renormalization and the softmax. `dlogits` has
    the logits' type.

    Example:

    ```mlir
    %dl = forge.softmax_topk_grad %probs, %indices, %dw, %dp : tensor<2048x4xf32>, tensor<2048x2xi64>, tensor<2048x2xf32> -> tensor<2048x4xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$probs, Forge_IntTensor:$indices,
                       Forge_FloatTensor:$dweights, Forge_FloatTensor:$dprobs);
  let results = (outs Forge_FloatTensor:$dlogits);
  let assemblyFormat = [{
    $probs `,` $indices `,` $dweights `,` $dprobs attr-dict `:` type($probs) `,`
    type($indices) `,` type($dweights) `->` type($dlogits)
  }];
  let hasVerifier = 1;
}

def Forge_SigmoidTopKGradOp : Forge_Op<"sigmoid_topk_grad", [Pure,
    AllTypesMatch<["scores", "dscores"]>]> {
  let summary = "Logits and bias gradients of forge.sigmoid_topk.";
  let description = [{
    As `forge.softmax_topk_grad`, through the sigmoid; the bias gradient is
    the logits gradient summed over tokens.

    Example:

    ```mlir
    %dl, %db = forge.sigmoid_topk_grad %scores, %indices, %dw, %ds : tensor<2048x4xf32>, tensor<2048x2xi64>, tensor<2048x2xf32> -> tensor<2048x4xbf16>, tensor<4xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$scores, Forge_IntTensor:$indices,
                       Forge_FloatTensor:$dweights, Forge_FloatTensor:$dscores);
  let results = (outs Forge_FloatTensor:$dlogits, Forge_FloatTensor:$dbias);
  let assemblyFormat = [{
    $scores `,` $indices `,` $dweights `,` $dscores attr-dict `:` type($scores)
    `,` type($indices) `,` type($dweights) `->` type($dlogits) `,` type($dbias)
  }];
  let hasVerifier = 1;
}

def Forge_MoeCapacityGradOp : Forge_Op<"moe_capacity_grad", [Pure,
    AllTypesMatch<["dout", "result"]>]> {
  let summary = "Gradient of forge.moe_capacity: the same mask.";
  let description = [{
    Kept routing weights pass their gradient through, dropped ones get 0.

    Example:

    ```mlir
    %dw = forge.moe_capacity_grad %indices, %dkept experts(4) factor(1.250000e+00) : tensor<2048x2xi64>, tensor<2048x2xf32>
    ```
  }];
  let arguments = (ins Forge_IntTensor:$indices, Forge_FloatTensor:$dout,
                       I64Attr:$experts, F64Attr:$factor);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $indices `,` $dout `experts` `(` $experts `)` `factor` `(` $factor `)`
    attr-dict `:` type($indices) `,` type($dout)
  }];
}

def Forge_MoeDispatchGradOp : Forge_Op<"moe_dispatch_grad", [Pure]> {
  let summary = "Gradient of forge.moe_dispatch: copies summed per token.";
  let description = [{
    `dx[t] = sum of drows[r] over the copies r of token t` (`order[r] / k`).

    Example:

    ```mlir
    %dx = forge.moe_dispatch_grad %drows, %order : tensor<4096x256xbf16>, tensor<4096xi64> -> tensor<2048x256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$drows, Forge_IntTensor:$order);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $drows `,` $order attr-dict `:` type($drows) `,` type($order) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Forge_MoeCombineGradOp : Forge_Op<"moe_combine_grad", [Pure,
    AllTypesMatch<["rows", "drows"]>, AllTypesMatch<["weights", "dweights"]>]> {
  let summary = "Gradients of forge.moe_combine.";
  let description = [{
    `drows[r] = w * scale_e * dy[t]` and `dweights[t, s] = scale_e *
    <rows[r], dy[t]>` for the copy `r` of `(t, s)`; the expert of a copy
    follows from `group_sizes` (rows are grouped by expert).

    Example:

    ```mlir
    %dr, %dw = forge.moe_combine_grad %rows, %order, %weights, %sizes, %dy : tensor<4096x256xbf16>, tensor<4096xi64>, tensor<2048x2xf32>, tensor<4xi64>, tensor<2048x256xbf16>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$rows, Forge_IntTensor:$order,
                       Forge_FloatTensor:$weights, Forge_IntTensor:$group_sizes,
                       Forge_FloatTensor:$dy, UnitAttr:$gradient_scale);
  let results = (outs Forge_FloatTensor:$drows, Forge_FloatTensor:$dweights);
  let assemblyFormat = [{
    $rows `,` $order `,` $weights `,` $group_sizes `,` $dy
    (`gradient_scale` $gradient_scale^)? attr-dict `:` type($rows) `,`
    type($order) `,` type($weights) `,` type($group_sizes) `,` type($dy)
  }];
}

def Forge_MoeAuxLossGradOp : Forge_Op<"moe_aux_loss_grad", [Pure]> {
  let summary = "Gradient of forge.moe_aux_loss with respect to the probabilities.";
  let description = [{
    `dprobs[t, i] = dloss * experts * f_i / tokens` (`f` has no gradient).

    Example:

    ```mlir
    %dp = forge.moe_aux_loss_grad %indices, %dloss : tensor<2048x2xi64>, tensor<f32> -> tensor<2048x4xf32>
    ```
  }];
  let arguments = (ins Forge_IntTensor:$indices, Forge_Scalar:$dloss);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $indices `,` $dloss attr-dict `:` type($indices) `,` type($dloss) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Forge_ZLossGradOp : Forge_Op<"z_loss_grad", [Pure,
    AllTypesMatch<["logits", "result"]>]> {
  let summary = "Gradient of forge.z_loss.";
  let description = [{
    `dlogits[r] = dloss * 2 * lse_r / rows * softmax(logits[r])`.

    Example:

    ```mlir
    %dl = forge.z_loss_grad %logits, %dz : tensor<2048x4xbf16>, tensor<f32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$logits, Forge_Scalar:$dloss);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = "$logits `,` $dloss attr-dict `:` type($logits) `,` type($dloss)";
}

def Forge_CrossEntropyGradOp : Forge_Op<"cross_entropy_grad", [Pure,
    AllTypesMatch<["logits", "result"]>]> {
  let summary = "Gradient of forge.cross_entropy.";
  let description = [{
    `dlogits = dloss * (softmax(logits) - onehot(label)) / valid` on rows
    whose label is not `ignore_index`, 0 elsewhere.

    Example:

    ```mlir
    %dl = forge.cross_entropy_grad %logits, %labels, %dloss : tensor<4x512x32000xbf16>, tensor<4x512xi64>, tensor<f32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$logits, Forge_IntTensor:$labels,
                       Forge_Scalar:$dloss,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $logits `,` $labels `,` $dloss attr-dict `:` type($logits) `,` type($labels) `,` type($dloss)
  }];
}

def Forge_ChunkedCrossEntropyGradOp : Forge_Op<"chunked_cross_entropy_grad", [Pure,
    AllTypesMatch<["hidden", "dhidden"]>, AllTypesMatch<["weight", "dweight"]>]> {
  let summary = "Gradients of forge.chunked_cross_entropy.";
  let description = [{
    Recomputes each chunk's logits and returns the hidden-state and head
    gradients; like the forward op, never more than `chunk` rows of logits.

    Example:

    ```mlir
    %dh, %dw = forge.chunked_cross_entropy_grad %h, %w, %labels, %dloss chunk(4096) : tensor<4x512x256xbf16>, tensor<32000x256xbf16>, tensor<4x512xi64>, tensor<f32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$hidden, Forge_FloatTensor:$weight,
                       Forge_IntTensor:$labels, Forge_Scalar:$dloss,
                       I64Attr:$chunk,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index,
                       DefaultValuedAttr<F64Attr, "0.0">:$z_weight);
  let results = (outs Forge_FloatTensor:$dhidden, Forge_FloatTensor:$dweight);
  let assemblyFormat = [{
    $hidden `,` $weight `,` $labels `,` $dloss `chunk` `(` $chunk `)` attr-dict
    `:` type($hidden) `,` type($weight) `,` type($labels) `,` type($dloss)
  }];
}

//===----------------------------------------------------------------------===//
// Optimizer (created by forge-build-optimizer)
//===----------------------------------------------------------------------===//

def Forge_SetParamOp : Forge_Op<"set_param", [MemoryEffects<[MemWrite]>,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "Overwrites a parameter or buffer.";
  let description = [{
    Stores `value` as the new value of the parameter (or buffer) `name`; later
    `forge.get_param` reads see it. Used for gradient accumulation and the
    optimizer update, which the runtime performs in place.

    Example:

    ```mlir
    forge.set_param @"grad.norm.weight", %acc : tensor<256xbf16>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$name, AnyRankedTensor:$value);
  let assemblyFormat = "$name `,` $value attr-dict `:` type($value)";
}

def Forge_GlobalNormOp : Forge_Op<"global_norm", [Pure]> {
  let summary = "L2 norm over a list of tensors.";
  let description = [{
    `sqrt(sum over tensors and elements of x^2)`, accumulated in f32: the
    gradient norm that clipping uses and that is logged (before clipping).
    With `squared` the sum itself (no square root): for gradients sharded
    over ranks, whose squared partial norms are summed across the group
    before `forge.sqrt`.

    Example:

    ```mlir
    %n = forge.global_norm %g0, %g1 : tensor<256x256xbf16>, tensor<256xbf16> -> tensor<f32>
    %s = forge.global_norm %g0 {squared} : tensor<64x256xbf16> -> tensor<f32>
    ```
  }];
  let arguments = (ins Variadic<Forge_FloatTensor>:$inputs, UnitAttr:$squared);
  let results = (outs Forge_Scalar:$result);
  let assemblyFormat = "$inputs attr-dict `:` type($inputs) `->` type($result)";
}

def Forge_SqrtOp : Forge_Op<"sqrt", [Pure, SameOperandsAndResultType]> {
  let summary = "Square root of an f32 scalar.";
  let description = [{
    The global gradient norm of sharded gradients: the square root of the
    group-wide sum of the shards' `forge.global_norm {squared}`.

    Example:

    ```mlir
    %n = forge.sqrt %s : tensor<f32>
    ```
  }];
  let arguments = (ins Forge_Scalar:$input);
  let results = (outs Forge_Scalar:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def Forge_ClipCoefficientOp : Forge_Op<"clip_coefficient", [Pure,
    AllTypesMatch<["norm", "result"]>]> {
  let summary = "Gradient clipping coefficient.";
  let description = [{
    `min(1, max_norm / (norm + 1e-6))`, as `torch.nn.utils.clip_grad_norm_`.

    Example:

    ```mlir
    %c = forge.clip_coefficient %norm max_norm(1.000000e+00) : tensor<f32>
    ```
  }];
  let arguments = (ins Forge_Scalar:$norm, F64Attr:$max_norm);
  let results = (outs Forge_Scalar:$result);
  let assemblyFormat = "$norm `max_norm` `(` $max_norm `)` attr-dict `:` type($norm)";
  let hasVerifier = 1;
}

def Forge_LrFactorOp : Forge_Op<"lr_factor", [Pure]> {
  let summary = "Learning-rate factor of a schedule at a step.";
  let description = [{
    The multiplicative factor `f(step)` of reference §4.4 for `schedule`
    (cosine, linear, wsd, constant, rex, none) with linear warmup over
    `warmup` steps, decay length `decay` (0 = the default for the schedule),
    `stable` steps (wsd), `min_lr_ratio`, `max_steps`, the wsd cooldown shape
    and rex's alpha. `step` counts completed optimizer steps, so the first
    update uses `f(0)` (0 with warmup, as KempnerForge's LambdaLR).

    With `W = warmup` and `r = min_lr_ratio`: `f = step / W` while
    `step < W`; wsd then holds 1 for `stable` steps. The decay length is
    `T = decay`, or `max_steps - W` (`max_steps - W - stable` for wsd);
    progress `p = min(1, (step - W [- stable]) / T)`, so after the window the
    factor stays at its end value. cosine: `r + (1-r)(1 + cos(pi p))/2`;
    linear: `1 - (1-r) p`; wsd cools down with either of those or sqrt:
    `r + (1-r) sqrt(1-p)`; rex: `max(r, (1-p)^rex_alpha)` with `T` taken as
    `max(T, 1)`; for the others a `T <= 0` means no decay (factor 1).
    constant is 1 after warmup, none is 1 throughout (no warmup).

    Example:

    ```mlir
    %f = forge.lr_factor %step {schedule = "cosine", warmup = 10 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 1.000000e-01 : f64, max_steps = 100 : i64, wsd_decay = "cosine", rex_alpha = 1.000000e+00 : f64} : tensor<i64> -> tensor<f32>
    ```
  }];
  let arguments = (ins 0DTensorOf<[I64]>:$step, StrAttr:$schedule,
                       I64Attr:$warmup, I64Attr:$decay, I64Attr:$stable,
                       F64Attr:$min_lr_ratio, I64Attr:$max_steps,
                       StrAttr:$wsd_decay, F64Attr:$rex_alpha);
  let results = (outs Forge_Scalar:$result);
  let assemblyFormat = "$step attr-dict `:` type($step) `->` type($result)";
  let hasVerifier = 1;
}

def Forge_AdamWUpdateOp : Forge_Op<"adamw_update", [Pure,
    AllTypesMatch<["param", "grad", "exp_avg", "exp_avg_sq", "new_param",
                   "new_exp_avg", "new_exp_avg_sq"]>]> {
  let summary = "One AdamW step of one parameter.";
  let description = [{
    With `g = grad * clip` and `t = step + 1`:
    `m = b1*m + (1-b1)*g`, `v = b2*v + (1-b2)*g^2`,
    `p = p*(1 - lr*wd) - lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)`
    (decoupled weight decay, as `torch.optim.AdamW`). `weight_decay` is the
    parameter's group value: 0 for 1-D parameters and biases.

    Example:

    ```mlir
    %p1, %m1, %v1 = forge.adamw_update %p, %g, %m, %v, %lr, %clip, %step betas(9.000000e-01, 9.500000e-01) eps(1.000000e-08) weight_decay(1.000000e-01) : tensor<256x256xbf16>, tensor<f32>, tensor<f32>, tensor<i64>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$param, Forge_FloatTensor:$grad,
                       Forge_FloatTensor:$exp_avg, Forge_FloatTensor:$exp_avg_sq,
                       Forge_Scalar:$lr, Forge_Scalar:$clip,
                       0DTensorOf<[I64]>:$step, F64Attr:$beta1, F64Attr:$beta2,
                       F64Attr:$eps, F64Attr:$weight_decay);
  let results = (outs Forge_FloatTensor:$new_param, Forge_FloatTensor:$new_exp_avg,
                      Forge_FloatTensor:$new_exp_avg_sq);
  let assemblyFormat = [{
    $param `,` $grad `,` $exp_avg `,` $exp_avg_sq `,` $lr `,` $clip `,` $step
    `betas` `(` $beta1 `,` $beta2 `)` `eps` `(` $eps `)`
    `weight_decay` `(` $weight_decay `)` attr-dict `:` type($param) `,`
    type($lr) `,` type($clip) `,` type($step)
  }];
  let hasVerifier = 1;
}

def Forge_LionUpdateOp : Forge_Op<"lion_update", [Pure,
    AllTypesMatch<["param", "grad", "exp_avg", "new_param", "new_exp_avg"]>]> {
  let summary = "One Lion step of one parameter.";
  let description = [{
    With `g = grad * clip` (reference §4.3):
    `u = sign(b1*m + (1-b1)*g)`, `p = p*(1 - lr*wd) - lr*u`,
    `m = b2*m + (1-b2)*g`; `sign(0) = 0`. `weight_decay` is the parameter's
    group value, as for AdamW.

    Example:

    ```mlir
    %p1, %m1 = forge.lion_update %p, %g, %m, %lr, %clip betas(9.000000e-01, 9.900000e-01) weight_decay(1.000000e-01) : tensor<256x256xbf16>, tensor<f32>, tensor<f32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$param, Forge_FloatTensor:$grad,
                       Forge_FloatTensor:$exp_avg, Forge_Scalar:$lr,
                       Forge_Scalar:$clip, F64Attr:$beta1, F64Attr:$beta2,
                       F64Attr:$weight_decay);
  let results = (outs Forge_FloatTensor:$new_param, Forge_FloatTensor:$new_exp_avg);
  let assemblyFormat = [{
    $param `,` $grad `,` $exp_avg `,` $lr `,` $clip
    `betas` `(` $beta1 `,` $beta2 `)` `weight_decay` `(` $weight_decay `)`
    attr-dict `:` type($param) `,` type($lr) `,` type($clip)
  }];
  let hasVerifier = 1;
}

def Forge_MuonUpdateOp : Forge_Op<"muon_update", [Pure,
    AllTypesMatch<["param", "grad", "momentum_buffer", "new_param",
                   "new_momentum_buffer"]>]> {
  let summary = "One Muon step of one matrix parameter.";
  let description = [{
    With `g = grad * clip` (reference §4.3): `buf = momentum*buf + g` (plain
    momentum, no Nesterov); `G` is `buf` flattened to `[m, n]` (`m` = dim 0,
    `n` = the product of the other dims); Newton–Schulz in f32:
    `X = G / (||G||_F + 1e-7)`, then `ns_steps` times `A = X X^T`,
    `B = b A + c A^2`, `X = a X + B X` with
    `(a, b, c) = (3.4445, -4.7750, 2.0315)`; finally
    `p = p*(1 - lr*wd) - lr * sqrt(max(1, m/n)) * X`. `X` is never
    transposed, also when `m > n` (KempnerForge's Muon does not), so `A` is
    `[m, m]`.

    forge-build-optimizer uses it for Muon-eligible parameters only (>= 2-D
    with `max(m, n) / min(m, n) <= 10`); the others get `forge.adamw_update`.
    `weight_decay` is the parameter's group value, as for AdamW.

    Example:

    ```mlir
    %p1, %b1 = forge.muon_update %p, %g, %buf, %lr, %clip momentum(0.94999999999999996) ns_steps(5) weight_decay(1.000000e-01) : tensor<256x256xbf16>, tensor<f32>, tensor<f32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$param, Forge_FloatTensor:$grad,
                       Forge_FloatTensor:$momentum_buffer, Forge_Scalar:$lr,
                       Forge_Scalar:$clip, F64Attr:$momentum, I64Attr:$ns_steps,
                       F64Attr:$weight_decay);
  let results = (outs Forge_FloatTensor:$new_param,
                      Forge_FloatTensor:$new_momentum_buffer);
  let assemblyFormat = [{
    $param `,` $grad `,` $momentum_buffer `,` $lr `,` $clip
    `momentum` `(` $momentum `)` `ns_steps` `(` $ns_steps `)`
    `weight_decay` `(` $weight_decay `)` attr-dict `:` type($param) `,`
    type($lr) `,` type($clip)
  }];
  let hasVerifier = 1;
}

// Schedule-free AdamW's two scalars, k and weight_sum, each held as an
// unevaluated f32 pair (hi + lo): plan buffers are f32, and the pair keeps
// the ~48 bits of KempnerForge's Python int and float.
def Forge_ScheduleFreeState : ConfinedType<TensorRankOf<[F32], [1]>,
    [CPred<"::llvm::cast<::mlir::RankedTensorType>($_self).getDimSize(0) == 4">],
    "tensor<4xf32> schedule-free state", "::mlir::TensorType">;

def Forge_ScheduleFreeCountOp : Forge_Op<"schedule_free_count", [Pure,
    AllTypesMatch<["state", "new_state"]>]> {
  let summary = "Counts a schedule-free AdamW step and its averaging weight.";
  let description = [{
    The per-step scalars of schedule-free AdamW (reference §4.3). `state`
    holds `[k_hi, k_lo, weight_sum_hi, weight_sum_lo]` (`k = k_hi + k_lo`,
    the same for `weight_sum`: an f32 pair keeps double precision in f32
    plan buffers). The result is the state after one more step:
    `k = k + 1`, `warm = min(1, k / warmup)` (1 when `warmup` is 0),
    `weight_sum = weight_sum + lr * warm * (1 - beta1)`, with `lr` the
    scheduled learning rate. The per-parameter updates of the same step read
    the result.

    Example:

    ```mlir
    %s1 = forge.schedule_free_count %s, %lr beta1(9.000000e-01) warmup(100) : tensor<4xf32>, tensor<f32>
    ```
  }];
  let arguments = (ins Forge_ScheduleFreeState:$state, Forge_Scalar:$lr,
                       F64Attr:$beta1, I64Attr:$warmup);
  let results = (outs Forge_ScheduleFreeState:$new_state);
  let assemblyFormat = [{
    $state `,` $lr `beta1` `(` $beta1 `)` `warmup` `(` $warmup `)` attr-dict
    `:` type($state) `,` type($lr)
  }];
  let hasVerifier = 1;
}

def Forge_ScheduleFreeAdamWUpdateOp : Forge_Op<"schedule_free_adamw_update",
    [Pure, AllTypesMatch<["param", "grad", "z", "exp_avg_sq", "x", "new_param",
                          "new_z", "new_exp_avg_sq", "new_x"]>]> {
  let summary = "One schedule-free AdamW step of one parameter.";
  let description = [{
    Reference §4.3, with `g = grad * clip` and `k`, `weight_sum` read from
    `state`, the result of this step's `forge.schedule_free_count`:
    `eta = lr * min(1, k / warmup)` (`lr` when `warmup` is 0),
    `v = b2*v + (1-b2)*g^2`, `z = z - eta * g / (sqrt(v/(1-b2^k)) + eps)`,
    `z = z*(1 - eta*wd)`, `c = eta*(1-b1) / weight_sum` (0 while
    `weight_sum` is 0), `x = z` on the first step (`k = 1`) else
    `x = x + c*(z - x)`, and the parameter becomes
    `y = (1-b1)*z + b1*x`, where the next gradients are taken.

    On the first step `z` starts from the parameter itself (the state
    buffers are still zero then), as KempnerForge creates `z` from the
    parameter when the optimizer first sees it; so no initialization
    program is needed, and a resumed run keeps its restored `z`.

    Example:

    ```mlir
    %p1, %z1, %v1, %x1 = forge.schedule_free_adamw_update %p, %g, %z, %v, %x, %lr, %clip, %s betas(9.000000e-01, 0.99899999999999999) eps(1.000000e-08) weight_decay(1.000000e-01) warmup(0) : tensor<256x256xbf16>, tensor<f32>, tensor<f32>, tensor<4xf32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$param, Forge_FloatTensor:$grad,
                       Forge_FloatTensor:$z, Forge_FloatTensor:$exp_avg_sq,
                       Forge_FloatTensor:$x, Forge_Scalar:$lr,
                       Forge_Scalar:$clip, Forge_ScheduleFreeState:$state,
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$eps,
                       F64Attr:$weight_decay, I64Attr:$warmup);
  let results = (outs Forge_FloatTensor:$new_param, Forge_FloatTensor:$new_z,
                      Forge_FloatTensor:$new_exp_avg_sq,
                      Forge_FloatTensor:$new_x);
  let assemblyFormat = [{
    $param `,` $grad `,` $z `,` $exp_avg_sq `,` $x `,` $lr `,` $clip `,` $state
    `betas` `(` $beta1 `,` $beta2 `)` `eps` `(` $eps `)`
    `weight_decay` `(` $weight_decay `)` `warmup` `(` $warmup `)` attr-dict
    `:` type($param) `,` type($lr) `,` type($clip) `,` type($state)
  }];
  let hasVerifier = 1;
}

def Forge_ScheduleFreeInterpolateOp : Forge_Op<"schedule_free_interpolate",
    [Pure, AllTypesMatch<["param", "z", "x", "result"]>]> {
  let summary = "A schedule-free AdamW point between z and x.";
  let description = [{
    `result = (1 - weight)*z + weight*x`, or `param` unchanged while no
    step has been taken (`k = 0` in `state`; `z` and `x` do not exist yet,
    as in KempnerForge). With `weight = 1` it is the averaged point `x`
    that evaluation uses (`@eval_params`), with `weight = beta1` the
    training point `y` (`@train_params`); reference §4.3.

    Example:

    ```mlir
    %e = forge.schedule_free_interpolate %p, %z, %x, %s weight(1.000000e+00) : tensor<256x256xbf16>, tensor<4xf32>
    ```
  }];
  let arguments = (ins Forge_FloatTensor:$param, Forge_FloatTensor:$z,
                       Forge_FloatTensor:$x, Forge_ScheduleFreeState:$state,
                       F64Attr:$weight);
  let results = (outs Forge_FloatTensor:$result);
  let assemblyFormat = [{
    $param `,` $z `,` $x `,` $state `weight` `(` $weight `)` attr-dict `:`
    type($param) `,` type($state)
  }];
  let hasVerifier = 1;
}

#endif // FORGE_OPS_TD
