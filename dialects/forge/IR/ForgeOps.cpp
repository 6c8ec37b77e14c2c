//===- ForgeOps.cpp - forge graph op verifiers ----------------------------===//
//
// Shapes are static everywhere in forge IR: the plan is laid out ahead of
// time. Each verifier names the operand and the dimensions that disagree.
//
//===----------------------------------------------------------------------===//

#include "dialects/forge/IR/ForgeOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"

#include <string>

using namespace mlir;
using namespace forge;

namespace {

RankedTensorType tensorOf(Value v) {
  return cast<RankedTensorType>(v.getType());
}

std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (auto [i, d] : llvm::enumerate(shape)) {
    if (i)
      s += ", ";
    s += ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d);
  }
  return s + "]";
}

/// Every tensor in forge IR is statically shaped.
LogicalResult requireStatic(Operation *op) {
  for (Value v : llvm::concat<Value>(op->getOperands(), op->getResults()))
    if (auto t = dyn_cast<RankedTensorType>(v.getType()))
      if (!t.hasStaticShape())
        return op->emitOpError("requires static shapes, got ") << t;
  return success();
}

LogicalResult requireRank(Operation *op, Value v, StringRef name,
                          int64_t rank) {
  if (tensorOf(v).getRank() != rank)
    return op->emitOpError() << "expects " << name << " of rank " << rank
                             << ", got " << tensorOf(v);
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// ParamOp / GetParamOp
//===----------------------------------------------------------------------===//

LogicalResult ParamOp::verify() {
  auto type = dyn_cast<RankedTensorType>(getType());
  if (!type || !type.hasStaticShape())
    return emitOpError("requires a statically shaped tensor type, got ")
           << getType();
  if (!isa<FloatType>(type.getElementType()))
    return emitOpError("requires a floating-point element type, got ")
           << type.getElementType();
  bool normal = getInit() == InitKind::normal;
  if (normal && !getStd())
    return emitOpError("with init 'normal' requires a std");
  if (!normal && getStd())
    return emitOpError("with init '")
           << stringifyInitKind(getInit()) << "' takes no std";
  if (getStd() && !(getStd()->convertToDouble() > 0))
    return emitOpError("requires std > 0, got ") << getStd()->convertToDouble();
  return success();
}

LogicalResult GetParamOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto param =
      symbolTable.lookupNearestSymbolFrom<ParamOp>(*this, getNameAttr());
  if (!param)
    return emitOpError("'") << getName() << "' does not name a forge.param";
  if (param.getType() != getType())
    return emitOpError("result type ")
           << getType() << " does not match the type " << param.getType()
           << " of parameter '" << getName() << "'";
  return success();
}

LogicalResult SetParamOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto param =
      symbolTable.lookupNearestSymbolFrom<ParamOp>(*this, getNameAttr());
  if (!param)
    return emitOpError("'") << getName() << "' does not name a forge.param";
  if (param.getType() != getValue().getType())
    return emitOpError("value type ")
           << getValue().getType() << " does not match the type "
           << param.getType() << " of parameter '" << getName() << "'";
  return success();
}

//===----------------------------------------------------------------------===//
// Dense compute
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(requireRank(*this, getTable(), "a table", 2)))
    return failure();
  auto table = tensorOf(getTable()), ids = tensorOf(getIds()),
       result = tensorOf(getResult());
  SmallVector<int64_t> want(ids.getShape());
  want.push_back(table.getDimSize(1));
  if (result.getShape() != ArrayRef<int64_t>(want) ||
      result.getElementType() != table.getElementType())
    return emitOpError("result must be ")
           << RankedTensorType::get(want, table.getElementType())
           << " (ids shape + [dim]), got " << result;
  return success();
}

LogicalResult LinearOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(requireRank(*this, getWeight(), "a [out, in] weight", 2)))
    return failure();
  auto x = tensorOf(getInput()), w = tensorOf(getWeight()),
       result = tensorOf(getResult());
  if (x.getRank() < 1)
    return emitOpError("expects an input of rank >= 1");
  if (x.getShape().back() != w.getDimSize(1))
    return emitOpError("input features (")
           << x.getShape().back() << ") do not match the weight's in ("
           << w.getDimSize(1) << "); the weight is [out, in]";
  if (x.getElementType() != w.getElementType())
    return emitOpError("input and weight element types differ: ")
           << x.getElementType() << " vs " << w.getElementType();
  SmallVector<int64_t> want(x.getShape());
  want.back() = w.getDimSize(0);
  if (result.getShape() != ArrayRef<int64_t>(want) ||
      result.getElementType() != x.getElementType())
    return emitOpError("result must be ")
           << RankedTensorType::get(want, x.getElementType()) << ", got "
           << result;
  return success();
}

LogicalResult GroupedLinearOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(requireRank(*this, getInput(), "rows", 2)) ||
      failed(requireRank(*this, getWeight(), "a [experts, ., .] weight", 3)) ||
      failed(requireRank(*this, getGroupSizes(), "group sizes", 1)))
    return failure();
  auto x = tensorOf(getInput()), w = tensorOf(getWeight()),
       result = tensorOf(getResult());
  bool outIn = getLayout() == WeightLayout::out_in;
  int64_t in = w.getDimSize(outIn ? 2 : 1), out = w.getDimSize(outIn ? 1 : 2);
  if (tensorOf(getGroupSizes()).getDimSize(0) != w.getDimSize(0))
    return emitOpError("has ")
           << tensorOf(getGroupSizes()).getDimSize(0) << " group sizes for "
           << w.getDimSize(0) << " experts";
  if (x.getDimSize(1) != in)
    return emitOpError("input features (")
           << x.getDimSize(1) << ") do not match the weight's in (" << in
           << ") for layout " << stringifyWeightLayout(getLayout());
  if (x.getElementType() != w.getElementType())
    return emitOpError("input and weight element types differ: ")
           << x.getElementType() << " vs " << w.getElementType();
  if (result.getShape() != ArrayRef<int64_t>{x.getDimSize(0), out} ||
      result.getElementType() != x.getElementType())
    return emitOpError("result must be ")
           << RankedTensorType::get({x.getDimSize(0), out}, x.getElementType())
           << ", got " << result;
  return success();
}

LogicalResult StackOp::verify() {
  if (failed(requireStatic(*this)))
    return failure();
  if (getInputs().empty())
    return emitOpError("requires at least one input");
  auto in = tensorOf(getInputs().front());
  SmallVector<int64_t> want{static_cast<int64_t>(getInputs().size())};
  llvm::append_range(want, in.getShape());
  auto wantType = RankedTensorType::get(want, in.getElementType());
  if (getResult().getType() != wantType)
    return emitOpError("result must be ")
           << wantType << " (" << getInputs().size() << " x input), got "
           << getResult().getType();
  return success();
}

/// Norm weights (and bias) are vectors over the input's last dimension.
static LogicalResult verifyNormParam(Operation *op, Value input, Value param,
                                     StringRef name, double eps) {
  if (failed(requireStatic(op)))
    return failure();
  auto x = tensorOf(input), p = tensorOf(param);
  if (x.getRank() < 1)
    return op->emitOpError("expects an input of rank >= 1");
  if (p.getRank() != 1 || p.getDimSize(0) != x.getShape().back())
    return op->emitOpError()
           << "expects " << name << " of shape [" << x.getShape().back()
           << "] (the input's last dimension), got " << p;
  if (p.getElementType() != x.getElementType())
    return op->emitOpError()
           << name << " element type " << p.getElementType()
           << " differs from the input's " << x.getElementType();
  if (!(eps > 0))
    return op->emitOpError("requires eps > 0, got ") << eps;
  return success();
}

LogicalResult RMSNormOp::verify() {
  return verifyNormParam(*this, getInput(), getWeight(), "weight",
                         getEps().convertToDouble());
}

LogicalResult LayerNormOp::verify() {
  double eps = getEps().convertToDouble();
  if (failed(verifyNormParam(*this, getInput(), getWeight(), "weight", eps)))
    return failure();
  return verifyNormParam(*this, getInput(), getBias(), "bias", eps);
}

LogicalResult ReshapeOp::verify() {
  if (failed(requireStatic(*this)))
    return failure();
  auto in = tensorOf(getInput()), out = tensorOf(getResult());
  if (in.getElementType() != out.getElementType())
    return emitOpError("cannot change the element type (")
           << in.getElementType() << " -> " << out.getElementType() << ")";
  if (in.getNumElements() != out.getNumElements())
    return emitOpError("cannot reshape ")
           << shapeStr(in.getShape()) << " (" << in.getNumElements()
           << " elements) to " << shapeStr(out.getShape()) << " ("
           << out.getNumElements() << " elements)";
  return success();
}

LogicalResult RopeOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(
          requireRank(*this, getInput(), "[batch, seq, heads, head_dim]", 4)))
    return failure();
  int64_t hd = tensorOf(getInput()).getDimSize(3);
  if (hd % 2 != 0)
    return emitOpError("requires an even head_dim for rotate-half, got ") << hd;
  if (!(getTheta().convertToDouble() > 0))
    return emitOpError("requires theta > 0, got ")
           << getTheta().convertToDouble();
  return success();
}

LogicalResult AttentionOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(
          requireRank(*this, getQ(), "q [batch, seq, heads, head_dim]", 4)) ||
      failed(requireRank(*this, getK(), "k [batch, seq, kv_heads, head_dim]",
                         4)) ||
      failed(
          requireRank(*this, getV(), "v [batch, seq, kv_heads, head_dim]", 4)))
    return failure();
  auto q = tensorOf(getQ()), k = tensorOf(getK()), v = tensorOf(getV());
  if (k != v)
    return emitOpError("k and v must have the same type, got ")
           << k << " and " << v;
  if (q.getDimSize(0) != k.getDimSize(0) ||
      q.getDimSize(1) != k.getDimSize(1) ||
      q.getDimSize(3) != k.getDimSize(3) ||
      q.getElementType() != k.getElementType())
    return emitOpError("q ")
           << q << " and k " << k
           << " disagree on batch, seq, head_dim or element type";
  if (q.getDimSize(2) % k.getDimSize(2) != 0)
    return emitOpError("kv heads (")
           << k.getDimSize(2) << ") must divide query heads ("
           << q.getDimSize(2) << ")";
  if (getDocIds()) {
    auto d = tensorOf(getDocIds());
    if (d.getShape() != ArrayRef<int64_t>{q.getDimSize(0), q.getDimSize(1)})
      return emitOpError("doc_ids must be [batch, seq] = [")
             << q.getDimSize(0) << ", " << q.getDimSize(1) << "], got " << d;
  }
  if (tensorOf(getResult()) != q)
    return emitOpError("result must have the type of q (")
           << q << "), got " << getResult().getType();
  if (!(getScale().convertToDouble() > 0))
    return emitOpError("requires scale > 0, got ")
           << getScale().convertToDouble();
  return success();
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

/// Routers: logits [tokens, experts] -> weights and indices [tokens, k]
/// (f32, i64) and per-expert probabilities/scores [tokens, experts] (f32).
static LogicalResult verifyRouter(Operation *op, Value logits, int64_t k,
                                  Value weights, Value indices, Value probs) {
  if (failed(requireStatic(op)) ||
      failed(requireRank(op, logits, "logits [tokens, experts]", 2)))
    return failure();
  auto l = tensorOf(logits);
  int64_t tokens = l.getDimSize(0), experts = l.getDimSize(1);
  if (k < 1 || k > experts)
    return op->emitOpError("k must be in [1, ")
           << experts << "] (the number of experts), got " << k;
  Builder b(op->getContext());
  auto wantW = RankedTensorType::get({tokens, k}, b.getF32Type());
  auto wantI = RankedTensorType::get({tokens, k}, b.getI64Type());
  auto wantP = RankedTensorType::get({tokens, experts}, b.getF32Type());
  if (weights.getType() != wantW)
    return op->emitOpError("weights must be ")
           << wantW << ", got " << weights.getType();
  if (indices.getType() != wantI)
    return op->emitOpError("indices must be ")
           << wantI << ", got " << indices.getType();
  if (probs.getType() != wantP)
    return op->emitOpError("per-expert output must be ")
           << wantP << ", got " << probs.getType();
  return success();
}

LogicalResult SoftmaxTopKOp::verify() {
  return verifyRouter(*this, getLogits(), getKAttr().getInt(), getWeights(),
                      getIndices(), getProbs());
}

LogicalResult SigmoidTopKOp::verify() {
  if (failed(verifyRouter(*this, getLogits(), getKAttr().getInt(), getWeights(),
                          getIndices(), getScores())))
    return failure();
  auto bias = tensorOf(getBias());
  int64_t experts = tensorOf(getLogits()).getDimSize(1);
  if (bias.getShape() != ArrayRef<int64_t>{experts})
    return emitOpError("bias must be [") << experts << "], got " << bias;
  StringRef s = getBiasSchedule();
  if (s != "constant" && s != "cosine_decay" && s != "linear_warmup")
    return emitOpError("bias_schedule must be constant, cosine_decay or "
                       "linear_warmup, got '")
           << s << "'";
  return success();
}

LogicalResult MoeCapacityOp::verify() {
  if (failed(requireStatic(*this)))
    return failure();
  auto i = tensorOf(getIndices()), w = tensorOf(getWeights());
  if (i.getRank() != 2 || i.getShape() != w.getShape())
    return emitOpError("indices and weights must both be [tokens, k], got ")
           << i << " and " << w;
  if (getExpertsAttr().getInt() < 1)
    return emitOpError("requires experts >= 1, got ")
           << getExpertsAttr().getInt();
  if (!(getFactor().convertToDouble() > 0))
    return emitOpError("requires a capacity factor > 0, got ")
           << getFactor().convertToDouble();
  return success();
}

LogicalResult MoeDispatchOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(requireRank(*this, getInput(), "input [tokens, dim]", 2)) ||
      failed(requireRank(*this, getIndices(), "indices [tokens, k]", 2)))
    return failure();
  auto x = tensorOf(getInput()), idx = tensorOf(getIndices());
  if (x.getDimSize(0) != idx.getDimSize(0))
    return emitOpError("input has ")
           << x.getDimSize(0) << " tokens but indices have "
           << idx.getDimSize(0);
  int64_t copies = idx.getDimSize(0) * idx.getDimSize(1);
  Builder b(getContext());
  auto wantRows =
      RankedTensorType::get({copies, x.getDimSize(1)}, x.getElementType());
  if (getExpertsAttr().getInt() < 1)
    return emitOpError("requires experts >= 1, got ")
           << getExpertsAttr().getInt();
  auto wantSizes =
      RankedTensorType::get({getExpertsAttr().getInt()}, b.getI64Type());
  auto wantOrder = RankedTensorType::get({copies}, b.getI64Type());
  if (getRows().getType() != wantRows)
    return emitOpError("rows must be ")
           << wantRows << " (tokens * k copies), got " << getRows().getType();
  if (getGroupSizes().getType() != wantSizes)
    return emitOpError("group_sizes must be ")
           << wantSizes << ", got " << getGroupSizes().getType();
  if (getOrder().getType() != wantOrder)
    return emitOpError("order must be ")
           << wantOrder << ", got " << getOrder().getType();
  return success();
}

LogicalResult MoeCombineOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(requireRank(*this, getRows(), "rows [copies, dim]", 2)) ||
      failed(requireRank(*this, getWeights(), "weights [tokens, k]", 2)))
    return failure();
  auto rows = tensorOf(getRows()), w = tensorOf(getWeights());
  int64_t copies = w.getDimSize(0) * w.getDimSize(1);
  if (rows.getDimSize(0) != copies)
    return emitOpError("has ") << rows.getDimSize(0) << " rows for " << copies
                               << " (tokens * k) routed copies";
  if (tensorOf(getOrder()).getShape() != ArrayRef<int64_t>{copies})
    return emitOpError("order must be [")
           << copies << "], got " << getOrder().getType();
  if (tensorOf(getGroupSizes()).getRank() != 1)
    return emitOpError("group_sizes must be [experts], got ")
           << getGroupSizes().getType();
  auto want = RankedTensorType::get({w.getDimSize(0), rows.getDimSize(1)},
                                    rows.getElementType());
  if (getResult().getType() != want)
    return emitOpError("result must be ")
           << want << ", got " << getResult().getType();
  return success();
}

LogicalResult MoeAuxLossOp::verify() {
  if (failed(requireStatic(*this)))
    return failure();
  auto p = tensorOf(getProbs()), i = tensorOf(getIndices());
  if (p.getRank() != 2 || i.getRank() != 2 ||
      p.getDimSize(0) != i.getDimSize(0))
    return emitOpError("expects probs [tokens, experts] and indices "
                       "[tokens, k] over the same tokens, got ")
           << p << " and " << i;
  return success();
}

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

LogicalResult ZLossOp::verify() {
  if (failed(requireStatic(*this)))
    return failure();
  return requireRank(*this, getLogits(), "logits [rows, classes]", 2);
}

/// Labels have the logits' shape without the class dimension.
static LogicalResult verifyLabels(Operation *op, ArrayRef<int64_t> rows,
                                  Value labels) {
  auto l = tensorOf(labels);
  if (l.getShape() != rows)
    return op->emitOpError("labels must have shape ")
           << shapeStr(rows)
           << " (the logits without the vocab dimension), got "
           << shapeStr(l.getShape());
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  if (failed(requireStatic(*this)))
    return failure();
  auto logits = tensorOf(getLogits());
  if (logits.getRank() < 2)
    return emitOpError("expects logits of rank >= 2, got ") << logits;
  return verifyLabels(*this, logits.getShape().drop_back(), getLabels());
}

LogicalResult ChunkedCrossEntropyOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(requireRank(*this, getWeight(), "a [vocab, dim] head weight", 2)))
    return failure();
  auto h = tensorOf(getHidden()), w = tensorOf(getWeight());
  if (h.getRank() < 2 || h.getShape().back() != w.getDimSize(1))
    return emitOpError("hidden ")
           << h << " must end in the head's dim (" << w.getDimSize(1) << ")";
  if (getChunkAttr().getInt() < 1)
    return emitOpError("requires chunk >= 1, got ") << getChunkAttr().getInt();
  if (getZWeight().convertToDouble() < 0)
    return emitOpError("requires z_weight >= 0, got ")
           << getZWeight().convertToDouble();
  return verifyLabels(*this, h.getShape().drop_back(), getLabels());
}

//===----------------------------------------------------------------------===//
// Constants and backward ops
//===----------------------------------------------------------------------===//

LogicalResult FillOp::verify() { return requireStatic(*this); }

LogicalResult UnstackOp::verify() {
  if (failed(requireStatic(*this)))
    return failure();
  auto in = tensorOf(getInput());
  if (in.getRank() < 1 ||
      in.getDimSize(0) != static_cast<int64_t>(getResults().size()))
    return emitOpError("needs one result per slice of the leading dimension (")
           << (in.getRank() ? in.getDimSize(0) : 0) << "), got "
           << getResults().size();
  auto want =
      RankedTensorType::get(in.getShape().drop_front(), in.getElementType());
  for (Value r : getResults())
    if (r.getType() != want)
      return emitOpError("results must be ") << want << ", got " << r.getType();
  return success();
}

LogicalResult EmbeddingGradOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(requireRank(*this, getResult(), "a [vocab, dim] result", 2)))
    return failure();
  auto dout = tensorOf(getDout()), ids = tensorOf(getIds()),
       table = tensorOf(getResult());
  SmallVector<int64_t> want(ids.getShape());
  want.push_back(table.getDimSize(1));
  if (dout.getShape() != ArrayRef<int64_t>(want))
    return emitOpError("dout must be ids shape + [dim] = ")
           << shapeStr(want) << ", got " << shapeStr(dout.getShape());
  return success();
}

LogicalResult LinearGradInputOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(requireRank(*this, getWeight(), "a [out, in] weight", 2)))
    return failure();
  auto dy = tensorOf(getDy()), w = tensorOf(getWeight()),
       dx = tensorOf(getResult());
  SmallVector<int64_t> want(dy.getShape());
  if (want.empty() || want.back() != w.getDimSize(0))
    return emitOpError("dy must end in the weight's out (")
           << w.getDimSize(0) << "), got " << dy;
  want.back() = w.getDimSize(1);
  if (dx.getShape() != ArrayRef<int64_t>(want))
    return emitOpError("result must have shape ")
           << shapeStr(want) << ", got " << shapeStr(dx.getShape());
  return success();
}

LogicalResult LinearGradWeightOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(requireRank(*this, getResult(), "a [out, in] result", 2)))
    return failure();
  auto dy = tensorOf(getDy()), x = tensorOf(getInput()),
       dw = tensorOf(getResult());
  if (dy.getRank() != x.getRank() || dy.getRank() < 1 ||
      dy.getShape().drop_back() != x.getShape().drop_back())
    return emitOpError("dy ") << dy << " and input " << x
                              << " must share their leading dimensions";
  if (dw.getDimSize(0) != dy.getShape().back() ||
      dw.getDimSize(1) != x.getShape().back())
    return emitOpError("result must be [")
           << dy.getShape().back() << ", " << x.getShape().back() << "], got "
           << dw;
  return success();
}

/// out/in sizes of a grouped weight in the given layout.
static std::pair<int64_t, int64_t> groupedOutIn(RankedTensorType w,
                                                WeightLayout layout) {
  bool outIn = layout == WeightLayout::out_in;
  return {w.getDimSize(outIn ? 1 : 2), w.getDimSize(outIn ? 2 : 1)};
}

LogicalResult GroupedLinearGradInputOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(requireRank(*this, getDy(), "dy", 2)) ||
      failed(requireRank(*this, getWeight(), "a [experts, ., .] weight", 3)))
    return failure();
  auto dy = tensorOf(getDy()), dx = tensorOf(getResult());
  auto [out, in] = groupedOutIn(tensorOf(getWeight()), getLayout());
  if (dy.getDimSize(1) != out ||
      dx.getShape() != ArrayRef<int64_t>{dy.getDimSize(0), in})
    return emitOpError("expects dy [rows, ")
           << out << "] and a result [rows, " << in << "], got " << dy
           << " and " << dx;
  return success();
}

LogicalResult GroupedLinearGradWeightOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(requireRank(*this, getDy(), "dy", 2)) ||
      failed(requireRank(*this, getInput(), "input", 2)) ||
      failed(requireRank(*this, getResult(), "a [experts, ., .] result", 3)))
    return failure();
  auto dy = tensorOf(getDy()), x = tensorOf(getInput());
  auto [out, in] = groupedOutIn(tensorOf(getResult()), getLayout());
  if (dy.getDimSize(0) != x.getDimSize(0) || dy.getDimSize(1) != out ||
      x.getDimSize(1) != in)
    return emitOpError("expects dy [rows, ")
           << out << "] and input [rows, " << in << "], got " << dy << " and "
           << x;
  return success();
}

/// Router backward: probabilities [T, E], indices and dweights [T, k],
/// dlogits [T, E].
static LogicalResult verifyRouterGrad(Operation *op, Value perExpert,
                                      Value indices, Value dweights,
                                      Value dlogits) {
  if (failed(requireStatic(op)))
    return failure();
  auto p = tensorOf(perExpert), i = tensorOf(indices), dw = tensorOf(dweights),
       dl = tensorOf(dlogits);
  if (p.getRank() != 2 || i.getShape() != dw.getShape() || i.getRank() != 2 ||
      i.getDimSize(0) != p.getDimSize(0))
    return op->emitOpError("expects [tokens, experts] scores with [tokens, k] "
                           "indices and dweights, got ")
           << p << ", " << i << ", " << dw;
  if (dl.getShape() != p.getShape())
    return op->emitOpError("dlogits must be ")
           << shapeStr(p.getShape()) << ", got " << dl;
  return success();
}

LogicalResult SoftmaxTopKGradOp::verify() {
  return verifyRouterGrad(*this, getProbs(), getIndices(), getDweights(),
                          getDlogits());
}

LogicalResult SigmoidTopKGradOp::verify() {
  if (failed(verifyRouterGrad(*this, getScores(), getIndices(), getDweights(),
                              getDlogits())))
    return failure();
  int64_t e = tensorOf(getScores()).getDimSize(1);
  if (tensorOf(getDbias()).getShape() != ArrayRef<int64_t>{e})
    return emitOpError("dbias must be [")
           << e << "], got " << getDbias().getType();
  return success();
}

LogicalResult MoeDispatchGradOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(requireRank(*this, getDrows(), "drows [copies, dim]", 2)) ||
      failed(requireRank(*this, getResult(), "a [tokens, dim] result", 2)))
    return failure();
  auto dr = tensorOf(getDrows()), dx = tensorOf(getResult());
  if (tensorOf(getOrder()).getShape() != ArrayRef<int64_t>{dr.getDimSize(0)})
    return emitOpError("order must be [")
           << dr.getDimSize(0) << "], got " << getOrder().getType();
  if (dx.getDimSize(1) != dr.getDimSize(1) || dx.getDimSize(0) == 0 ||
      dr.getDimSize(0) % dx.getDimSize(0) != 0)
    return emitOpError("result ") << dx
                                  << " must be [tokens, dim] with tokens "
                                     "dividing the copies of "
                                  << dr;
  return success();
}

LogicalResult MoeAuxLossGradOp::verify() {
  if (failed(requireStatic(*this)) ||
      failed(requireRank(*this, getResult(), "a [tokens, experts] result", 2)))
    return failure();
  auto i = tensorOf(getIndices());
  if (i.getRank() != 2 ||
      i.getDimSize(0) != tensorOf(getResult()).getDimSize(0))
    return emitOpError(
               "indices must be [tokens, k] over the result's tokens, got ")
           << i;
  return success();
}

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

LogicalResult ClipCoefficientOp::verify() {
  if (!(getMaxNorm().convertToDouble() > 0))
    return emitOpError("requires max_norm > 0, got ")
           << getMaxNorm().convertToDouble();
  return success();
}

LogicalResult LrFactorOp::verify() {
  StringRef s = getSchedule();
  if (s != "cosine" && s != "linear" && s != "wsd" && s != "constant" &&
      s != "rex" && s != "none")
    return emitOpError("unknown schedule '")
           << s << "'; known: cosine, linear, wsd, constant, rex, none";
  StringRef w = getWsdDecay();
  if (w != "cosine" && w != "linear" && w != "sqrt")
    return emitOpError("wsd_decay must be cosine, linear or sqrt, got '")
           << w << "'";
  if (getWarmupAttr().getInt() < 0 || getDecayAttr().getInt() < 0 ||
      getStableAttr().getInt() < 0 || getMaxStepsAttr().getInt() <= 0)
    return emitOpError("requires warmup, decay, stable >= 0 and max_steps > 0");
  double r = getMinLrRatio().convertToDouble();
  if (!(r >= 0 && r <= 1))
    return emitOpError("requires min_lr_ratio in [0, 1], got ") << r;
  return success();
}

LogicalResult AdamWUpdateOp::verify() {
  double b1 = getBeta1().convertToDouble(), b2 = getBeta2().convertToDouble();
  if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1))
    return emitOpError("requires betas in [0, 1), got (")
           << b1 << ", " << b2 << ")";
  if (!(getEps().convertToDouble() > 0) ||
      getWeightDecay().convertToDouble() < 0)
    return emitOpError("requires eps > 0 and weight_decay >= 0");
  return success();
}

LogicalResult LionUpdateOp::verify() {
  double b1 = getBeta1().convertToDouble(), b2 = getBeta2().convertToDouble();
  if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1))
    return emitOpError("requires betas in [0, 1), got (")
           << b1 << ", " << b2 << ")";
  if (getWeightDecay().convertToDouble() < 0)
    return emitOpError("requires weight_decay >= 0");
  return success();
}

LogicalResult MuonUpdateOp::verify() {
  if (tensorOf(getParam()).getRank() < 2)
    return emitOpError("requires a parameter of rank >= 2, got ")
           << getParam().getType();
  double mu = getMomentum().convertToDouble();
  if (!(mu >= 0 && mu < 1))
    return emitOpError("requires momentum in [0, 1), got ") << mu;
  if (getNsStepsAttr().getInt() < 1)
    return emitOpError("requires ns_steps >= 1, got ")
           << getNsStepsAttr().getInt();
  if (getWeightDecay().convertToDouble() < 0)
    return emitOpError("requires weight_decay >= 0");
  return success();
}

LogicalResult ScheduleFreeCountOp::verify() {
  double b1 = getBeta1().convertToDouble();
  if (!(b1 >= 0 && b1 < 1))
    return emitOpError("requires beta1 in [0, 1), got ") << b1;
  if (getWarmupAttr().getInt() < 0)
    return emitOpError("requires warmup >= 0, got ")
           << getWarmupAttr().getInt();
  return success();
}

LogicalResult ScheduleFreeAdamWUpdateOp::verify() {
  double b1 = getBeta1().convertToDouble(), b2 = getBeta2().convertToDouble();
  if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1))
    return emitOpError("requires betas in [0, 1), got (")
           << b1 << ", " << b2 << ")";
  if (!(getEps().convertToDouble() > 0) ||
      getWeightDecay().convertToDouble() < 0 || getWarmupAttr().getInt() < 0)
    return emitOpError("requires eps > 0, weight_decay >= 0 and warmup >= 0");
  return success();
}

LogicalResult ScheduleFreeInterpolateOp::verify() {
  double w = getWeight().convertToDouble();
  if (!(w >= 0 && w <= 1))
    return emitOpError("requires weight in [0, 1], got ") << w;
  return success();
}

#define GET_OP_CLASSES
#include "dialects/forge/IR/ForgeOps.cpp.inc"

LogicalResult Fp8CastOp::verify() {
  if (getFormat() != "e4m3" && getFormat() != "e5m2")
    return emitOpError("format must be e4m3 or e5m2, got '")
           << getFormat() << "'";
  return success();
}
