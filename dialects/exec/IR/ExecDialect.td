//===- ExecDialect.td - The exec launch dialect ------------*- tablegen -*-===//
//
// The last IR of the pipeline: what one rank executes, with every tensor
// resolved to a buffer at a fixed arena offset. The plan writer serializes
// it without looking at forge IR.
//
//===----------------------------------------------------------------------===//

#ifndef EXEC_DIALECT_TD
#define EXEC_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Exec_Dialect : Dialect {
  let name = "exec";
  let cppNamespace = "::forge::exec";
  let summary = "Buffers at arena offsets, kernel and collective launches, streams.";
  let description = [{
    `convert-forge-to-exec` lowers the laid-out forge and dist IR into this
    dialect and `forgec -o` serializes it into plan.bin. A module of exec IR
    holds, in order:

    - one `exec.arena` (first): the bytes each rank allocates once;
    - `exec.buffer` symbols: typed views at arena offsets with a role
      (parameter, gradient, optimizer state, other state, input,
      activation); persistent buffers carry their initializer and, when
      sharded, their shard spec;
    - one `exec.program` per program the runtime runs (`train_step`,
      `optimizer_step`, `eval_step`, ...): its input and output buffers and,
      in its body, the launches in execution order: `exec.launch` (a kernel,
      named after the forge op it came from) and `exec.collective` (a
      collective over a mesh group, with its origin).

    Each launch names its stream: 0 is the compute stream, 1 the
    communication stream. The CPU runtime executes both in program order;
    a device runtime can overlap them.

    Earlier passes record their decisions on forge IR as discardable
    attributes of this dialect, which it verifies where it can:
    `exec.stream` (forge-schedule: 0 or 1 on every op), `exec.offset`,
    `exec.offsets` and `exec.memory` (forge-plan-memory).

    The module keeps `dist.mesh`: the verifier checks every collective's
    group against it, as the dist dialect does.
  }];
  let useDefaultAttributePrinterParser = 1;
  let hasOperationAttrVerify = 1;
  let extraClassDeclaration = [{
    /// The discardable attribute forge-schedule puts on each op.
    static constexpr ::llvm::StringLiteral kStreamAttr = "exec.stream";
  }];
}

class Exec_Op<string mnemonic, list<Trait> traits = []>
    : Op<Exec_Dialect, mnemonic, traits>;

def Exec_Role : I32EnumAttr<"Role", "what a buffer holds", [
    I32EnumAttrCase<"activation", 0>,
    I32EnumAttrCase<"parameter", 1>,
    I32EnumAttrCase<"gradient", 2>,
    I32EnumAttrCase<"optimizer_state", 3>,
    I32EnumAttrCase<"state", 4>,
    I32EnumAttrCase<"input", 5>
  ]> {
  let cppNamespace = "::forge::exec";
  let genSpecializedAttr = 0;
}

def Exec_RoleAttr : EnumAttr<Exec_Dialect, Exec_Role, "role"> {
  let assemblyFormat = "`` $value";
}

def Exec_Init : I32EnumAttr<"Init", "initializer of a persistent buffer", [
    I32EnumAttrCase<"normal", 0>,
    I32EnumAttrCase<"ones", 1>,
    I32EnumAttrCase<"zeros", 2>
  ]> {
  let cppNamespace = "::forge::exec";
  let genSpecializedAttr = 0;
}

def Exec_InitAttr : EnumAttr<Exec_Dialect, Exec_Init, "init"> {
  let assemblyFormat = "`` $value";
}

#endif // EXEC_DIALECT_TD
