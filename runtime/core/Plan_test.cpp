//===- Plan_test.cpp - plan.bin verification rejects every bad plan -------===//

#include "runtime/core/Plan.h"

#include <gtest/gtest.h>

#include <functional>

using namespace forge;
using namespace forge::runtime;

namespace {

/// Knobs to break a small, otherwise valid plan in one way each.
struct Spec {
  uint32_t version = kPlanVersion;
  uint64_t arena = 512;
  uint64_t offset1 = 64;
  uint64_t bytes1 = 64; // 4x4 f32
  const char *op = "forge.relu";
  uint32_t operand = 0;
  int extraOperands = 0;
  uint64_t memoryTotal = 512;
  bool identifier = true;
  bool optimizerProgram = true;
  int64_t tokensSeq = 4;
  int64_t evalInterval = 0;
  bool evalProgram = false;
  int phaseWeights = 0; ///< weights of one phase (the plan has no sources)
  bool pack = false;
  int64_t eos = -1;
};

std::vector<uint8_t> build(const Spec &s) {
  flatbuffers::FlatBufferBuilder fbb;
  auto buffer = [&](const char *name, plan::Role role, plan::DType dt,
                    std::vector<int64_t> shape, uint64_t offset,
                    uint64_t bytes) {
    return plan::CreateBuffer(fbb, fbb.CreateString(name), role, dt,
                              fbb.CreateVector(shape), offset, bytes,
                              plan::Init::none, 0);
  };
  std::vector<flatbuffers::Offset<plan::Buffer>> bufs = {
      buffer("w", plan::Role::parameter, plan::DType::f32, {4, 4}, 0, 64),
      buffer("y", plan::Role::activation, plan::DType::f32, {4, 4}, s.offset1,
             s.bytes1),
      buffer("tokens", plan::Role::input, plan::DType::i64, {1, s.tokensSeq},
             128, 8 * s.tokensSeq),
      buffer("labels", plan::Role::input, plan::DType::i64, {1, 4}, 192, 32),
      buffer("loss", plan::Role::activation, plan::DType::f32, {}, 256, 4),
      buffer("step", plan::Role::input, plan::DType::i64, {}, 320, 8),
      buffer("norm", plan::Role::activation, plan::DType::f32, {}, 384, 4),
      buffer("lr", plan::Role::activation, plan::DType::f32, {}, 448, 4),
      // Sharing norm's bytes is fine: verification checks bounds, not
      // aliasing.
      buffer("lr_scale", plan::Role::input, plan::DType::f32, {}, 384, 4)};
  std::vector<uint32_t> operands = {s.operand};
  for (int i = 0; i < s.extraOperands; ++i)
    operands.push_back(0);
  std::vector<uint32_t> results = {1};
  auto step =
      plan::CreateStep(fbb, fbb.CreateString(s.op), fbb.CreateVector(operands),
                       fbb.CreateVector(results), 0, fbb.CreateString("test"));
  std::vector<flatbuffers::Offset<plan::Step>> steps = {step}, none;
  std::vector<uint32_t> microIn = {2, 3}, microOut = {4}, optIn = {5, 8},
                        optOut = {6, 7};
  std::vector<flatbuffers::Offset<plan::Program>> progs = {plan::CreateProgram(
      fbb, fbb.CreateString("train_step"), fbb.CreateVector(microIn),
      fbb.CreateVector(microOut), fbb.CreateVector(steps))};
  if (s.optimizerProgram)
    progs.push_back(plan::CreateProgram(
        fbb, fbb.CreateString("optimizer_step"), fbb.CreateVector(optIn),
        fbb.CreateVector(optOut), fbb.CreateVector(none)));
  if (s.evalProgram)
    progs.push_back(plan::CreateProgram(
        fbb, fbb.CreateString("eval_step"), fbb.CreateVector(microIn),
        fbb.CreateVector(microOut), fbb.CreateVector(none)));
  auto mem = plan::CreateMemory(fbb, 64, 0, 0, 0, 76, 64, s.memoryTotal);
  std::vector<flatbuffers::Offset<plan::Phase>> phases;
  if (s.phaseWeights)
    phases.push_back(plan::CreatePhase(
        fbb, 5, fbb.CreateVector(std::vector<double>(s.phaseWeights, 1.0))));
  plan::TrainingBuilder tb(fbb);
  auto phaseVec = fbb.CreateVector(phases);
  tb.add_max_steps(10);
  tb.add_grad_accum_steps(1);
  tb.add_batch_size(1);
  tb.add_seq_len(4);
  tb.add_vocab_size(4);
  tb.add_eval_interval(s.evalInterval);
  tb.add_eval_steps(1);
  tb.add_phases(phaseVec);
  tb.add_pack_sequences(s.pack);
  tb.add_eos_id(s.eos);
  auto training = tb.Finish();
  auto root =
      plan::CreatePlan(fbb, s.version, 0, s.arena, fbb.CreateVector(bufs),
                       fbb.CreateVector(progs), mem, training);
  if (s.identifier)
    plan::FinishPlanBuffer(fbb, root);
  else
    fbb.Finish(root);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

std::string verify(const Spec &s) {
  std::vector<uint8_t> b = build(s);
  return verifyPlan(b.data(), b.size());
}

TEST(Plan, ValidPlanVerifies) { EXPECT_EQ(verify(Spec{}), ""); }

TEST(Plan, RejectsEachKindOfMistake) {
  auto expect = [](Spec s, const std::string &part) {
    std::string why = verify(s);
    EXPECT_NE(why.find(part), std::string::npos) << "got: " << why;
  };
  Spec s;
  s.version = kPlanVersion + 1;
  expect(s, "plan format version " + std::to_string(kPlanVersion + 1) +
                ", but this forge-run reads version " +
                std::to_string(kPlanVersion));
  s = Spec{};
  s.identifier = false;
  expect(s, "not a forge plan (missing the FRGP identifier)");
  s = Spec{};
  s.offset1 = 512;
  expect(s, "buffer 1 (y) [512, +64) lies outside the arena of 512 bytes");
  s = Spec{};
  s.offset1 = 32;
  expect(s, "buffer 1 (y) is not 64-byte aligned (offset 32)");
  s = Spec{};
  s.bytes1 = 60;
  expect(s, "buffer 1 (y) holds 60 bytes but its f32 shape needs 64");
  s = Spec{};
  s.op = "forge.frobnicate";
  expect(s, "program train_step step 0 (forge.frobnicate): op unknown to this "
            "forge-run");
  s = Spec{};
  s.extraOperands = 1;
  expect(s, "step 0 (forge.relu): has 2 operands and 1 results");
  s = Spec{};
  s.operand = 9;
  expect(s, "operand refers to buffer 9 but the plan has 9 buffers");
  s = Spec{};
  s.memoryTotal = 128;
  expect(s, "memory total (128) differs from the arena size (512)");
  s = Spec{};
  s.optimizerProgram = false;
  expect(s, "the plan needs an optimizer_step program");
  s = Spec{};
  s.tokensSeq = 8;
  s.arena = 1024;
  s.memoryTotal = 1024;
  expect(s, "train_step input 0 must be i64 [batch_size, seq_len] = [1, 4]");
  s = Spec{};
  s.evalInterval = 10;
  expect(s, "evaluation is on but the plan has no eval_step program");
  s = Spec{};
  s.evalProgram = true;
  expect(s, "the plan has an eval_step program but evaluation is off");
  s = Spec{};
  s.phaseWeights = 2;
  expect(s, "phase at step 5 has 2 weights for 0 data sources");
  s = Spec{};
  s.pack = true;
  expect(s, "pack_sequences needs an EOS id in [0, vocab_size), got -1");
}

TEST(Plan, EvalProgramVerifies) {
  Spec s;
  s.evalInterval = 10;
  s.evalProgram = true;
  EXPECT_EQ(verify(s), "");
}

TEST(Plan, EveryTruncationIsRejected) {
  std::vector<uint8_t> b = build(Spec{});
  for (size_t n = 0; n < b.size(); ++n)
    EXPECT_NE(verifyPlan(b.data(), n), "") << "truncated to " << n;
}

TEST(Plan, CorruptedBytesNeverCrash) {
  // Flipping any single byte either leaves a plan that still verifies (a
  // changed value that is still consistent) or is rejected with a reason;
  // verification itself never reads out of bounds.
  std::vector<uint8_t> good = build(Spec{});
  int rejected = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    for (uint8_t flip : {0x01, 0x80, 0xff}) {
      std::vector<uint8_t> b = good;
      b[i] ^= flip;
      if (!verifyPlan(b.data(), b.size()).empty())
        ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(Plan, KnownOpsAreUnique) {
  const auto &ops = knownOps();
  for (size_t i = 0; i < ops.size(); ++i)
    for (size_t j = i + 1; j < ops.size(); ++j)
      EXPECT_NE(ops[i].name, ops[j].name);
}

} // namespace

// A row-parallel weight [4, 6] split over tp (dim 1), then over dp_shard
// (dim 0): rank (tp 1, dp_shard 1) holds rows 2..3 of columns 3..5.
TEST(Plan, LocalBlockOfNestedSplits) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<plan::Split>> splits = {
      plan::CreateSplit(fbb, 1, fbb.CreateString("tp")),
      plan::CreateSplit(fbb, 0, fbb.CreateString("dp_shard"))};
  std::vector<int64_t> shape = {2, 3}, global = {4, 6};
  auto buf = plan::CreateBuffer(
      fbb, fbb.CreateString("w"), plan::Role::parameter, plan::DType::f32,
      fbb.CreateVector(shape), 0, 24, plan::Init::normal, 0.02,
      fbb.CreateVector(global), fbb.CreateVector(splits));
  fbb.Finish(buf);
  auto *b = flatbuffers::GetRoot<plan::Buffer>(fbb.GetBufferPointer());
  Block block;
  ASSERT_EQ(localBlock(
                b, [](const std::string &) -> int64_t { return 2; },
                [](const std::string &) -> int64_t { return 1; }, block),
            "");
  EXPECT_EQ(block.lo, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(block.global, global);
  std::vector<int64_t> got;
  for (int64_t i = 0; i < 6; ++i) {
    int64_t g = -1;
    EXPECT_TRUE(block.globalIndex(i, g));
    got.push_back(g);
  }
  EXPECT_EQ(got, (std::vector<int64_t>{15, 16, 17, 21, 22, 23}));
  // Three ranks do not divide dim 1.
  EXPECT_NE(localBlock(
                b, [](const std::string &) -> int64_t { return 3; },
                [](const std::string &) -> int64_t { return 0; }, block),
            "");
}

// 7 rows over 2 ranks (FSDP2's padding): blocks of 4, rank 1 holds rows
// 4..6 and one padding row.
TEST(Plan, LocalBlockOfUnevenSplit) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<plan::Split>> splits = {
      plan::CreateSplit(fbb, 0, fbb.CreateString("dp_shard"), 7)};
  std::vector<int64_t> shape = {4, 2}, global = {7, 2};
  auto buf = plan::CreateBuffer(
      fbb, fbb.CreateString("w"), plan::Role::parameter, plan::DType::f32,
      fbb.CreateVector(shape), 0, 32, plan::Init::normal, 0.02,
      fbb.CreateVector(global), fbb.CreateVector(splits));
  fbb.Finish(buf);
  auto *b = flatbuffers::GetRoot<plan::Buffer>(fbb.GetBufferPointer());
  Block block;
  ASSERT_EQ(localBlock(
                b, [](const std::string &) -> int64_t { return 2; },
                [](const std::string &) -> int64_t { return 1; }, block),
            "");
  EXPECT_EQ(block.lo, (std::vector<int64_t>{4, 0}));
  EXPECT_EQ(block.valid, (std::vector<int64_t>{3, 2}));
  int64_t g = -1;
  EXPECT_TRUE(block.globalIndex(5, g));
  EXPECT_EQ(g, 13);
  EXPECT_FALSE(block.globalIndex(6, g));
  EXPECT_FALSE(block.globalIndex(7, g));
}
