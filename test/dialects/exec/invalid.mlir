// One case per verifier error of the exec dialect.
// RUN: forge-opt %s -split-input-file -verify-diagnostics

// expected-error @+1 {{'exec.arena' op size must be non-negative, got -64}}
exec.arena size(-64) alignment(64)

// -----

// expected-error @+1 {{'exec.arena' op alignment must be a power of two, got 48}}
exec.arena size(64) alignment(48)

// -----

exec.arena size(64) alignment(64)
// expected-error @+1 {{'exec.arena' op must be the first op of its module (a module has one arena)}}
exec.arena size(64) alignment(64)

// -----

// expected-error @+1 {{'exec.buffer' op needs an exec.arena as the first op of its module}}
exec.buffer @x : [4] f32 activation offset(0) size(16)

// -----

exec.arena size(64) alignment(64)
// expected-error @+1 {{'exec.buffer' op dtype must be f32, bf16, f16, i64 or i32, got 'f64'}}
exec.buffer @x : [4] f64 activation offset(0) size(32)

// -----

exec.arena size(64) alignment(64)
// expected-error @+1 {{'exec.buffer' op shape dims must be non-negative, got -4}}
exec.buffer @x : [-4] f32 activation offset(0) size(16)

// -----

exec.arena size(64) alignment(64)
// expected-error @+1 {{'exec.buffer' op size must be the tensor's 8 bytes, got 16}}
exec.buffer @x : [4] bf16 activation offset(0) size(16)

// -----

exec.arena size(64) alignment(64)
// expected-error @+1 {{'exec.buffer' op offset must be non-negative, got -64}}
exec.buffer @x : [4] f32 activation offset(-64) size(16)

// -----

exec.arena size(128) alignment(64)
// expected-error @+1 {{'exec.buffer' op offset 32 is not a multiple of the arena's alignment (64)}}
exec.buffer @x : [4] f32 activation offset(32) size(16)

// -----

exec.arena size(128) alignment(64)
// expected-error @+1 {{'exec.buffer' op bytes [64, 192) lie outside the arena of 128 bytes}}
exec.buffer @x : [32] f32 activation offset(64) size(128)

// -----

exec.arena size(64) alignment(64)
// expected-error @+1 {{'exec.buffer' op a persistent buffer needs an initializer}}
exec.buffer @w : [4] f32 parameter offset(0) size(16)

// -----

exec.arena size(64) alignment(64)
// expected-error @+1 {{'exec.buffer' op only persistent buffers have an initializer}}
exec.buffer @train_step.arg0 : [4] i64 input offset(0) size(32) init(zeros)

// -----

exec.arena size(64) alignment(64)
// expected-error @+1 {{'exec.buffer' op std is for init(normal) only}}
exec.buffer @w : [4] f32 parameter offset(0) size(16) init(ones, std = 1.0)

// -----

exec.arena size(64) alignment(64)
// expected-error @+1 {{'exec.buffer' op a sharded buffer needs shard_dims, shard_groups and global_shape}}
exec.buffer @w : [4] f32 parameter offset(0) size(16) init(zeros) {global_shape = array<i64: 8>}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  // expected-error @+1 {{'exec.buffer' op shard_dims and shard_groups must have one entry per split, at least one}}
  exec.buffer @w : [4] f32 parameter offset(0) size(16) init(zeros) shard([0, 0] over ["dp_shard"], global [16])
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  // expected-error @+1 {{'exec.buffer' op global_shape must have the rank of shape (1)}}
  exec.buffer @w : [4] f32 parameter offset(0) size(16) init(zeros) shard([0] over ["dp_shard"], global [8, 1])
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  // expected-error @+1 {{'exec.buffer' op shard dim 1 is out of range for rank 1}}
  exec.buffer @w : [4] f32 parameter offset(0) size(16) init(zeros) shard([1] over ["dp_shard"], global [8])
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  // expected-error @+1 {{'exec.buffer' op shard group 'tp' is not a dim of dist.mesh}}
  exec.buffer @w : [4] f32 parameter offset(0) size(16) init(zeros) shard([0] over ["tp"], global [8])
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  // expected-error @+1 {{'exec.buffer' op global_shape [16] split by its groups gives blocks of [8], not the shape}}
  exec.buffer @w : [4] f32 parameter offset(0) size(16) init(zeros) shard([0] over ["dp_shard"], global [16])
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"]}} {
  exec.arena size(64) alignment(64)
  // expected-error @+1 {{'exec.buffer' op dist.mesh needs 'dims' (strings) and 'sizes' (integers) of the same length}}
  exec.buffer @w : [4] f32 parameter offset(0) size(16) init(zeros) shard([0] over ["dp_shard"], global [8])
}

// -----

exec.arena size(64) alignment(64)
exec.program @p inputs [] outputs [] {
  // expected-error @+1 {{'exec.arena' op cannot be in an exec.program (it holds exec.launch and exec.collective ops only)}}
  exec.arena size(64) alignment(64)
}

// -----

exec.arena size(64) alignment(64)
exec.buffer @x : [4] f32 activation offset(0) size(16)
// expected-error @+1 {{'exec.program' op input 'x' must be a buffer of role input, not activation}}
exec.program @p inputs [@x] outputs [] {
}

// -----

exec.arena size(64) alignment(64)
// expected-error @+1 {{'exec.program' op 'nope' does not name an exec.buffer}}
exec.program @p inputs [] outputs [@nope] {
}

// -----

exec.arena size(64) alignment(64)
exec.buffer @x : [4] f32 activation offset(0) size(16)
exec.program @p inputs [] outputs [] {
  // expected-error @+1 {{'exec.launch' op needs a kernel name}}
  exec.launch "" [] -> [@x] stream(0)
}

// -----

exec.arena size(64) alignment(64)
exec.buffer @x : [4] f32 activation offset(0) size(16)
exec.program @p inputs [] outputs [] {
  // expected-error @+1 {{'exec.launch' op stream must be 0 (compute) or 1 (communication), got 2}}
  exec.launch "forge.fill" [] -> [@x] stream(2) attrs {value = 0.0 : f64}
}

// -----

exec.arena size(64) alignment(64)
exec.buffer @x : [4] f32 activation offset(0) size(16)
exec.program @p inputs [] outputs [] {
  // expected-error @+1 {{'exec.launch' op 'p' does not name an exec.buffer}}
  exec.launch "forge.relu" [@x] -> [@p] stream(0)
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  exec.buffer @x : [4] f32 activation offset(0) size(16)
  exec.program @p inputs [] outputs [] {
    // expected-error @+1 {{'exec.collective' op needs an origin (design.md §5.7: every collective says why it is there)}}
    exec.collective "all_reduce" [@x] -> [@x] over "dp_shard"(2) reduce("sum") stream(1) origin("")
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  exec.buffer @x : [4] f32 activation offset(0) size(16)
  exec.program @p inputs [] outputs [] {
    // expected-error @+1 {{'exec.collective' op needs a kind}}
    exec.collective "" [@x] -> [@x] over "dp_shard"(2) stream(1) origin("test")
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  exec.buffer @x : [4] f32 activation offset(0) size(16)
  exec.program @p inputs [] outputs [] {
    // expected-error @+1 {{'exec.collective' op 'all_gather' needs a dim}}
    exec.collective "all_gather" [@x] -> [@x] over "dp_shard"(2) stream(1) origin("test")
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  exec.buffer @x : [4] f32 activation offset(0) size(16)
  exec.program @p inputs [] outputs [] {
    // expected-error @+1 {{'exec.collective' op 'all_reduce' needs a reduce}}
    exec.collective "all_reduce" [@x] -> [@x] over "dp_shard"(2) stream(1) origin("test")
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  exec.buffer @x : [4] f32 activation offset(0) size(16)
  exec.program @p inputs [] outputs [] {
    // expected-error @+1 {{'exec.collective' op reduce must be sum, avg or max, got 'min'}}
    exec.collective "all_reduce" [@x] -> [@x] over "dp_shard"(2) reduce("min") stream(1) origin("test")
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  exec.buffer @x : [4] f32 activation offset(0) size(16)
  exec.program @p inputs [] outputs [] {
    // expected-error @+1 {{'exec.collective' op stream must be 0 (compute) or 1 (communication), got 3}}
    exec.collective "all_reduce" [@x] -> [@x] over "dp_shard"(2) reduce("sum") stream(3) origin("test")
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  exec.buffer @x : [4] f32 activation offset(0) size(16)
  exec.program @p inputs [] outputs [] {
    // expected-error @+1 {{'exec.collective' op group size must be positive, got 0}}
    exec.collective "all_reduce" [@x] -> [@x] over "dp_shard"(0) reduce("sum") stream(1) origin("test")
  }
}

// -----

exec.arena size(64) alignment(64)
exec.buffer @x : [4] f32 activation offset(0) size(16)
exec.program @p inputs [] outputs [] {
  // expected-error @+1 {{'exec.collective' op needs the module attribute dist.mesh}}
  exec.collective "all_reduce" [@x] -> [@x] over "dp_shard"(2) reduce("sum") stream(1) origin("test")
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  exec.buffer @x : [4] f32 activation offset(0) size(16)
  exec.program @p inputs [] outputs [] {
    // expected-error @+1 {{'exec.collective' op group 'tp' is not a dim of dist.mesh}}
    exec.collective "all_reduce" [@x] -> [@x] over "tp"(2) reduce("sum") stream(1) origin("test")
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  exec.buffer @x : [4] f32 activation offset(0) size(16)
  exec.program @p inputs [] outputs [] {
    // expected-error @+1 {{'exec.collective' op group 'dp_shard' has 2 ranks in dist.mesh, not 4}}
    exec.collective "all_reduce" [@x] -> [@x] over "dp_shard"(4) reduce("sum") stream(1) origin("test")
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(64) alignment(64)
  exec.buffer @x : [4] f32 activation offset(0) size(16)
  exec.program @p inputs [] outputs [] {
    // expected-error @+1 {{'exec.collective' op 'all_reduce' takes one buffer and writes one}}
    exec.collective "all_reduce" [@x, @x] -> [@x] over "dp_shard"(2) reduce("sum") stream(1) origin("test")
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(128) alignment(64)
  exec.buffer @x : [4] f32 activation offset(0) size(16)
  exec.buffer @y : [8] bf16 activation offset(64) size(16)
  exec.program @p inputs [] outputs [] {
    // expected-error @+1 {{'exec.collective' op input and output dtypes differ}}
    exec.collective "all_reduce" [@x] -> [@y] over "dp_shard"(2) reduce("sum") stream(1) origin("test")
  }
}

// -----

module attributes {dist.mesh = {dims = ["dp_shard"], sizes = [2]}} {
  exec.arena size(128) alignment(64)
  exec.buffer @x : [4] f32 activation offset(0) size(16)
  exec.buffer @y : [4] f32 activation offset(64) size(16)
  exec.program @p inputs [] outputs [] {
    // expected-error @+1 {{'exec.collective' op 'all_gather' over 2 ranks cannot take [4] to [4] along dim 0}}
    exec.collective "all_gather" [@x] -> [@y] over "dp_shard"(2) dim(0) stream(1) origin("test")
  }
}

// -----

func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{'forge.relu' op exec.stream must be 0 (compute) or 1 (communication), got 2 : i64}}
  %y = forge.relu %x {exec.stream = 2 : i64} : tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----

func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{'forge.relu' op exec.offsets must hold one offset per result (1)}}
  %y = forge.relu %x {exec.offsets = array<i64: 0, 64>} : tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----

// expected-error @+1 {{'forge.param' op exec.offset must be a non-negative integer}}
forge.param @w : tensor<4xf32> init(zeros) {exec.offset = -64 : i64}
