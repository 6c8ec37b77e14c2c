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
  uint64_t arena = 256;
  uint64_t offset1 = 64;
  uint64_t bytes1 = 64; // 4x4 f32
  const char *op = "forge.relu";
  uint32_t operand = 0;
  int extraOperands = 0;
  uint64_t memoryTotal = 256;
  bool identifier = true;
};

std::vector<uint8_t> build(const Spec &s) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<int64_t> shape = {4, 4};
  std::vector<flatbuffers::Offset<plan::Buffer>> bufs = {
      plan::CreateBuffer(fbb, fbb.CreateString("w"), plan::Role::parameter,
                         plan::DType::f32, fbb.CreateVector(shape), 0, 64,
                         plan::Init::normal, 0.02),
      plan::CreateBuffer(fbb, fbb.CreateString("y"), plan::Role::activation,
                         plan::DType::f32, fbb.CreateVector(shape), s.offset1,
                         s.bytes1, plan::Init::none, 0)};
  std::vector<uint32_t> operands = {s.operand};
  for (int i = 0; i < s.extraOperands; ++i)
    operands.push_back(0);
  std::vector<uint32_t> results = {1};
  auto step =
      plan::CreateStep(fbb, fbb.CreateString(s.op), fbb.CreateVector(operands),
                       fbb.CreateVector(results), 0, fbb.CreateString("test"));
  std::vector<flatbuffers::Offset<plan::Step>> steps = {step};
  std::vector<uint32_t> none;
  auto prog = plan::CreateProgram(
      fbb, fbb.CreateString("train_step"), fbb.CreateVector(none),
      fbb.CreateVector(results), fbb.CreateVector(steps));
  std::vector<flatbuffers::Offset<plan::Program>> progs = {prog};
  auto mem = plan::CreateMemory(fbb, 64, 0, 0, 0, 0, 64, s.memoryTotal);
  auto training = plan::CreateTraining(fbb, 10, 1, 1, 4, 4);
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
  expect(s, "plan format version 2, but this forge-run reads version 1");
  s = Spec{};
  s.identifier = false;
  expect(s, "not a forge plan (missing the FRGP identifier)");
  s = Spec{};
  s.offset1 = 256;
  expect(s, "buffer 1 (y) [256, +64) lies outside the arena of 256 bytes");
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
  s.operand = 7;
  expect(s, "operand refers to buffer 7 but the plan has 2 buffers");
  s = Spec{};
  s.memoryTotal = 128;
  expect(s, "memory total (128) differs from the arena size (256)");
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
