//===- Pipeline_test.cpp - Pipeline schedules and their checks ------------===//

#include "compiler/Pipeline.h"
#include "dialects/exec/IR/ExecOps.h"
#include "frontends/model/ir/BuildModel.h"
#include "passes/PipelineSchedule.h"

#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

using namespace forge;
using pipeline::Action;

namespace {

std::string order(const std::vector<Action> &actions) {
  std::string s;
  for (const Action &a : actions)
    s += std::string(s.empty() ? "" : " ") + (a.backward ? "B" : "F") +
         std::to_string(a.micro) + "/" + std::to_string(a.slot);
  return s;
}

TEST(PipelineSchedule, OneFOneB) {
  std::vector<std::vector<Action>> a;
  std::string error;
  ASSERT_TRUE(pipeline::schedule("1f1b", 3, 4, a, error)) << error;
  // Stage s warms up with 2 - s forwards, then alternates, then drains;
  // a micro-batch's slot is free again once its backward ran.
  EXPECT_EQ(order(a[0]), "F0/0 F1/1 F2/2 B0/0 F3/0 B1/1 B2/2 B3/0");
  EXPECT_EQ(order(a[1]), "F0/0 F1/1 B0/0 F2/0 B1/1 F3/1 B2/0 B3/1");
  EXPECT_EQ(order(a[2]), "F0/0 B0/0 F1/0 B1/0 F2/0 B2/0 F3/0 B3/0");
  EXPECT_EQ(pipeline::slotsOf(a[0]), 3);
  EXPECT_EQ(pipeline::slotsOf(a[2]), 1);
  pipeline::Timeline t;
  ASSERT_TRUE(pipeline::simulate(a, t, error)) << error;
  // (p - 1) / (m + p - 1) with backward = 2 forwards.
  EXPECT_NEAR(t.bubble, 2.0 / 6.0, 1e-12);
  EXPECT_DOUBLE_EQ(t.makespan, 3.0 * (4 + 3 - 1));
}

TEST(PipelineSchedule, GPipe) {
  std::vector<std::vector<Action>> a;
  std::string error;
  ASSERT_TRUE(pipeline::schedule("gpipe", 2, 3, a, error)) << error;
  EXPECT_EQ(order(a[1]), "F0/0 F1/1 F2/2 B0/0 B1/1 B2/2");
  pipeline::Timeline t;
  ASSERT_TRUE(pipeline::simulate(a, t, error)) << error;
  EXPECT_NEAR(t.bubble, 1.0 / 4.0, 1e-12);
}

std::string chunked(const std::vector<Action> &actions) {
  std::string s;
  for (const Action &a : actions)
    s += std::string(s.empty() ? "" : " ") + (a.backward ? "B" : "F") +
         std::to_string(a.micro) + static_cast<char>('a' + a.chunk) + "/" +
         std::to_string(a.slot);
  return s;
}

TEST(PipelineSchedule, Interleaved) {
  std::vector<std::vector<Action>> a;
  std::string error;
  ASSERT_TRUE(pipeline::schedule("interleaved_1f1b", 2, 4, a, error)) << error;
  // Megatron-LM's order: micro-batches in groups of pp through chunk a,
  // then b; rank 0 warms up with 2 (pp - 1) + pp forwards, rank 1 with pp.
  EXPECT_EQ(chunked(a[0]), "F0a/0 F1a/1 F0b/0 F1b/1 F2a/2 B0b/0 F3a/3 B1b/1 "
                           "F2b/0 B0a/0 F3b/1 B1a/1 B2b/0 B3b/1 B2a/2 B3a/3");
  EXPECT_EQ(chunked(a[1]), "F0a/0 F1a/1 F0b/0 B0b/0 F1b/0 B1b/0 F2a/2 B0a/0 "
                           "F3a/0 B1a/1 F2b/0 B2b/0 F3b/0 B3b/0 B2a/2 B3a/0");
  EXPECT_EQ(pipeline::slotsOf(a[0], 0), 4);
  EXPECT_EQ(pipeline::slotsOf(a[0], 1), 2);
  EXPECT_EQ(pipeline::slotsOf(a[1], 1), 1);
  // Each micro-batch through each chunk once per direction.
  for (const std::vector<Action> &rank : a)
    EXPECT_EQ(rank.size(), 16u);
  pipeline::Timeline t, plain;
  ASSERT_TRUE(pipeline::simulate(a, t, error)) << error;
  // Half-size chunks halve the fill and drain: a smaller bubble than
  // 1F1B's (p - 1) / (m + p - 1) = 20% on the same pipeline.
  std::vector<std::vector<Action>> b;
  ASSERT_TRUE(pipeline::schedule("1f1b", 2, 4, b, error)) << error;
  ASSERT_TRUE(pipeline::simulate(b, plain, error)) << error;
  EXPECT_NEAR(plain.bubble, 0.2, 1e-12);
  EXPECT_LT(t.bubble, plain.bubble);
  // Larger pipelines complete too.
  for (int64_t pp : {3, 4})
    for (int64_t m : {pp, 2 * pp, 3 * pp}) {
      ASSERT_TRUE(pipeline::schedule("interleaved_1f1b", pp, m, a, error));
      ASSERT_TRUE(pipeline::simulate(a, t, error)) << pp << " " << m << error;
    }
}

TEST(PipelineSchedule, Refusals) {
  std::vector<std::vector<Action>> a;
  std::string error;
  EXPECT_FALSE(pipeline::schedule("interleaved_1f1b", 2, 3, a, error));
  EXPECT_NE(error.find("train.grad_accum_steps (3) must be a multiple of pp "
                       "(2)"),
            std::string::npos)
      << error;
  EXPECT_FALSE(pipeline::schedule("zigzag", 2, 4, a, error));
  EXPECT_NE(error.find("unknown pipeline schedule 'zigzag'"), std::string::npos)
      << error;
}

TEST(PipelineSchedule, DeadlockIsFound) {
  // Stage 0 waits for micro-batch 0's gradient before sending its
  // activation: neither stage can ever go on.
  std::vector<std::vector<Action>> a = {{{true, 0, 0}, {false, 0, 0}},
                                        {{false, 0, 0}, {true, 0, 0}}};
  pipeline::Timeline t;
  std::string error;
  EXPECT_FALSE(pipeline::simulate(a, t, error));
  EXPECT_EQ(error, "pipeline stage 0 would wait forever at the backward of "
                   "micro-batch 0: its receive has no matching send before it");
}

TEST(PipelineSchedule, EdgeOrderIsChecked) {
  // No deadlock when sends do not wait, but stage 1 takes micro-batch 1's
  // activation before micro-batch 0's, which stage 0 sends first: over a
  // transport that delivers in order (NCCL) it would train on swapped
  // activations.
  std::vector<std::vector<Action>> a = {
      {{false, 0, 0}, {false, 1, 1}, {true, 0, 0}, {true, 1, 1}},
      {{false, 1, 1}, {false, 0, 0}, {true, 1, 1}, {true, 0, 0}}};
  pipeline::Timeline t;
  std::string error;
  EXPECT_FALSE(pipeline::simulate(a, t, error));
  EXPECT_EQ(error, "pipeline stage 0 sends activations to stage 1 (model "
                   "chunk 0 to 1) for micro-batches 0 1, but the receiver "
                   "takes them in the order 1 0: NCCL delivers one edge's "
                   "messages in order");
  // Every built-in schedule keeps each edge in order at both ends.
  for (const char *kind : {"gpipe", "1f1b", "interleaved_1f1b"})
    for (int64_t pp : {2, 3, 4, 8})
      for (int64_t m : {pp, 2 * pp, 4 * pp}) {
        ASSERT_TRUE(pipeline::schedule(kind, pp, m, a, error));
        EXPECT_TRUE(pipeline::simulate(a, t, error))
            << kind << " pp " << pp << " x " << m << ": " << error;
      }
}

TEST(PipelineCheck, UnmatchedSendIsACompileError) {
  config::ConfigLoader loader;
  ASSERT_TRUE(loader.loadString(R"(
[model]
dim = 32
n_layers = 2
n_heads = 2
vocab_size = 64
max_seq_len = 8
[train]
batch_size = 1
seq_len = 8
grad_accum_steps = 2
[distributed]
pp = 2
dp_shard = 1
)",
                                "job.toml") &&
              loader.finalize() && loader.validate(2));
  mlir::MLIRContext ctx;
  std::string error;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      model::buildModel(ctx, loader, error);
  ASSERT_TRUE(module) << error;
  ASSERT_EQ(compiler::setMesh(*module, loader.config(), 2), "");
  ASSERT_TRUE(mlir::succeeded(compiler::runPipeline(*module, "", error)))
      << error;
  EXPECT_EQ(compiler::checkPipeline(*module), "");
  // Drop the last stage's receive of the hidden state: the first stage's
  // send has nothing to meet.
  mlir::ModuleOp last;
  for (auto stage : module->getBody()->getOps<mlir::ModuleOp>())
    last = stage;
  bool erased = false;
  last.walk([&](exec::CollectiveOp c) {
    if (!erased && c.getKind() == "recv") {
      c.erase();
      erased = true;
    }
  });
  ASSERT_TRUE(erased);
  std::string e = compiler::checkPipeline(*module);
  EXPECT_NE(e.find("pipeline stage 0's @forward has 1 send (stage 0 to 1, "
                   "tag 0, "),
            std::string::npos)
      << e;
  EXPECT_NE(e.find(") with no matching receive"), std::string::npos) << e;
}

} // namespace
