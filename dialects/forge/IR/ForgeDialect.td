//===- ForgeDialect.td - The forge graph dialect -----------*- tablegen -*-===//
//
// The forge dialect holds a training step as a tensor-level graph with value
// semantics: module-level parameters named by their KempnerForge FQN, and a
// function from token ids and labels to the loss.
//
//===----------------------------------------------------------------------===//

#ifndef FORGE_DIALECT_TD
#define FORGE_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Forge_Dialect : Dialect {
  let name = "forge";
  let cppNamespace = "::forge";
  let summary = "Tensor-level graph of a transformer training step.";
  let description = [{
    Ops of the forge dialect work on ranked, statically shaped tensors with
    value semantics. A module holds the model's parameters as `forge.param`
    symbols named by their KempnerForge fully qualified name (FQN), each with
    its initializer, and a `func.func @train_step` that computes the loss of
    one micro-batch from token ids and labels. Later passes shard this graph
    (tensor, expert and pipeline parallelism, FSDP), differentiate it and
    lower it to the exec dialect.

    Conventions: linear weights use PyTorch's `[out, in]` layout; activations
    of attention are `[batch, seq, heads, head_dim]`; losses are 0-d `f32`
    tensors.
  }];
  let useDefaultAttributePrinterParser = 1;
}

class Forge_Op<string mnemonic, list<Trait> traits = []>
    : Op<Forge_Dialect, mnemonic, traits>;

def Forge_InitKind : I32EnumAttr<"InitKind", "parameter initializer", [
    I32EnumAttrCase<"normal", 0>,
    I32EnumAttrCase<"ones", 1>,
    I32EnumAttrCase<"zeros", 2>
  ]> {
  let cppNamespace = "::forge";
  let genSpecializedAttr = 0;
}

def Forge_InitKindAttr : EnumAttr<Forge_Dialect, Forge_InitKind, "init"> {
  let assemblyFormat = "$value";
}

def Forge_WeightLayout : I32EnumAttr<"WeightLayout", "expert weight layout", [
    I32EnumAttrCase<"out_in", 0>,
    I32EnumAttrCase<"in_out", 1>
  ]> {
  let cppNamespace = "::forge";
  let genSpecializedAttr = 0;
}

def Forge_WeightLayoutAttr
    : EnumAttr<Forge_Dialect, Forge_WeightLayout, "weight_layout"> {
  let assemblyFormat = "$value";
}

#endif // FORGE_DIALECT_TD
