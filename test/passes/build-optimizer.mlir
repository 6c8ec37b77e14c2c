// RUN: forge-opt %s -split-input-file -forge-build-optimizer -verify-diagnostics | FileCheck %s

module attributes {
  forge.train = {grad_accum_steps = 4 : i64, grad_clip_norm = 1.0 : f64, max_steps = 100 : i64, seed = 42 : i64},
  forge.optimizer = {name = "adamw", lr = 3.0e-04 : f64, weight_decay = 0.1 : f64, beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64},
  forge.schedule = {name = "cosine", warmup = 10 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 0.1 : f64, wsd_decay = "cosine", rex_alpha = 1.0 : f64}
} {
  forge.param @w : tensor<4x4xf32> init(normal, std = 2.000000e-02)
  forge.param @norm.weight : tensor<4xf32> init(ones)
  forge.param @proj.bias : tensor<2x4xf32> init(zeros)
  func.func @train_step(%x: tensor<4xf32>) -> (tensor<f32>, tensor<4x4xf32>, tensor<4xf32>, tensor<2x4xf32>)
      attributes {forge.grads = [@w, @norm.weight, @proj.bias]} {
    %l = forge.fill 1.0 : tensor<f32>
    %g0 = forge.fill 0.5 : tensor<4x4xf32>
    %g1 = forge.fill 0.5 : tensor<4xf32>
    %g2 = forge.fill 0.5 : tensor<2x4xf32>
    return %l, %g0, %g1, %g2 : tensor<f32>, tensor<4x4xf32>, tensor<4xf32>, tensor<2x4xf32>
  }
}

// State buffers: one accumulator and two Adam moments per parameter.
// CHECK: forge.param @grad.w : tensor<4x4xf32> init( zeros) buffer
// CHECK: forge.param @optimizer.exp_avg.w : tensor<4x4xf32> init( zeros) buffer
// CHECK: forge.param @optimizer.exp_avg_sq.w : tensor<4x4xf32> init( zeros) buffer
// The micro step adds grad / grad_accum_steps and returns only the loss.
// CHECK-LABEL: func.func @train_step(%{{.*}}: tensor<4xf32>) -> tensor<f32> {
// CHECK-NOT: forge.grads
// CHECK: %[[ACC:.*]] = forge.get_param @grad.w : tensor<4x4xf32>
// CHECK: %[[S:.*]] = forge.scale %{{.*}} by(2.500000e-01) : tensor<4x4xf32>
// CHECK: %[[SUM:.*]] = forge.add %[[ACC]], %[[S]] : tensor<4x4xf32>
// CHECK: forge.set_param @grad.w, %[[SUM]] : tensor<4x4xf32>
// CHECK: return %{{.*}} : tensor<f32>
// The schedule's step and the phase's lr scale are the runtime's inputs.
// CHECK: func.func @optimizer_step(%[[STEP:.*]]: tensor<i64>, %[[SCALE:.*]]: tensor<f32>) -> (tensor<f32>, tensor<f32>)
// CHECK: %[[NORM:.*]] = forge.global_norm %{{.*}}, %{{.*}}, %{{.*}} : tensor<4x4xf32>, tensor<4xf32>, tensor<2x4xf32> -> tensor<f32>
// CHECK: %[[CLIP:.*]] = forge.clip_coefficient %[[NORM]] max_norm(1.000000e+00) : tensor<f32>
// CHECK: %[[F:.*]] = forge.lr_factor %[[STEP]] {{{.*}}max_steps = 100 : i64{{.*}}schedule = "cosine"{{.*}}warmup = 10 : i64
// CHECK: %[[FS:.*]] = forge.mul %[[F]], %[[SCALE]] : tensor<f32>
// CHECK: %[[LR:.*]] = forge.scale %[[FS]] by(3.000000e-04) : tensor<f32>
// Decay group: the 2-D weight decays; the 1-D norm and the bias do not.
// CHECK: forge.adamw_update {{.*}}, %[[LR]], %[[CLIP]], %[[STEP]] betas(9.000000e-01, 0.94999999999999996) eps(1.000000e-08) weight_decay(1.000000e-01) : tensor<4x4xf32>
// CHECK: forge.set_param @w
// CHECK: forge.set_param @optimizer.exp_avg.w
// CHECK: forge.set_param @optimizer.exp_avg_sq.w
// CHECK: %[[Z:.*]] = forge.fill 0.000000e+00 : tensor<4x4xf32>
// CHECK: forge.set_param @grad.w, %[[Z]]
// CHECK: forge.adamw_update {{.*}} weight_decay(0.000000e+00) : tensor<4xf32>
// CHECK: forge.adamw_update {{.*}} weight_decay(0.000000e+00) : tensor<2x4xf32>
// CHECK: return %[[NORM]], %[[LR]] : tensor<f32>, tensor<f32>

// -----

// expected-error @+1 {{forge-build-optimizer: needs @train_step differentiated by forge-build-backward first}}
module {
  func.func @train_step(%x: tensor<f32>) -> tensor<f32> {
    return %x : tensor<f32>
  }
}

// -----

// expected-error @+1 {{forge-build-optimizer: the module has no 'forge.optimizer' attribute (the model frontend records it)}}
module attributes {forge.train = {grad_accum_steps = 1 : i64, grad_clip_norm = 1.0 : f64, max_steps = 10 : i64}} {
  func.func @train_step(%x: tensor<f32>) -> tensor<f32> attributes {forge.grads = []} {
    return %x : tensor<f32>
  }
}

// -----

// expected-error @+1 {{forge-build-optimizer: missing or mistyped 'lr' in the module's training settings}}
module attributes {
  forge.train = {grad_accum_steps = 1 : i64, grad_clip_norm = 1.0 : f64, max_steps = 10 : i64},
  forge.optimizer = {name = "adamw", lr = "fast", weight_decay = 0.1 : f64, beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64},
  forge.schedule = {name = "cosine", warmup = 10 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 0.1 : f64, wsd_decay = "cosine", rex_alpha = 1.0 : f64}
} {
  func.func @train_step(%x: tensor<f32>) -> tensor<f32> attributes {forge.grads = []} {
    return %x : tensor<f32>
  }
}

// -----

// An optimizer a plugin registered has no update rule in forge.
// expected-error @+1 {{forge-build-optimizer: optimizer 'sgd' is not supported yet; adamw, lion, muon and schedule_free_adamw are implemented}}
module attributes {
  forge.train = {grad_accum_steps = 1 : i64, grad_clip_norm = 1.0 : f64, max_steps = 10 : i64},
  forge.optimizer = {name = "sgd", lr = 1.0e-04 : f64, weight_decay = 0.1 : f64, beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64},
  forge.schedule = {name = "cosine", warmup = 10 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 0.1 : f64, wsd_decay = "cosine", rex_alpha = 1.0 : f64}
} {
  func.func @train_step(%x: tensor<f32>) -> tensor<f32> attributes {forge.grads = []} {
    return %x : tensor<f32>
  }
}

// -----

// expected-error @+1 {{forge-build-optimizer: the module already has @optimizer_step}}
module {
  func.func @train_step(%x: tensor<f32>) -> tensor<f32> attributes {forge.grads = []} {
    return %x : tensor<f32>
  }
  func.func @optimizer_step() {
    return
  }
}

// -----

// Lion: one moment per parameter and a lion_update with the group's decay.
module attributes {
  forge.train = {grad_accum_steps = 1 : i64, grad_clip_norm = 1.0 : f64, max_steps = 100 : i64},
  forge.optimizer = {name = "lion", lr = 1.0e-04 : f64, weight_decay = 0.1 : f64, beta1 = 0.9 : f64, beta2 = 0.99 : f64, eps = 1.0e-08 : f64},
  forge.schedule = {name = "constant", warmup = 0 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 0.1 : f64, wsd_decay = "cosine", rex_alpha = 1.0 : f64}
} {
  forge.param @w : tensor<4x4xf32> init(normal, std = 2.000000e-02)
  func.func @train_step(%x: tensor<4xf32>) -> (tensor<f32>, tensor<4x4xf32>)
      attributes {forge.grads = [@w]} {
    %l = forge.fill 1.0 : tensor<f32>
    %g = forge.fill 0.5 : tensor<4x4xf32>
    return %l, %g : tensor<f32>, tensor<4x4xf32>
  }
}
// CHECK: forge.param @optimizer.exp_avg.w
// CHECK-NOT: exp_avg_sq
// CHECK: forge.lion_update {{.*}} betas(9.000000e-01, 0.98999999999999999) weight_decay(1.000000e-01) : tensor<4x4xf32>, tensor<f32>, tensor<f32>

// -----

// Muon: the square weight and the stacked 3-D tensor (flattened 4 x 8,
// aspect 2) get muon_update with a momentum buffer; the 64 x 4 embedding
// (aspect 16 > 10) and the 1-D norm fall back to AdamW at muon_adam_lr
// times the schedule factor, with their decay groups.
module attributes {
  forge.train = {grad_accum_steps = 1 : i64, grad_clip_norm = 1.0 : f64, max_steps = 100 : i64},
  forge.optimizer = {name = "muon", lr = 2.0e-02 : f64, weight_decay = 0.1 : f64, beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, muon_momentum = 0.95 : f64, muon_ns_steps = 5 : i64, muon_adam_lr = 3.0e-04 : f64},
  forge.schedule = {name = "cosine", warmup = 10 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 0.1 : f64, wsd_decay = "cosine", rex_alpha = 1.0 : f64}
} {
  forge.param @w : tensor<4x4xf32> init(normal, std = 2.000000e-02)
  forge.param @experts : tensor<4x2x4xf32> init(normal, std = 2.000000e-02)
  forge.param @emb : tensor<64x4xf32> init(normal, std = 2.000000e-02)
  forge.param @norm.weight : tensor<4xf32> init(ones)
  func.func @train_step(%x: tensor<4xf32>) -> (tensor<f32>, tensor<4x4xf32>, tensor<4x2x4xf32>, tensor<64x4xf32>, tensor<4xf32>)
      attributes {forge.grads = [@w, @experts, @emb, @norm.weight]} {
    %l = forge.fill 1.0 : tensor<f32>
    %g0 = forge.fill 0.5 : tensor<4x4xf32>
    %g1 = forge.fill 0.5 : tensor<4x2x4xf32>
    %g2 = forge.fill 0.5 : tensor<64x4xf32>
    %g3 = forge.fill 0.5 : tensor<4xf32>
    return %l, %g0, %g1, %g2, %g3 : tensor<f32>, tensor<4x4xf32>, tensor<4x2x4xf32>, tensor<64x4xf32>, tensor<4xf32>
  }
}
// CHECK: forge.param @optimizer.momentum_buffer.w : tensor<4x4xf32> init( zeros) buffer
// CHECK: forge.param @optimizer.momentum_buffer.experts : tensor<4x2x4xf32> init( zeros) buffer
// CHECK: forge.param @optimizer.exp_avg.emb : tensor<64x4xf32> init( zeros) buffer
// CHECK: forge.param @optimizer.exp_avg_sq.emb : tensor<64x4xf32> init( zeros) buffer
// CHECK: forge.param @optimizer.exp_avg.norm.weight
// CHECK: forge.param @optimizer.exp_avg_sq.norm.weight
// CHECK-NOT: momentum_buffer.emb
// CHECK: func.func @optimizer_step
// CHECK: %[[F0:.*]] = forge.lr_factor
// CHECK: %[[F:.*]] = forge.mul %[[F0]], %{{.*}} : tensor<f32>
// CHECK: %[[LR:.*]] = forge.scale %[[F]] by(2.000000e-02) : tensor<f32>
// CHECK: %[[ALR:.*]] = forge.scale %[[F]] by(3.000000e-04) : tensor<f32>
// CHECK: forge.muon_update {{.*}}, %[[LR]], %{{.*}} momentum(0.94999999999999996) ns_steps(5) weight_decay(1.000000e-01) : tensor<4x4xf32>
// CHECK: forge.set_param @optimizer.momentum_buffer.w
// CHECK: forge.muon_update {{.*}}, %[[LR]], %{{.*}} momentum(0.94999999999999996) ns_steps(5) weight_decay(1.000000e-01) : tensor<4x2x4xf32>
// CHECK: forge.adamw_update {{.*}}, %[[ALR]], %{{.*}}, %{{.*}} betas(9.000000e-01, 0.94999999999999996) eps(1.000000e-08) weight_decay(1.000000e-01) : tensor<64x4xf32>
// CHECK: forge.adamw_update {{.*}}, %[[ALR]], %{{.*}}, %{{.*}} {{.*}} weight_decay(0.000000e+00) : tensor<4xf32>
// CHECK: return %{{.*}}, %[[LR]]

// -----

// Muon without muon_adam_lr: the fallback group runs at lr.
module attributes {
  forge.train = {grad_accum_steps = 1 : i64, grad_clip_norm = 1.0 : f64, max_steps = 100 : i64},
  forge.optimizer = {name = "muon", lr = 2.0e-02 : f64, weight_decay = 0.1 : f64, beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, muon_momentum = 0.95 : f64, muon_ns_steps = 3 : i64},
  forge.schedule = {name = "constant", warmup = 0 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 0.1 : f64, wsd_decay = "cosine", rex_alpha = 1.0 : f64}
} {
  forge.param @norm.weight : tensor<4xf32> init(ones)
  func.func @train_step(%x: tensor<4xf32>) -> (tensor<f32>, tensor<4xf32>)
      attributes {forge.grads = [@norm.weight]} {
    %l = forge.fill 1.0 : tensor<f32>
    %g = forge.fill 0.5 : tensor<4xf32>
    return %l, %g : tensor<f32>, tensor<4xf32>
  }
}
// CHECK: func.func @optimizer_step
// CHECK: %[[LR:.*]] = forge.scale %{{.*}} by(2.000000e-02) : tensor<f32>
// CHECK-NOT: forge.scale
// CHECK: forge.adamw_update {{.*}}, %[[LR]], %{{.*}}, %{{.*}} betas

// -----

// expected-error @+1 {{forge-build-optimizer: missing or mistyped 'muon_ns_steps' in the module's training settings}}
module attributes {
  forge.train = {grad_accum_steps = 1 : i64, grad_clip_norm = 1.0 : f64, max_steps = 10 : i64},
  forge.optimizer = {name = "muon", lr = 2.0e-02 : f64, weight_decay = 0.1 : f64, beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, muon_momentum = 0.95 : f64},
  forge.schedule = {name = "cosine", warmup = 10 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 0.1 : f64, wsd_decay = "cosine", rex_alpha = 1.0 : f64}
} {
  func.func @train_step(%x: tensor<f32>) -> tensor<f32> attributes {forge.grads = []} {
    return %x : tensor<f32>
  }
}

// -----

// Schedule-free AdamW: z, v and x per parameter and one shared state
// (step count and averaging weight), counted once per step before the
// updates; @eval_params and @train_params swap the parameters between x and
// y = (1 - beta1) z + beta1 x.
module attributes {
  forge.train = {grad_accum_steps = 1 : i64, grad_clip_norm = 1.0 : f64, max_steps = 100 : i64},
  forge.optimizer = {name = "schedule_free_adamw", lr = 2.5e-02 : f64, weight_decay = 0.1 : f64, beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-08 : f64, schedule_free_warmup = 20 : i64},
  forge.schedule = {name = "none", warmup = 0 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 0.1 : f64, wsd_decay = "cosine", rex_alpha = 1.0 : f64}
} {
  forge.param @w : tensor<4x4xf32> init(normal, std = 2.000000e-02)
  forge.param @norm.weight : tensor<4xf32> init(ones)
  func.func @train_step(%x: tensor<4xf32>) -> (tensor<f32>, tensor<4x4xf32>, tensor<4xf32>)
      attributes {forge.grads = [@w, @norm.weight]} {
    %l = forge.fill 1.0 : tensor<f32>
    %g0 = forge.fill 0.5 : tensor<4x4xf32>
    %g1 = forge.fill 0.5 : tensor<4xf32>
    return %l, %g0, %g1 : tensor<f32>, tensor<4x4xf32>, tensor<4xf32>
  }
}
// CHECK: forge.param @optimizer.z.w : tensor<4x4xf32> init( zeros) buffer
// CHECK: forge.param @optimizer.v.w : tensor<4x4xf32> init( zeros) buffer
// CHECK: forge.param @optimizer.x.w : tensor<4x4xf32> init( zeros) buffer
// CHECK: forge.param @optimizer.schedule_free : tensor<4xf32> init( zeros) buffer
// CHECK: func.func @optimizer_step
// CHECK: %[[LR:.*]] = forge.scale %{{.*}} by(2.500000e-02) : tensor<f32>
// CHECK: %[[S0:.*]] = forge.get_param @optimizer.schedule_free : tensor<4xf32>
// CHECK: %[[S1:.*]] = forge.schedule_free_count %[[S0]], %[[LR]] beta1(9.000000e-01) warmup(20) : tensor<4xf32>, tensor<f32>
// CHECK: forge.set_param @optimizer.schedule_free, %[[S1]]
// CHECK: forge.schedule_free_adamw_update {{.*}}, %[[LR]], %{{.*}}, %[[S1]] betas(9.000000e-01, 0.99899999999999999) eps(1.000000e-08) weight_decay(1.000000e-01) warmup(20) : tensor<4x4xf32>
// CHECK: forge.set_param @w
// CHECK: forge.set_param @optimizer.z.w
// CHECK: forge.set_param @optimizer.v.w
// CHECK: forge.set_param @optimizer.x.w
// CHECK: forge.schedule_free_adamw_update {{.*}} weight_decay(0.000000e+00) warmup(20) : tensor<4xf32>
// CHECK-LABEL: func.func @eval_params() {
// CHECK: %[[S:.*]] = forge.get_param @optimizer.schedule_free
// CHECK: %[[P:.*]] = forge.get_param @w
// CHECK: %[[Z:.*]] = forge.get_param @optimizer.z.w
// CHECK: %[[X:.*]] = forge.get_param @optimizer.x.w
// CHECK: %[[E:.*]] = forge.schedule_free_interpolate %[[P]], %[[Z]], %[[X]], %[[S]] weight(1.000000e+00) : tensor<4x4xf32>, tensor<4xf32>
// CHECK: forge.set_param @w, %[[E]]
// CHECK: forge.schedule_free_interpolate {{.*}} weight(1.000000e+00) : tensor<4xf32>, tensor<4xf32>
// CHECK: return
// CHECK-LABEL: func.func @train_params() {
// CHECK: forge.schedule_free_interpolate {{.*}} weight(9.000000e-01) : tensor<4x4xf32>, tensor<4xf32>
// CHECK: forge.set_param @w
// CHECK: forge.schedule_free_interpolate {{.*}} weight(9.000000e-01) : tensor<4xf32>, tensor<4xf32>
// CHECK: forge.set_param @norm.weight
// CHECK: return

// -----

// expected-error @+1 {{forge-build-optimizer: missing or mistyped 'schedule_free_warmup' in the module's training settings}}
module attributes {
  forge.train = {grad_accum_steps = 1 : i64, grad_clip_norm = 1.0 : f64, max_steps = 10 : i64},
  forge.optimizer = {name = "schedule_free_adamw", lr = 2.5e-02 : f64, weight_decay = 0.1 : f64, beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-08 : f64},
  forge.schedule = {name = "none", warmup = 0 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 0.1 : f64, wsd_decay = "cosine", rex_alpha = 1.0 : f64}
} {
  func.func @train_step(%x: tensor<f32>) -> tensor<f32> attributes {forge.grads = []} {
    return %x : tensor<f32>
  }
}

// -----

// Expert parallelism: the replicated weight's gradient is averaged over ep
// (ep ranks read different batches); the expert weight's, already summed
// over the group's tokens by the all-to-all, is divided by ep. Its squared
// norm is summed over ep, the replicated one's is not.
module attributes {
  dist.mesh = {dims = ["dp_shard", "ep"], sizes = [1, 2]},
  forge.train = {grad_accum_steps = 1 : i64, grad_clip_norm = 1.0 : f64, max_steps = 100 : i64, seed = 42 : i64},
  forge.optimizer = {name = "adamw", lr = 3.0e-04 : f64, weight_decay = 0.1 : f64, beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64},
  forge.schedule = {name = "cosine", warmup = 10 : i64, decay = 0 : i64, stable = 0 : i64, min_lr_ratio = 0.1 : f64, wsd_decay = "cosine", rex_alpha = 1.0 : f64}
} {
  forge.param @router : tensor<4x4xf32> init(normal, std = 2.000000e-02)
  forge.param @"experts.*.w" : tensor<2x4x4xf32> init(normal, std = 2.000000e-02) {dist.shard = [{dim = 0 : i64, group = "ep"}]}
  func.func @train_step(%x: tensor<4xf32>) -> (tensor<f32>, tensor<4x4xf32>, tensor<2x4x4xf32>)
      attributes {forge.grads = [@router, @"experts.*.w"]} {
    %l = forge.fill 1.0 : tensor<f32>
    %g0 = forge.fill 0.5 : tensor<4x4xf32>
    %g1 = forge.fill 0.5 : tensor<2x4x4xf32>
    return %l, %g0, %g1 : tensor<f32>, tensor<4x4xf32>, tensor<2x4x4xf32>
  }
}

// CHECK-LABEL: func.func @optimizer_step
// CHECK: %[[R:.*]] = forge.get_param @grad.router : tensor<4x4xf32>
// CHECK: %[[E:.*]] = forge.get_param @"grad.experts.*.w" : tensor<2x4x4xf32>
// CHECK: %[[RA:.*]] = dist.all_reduce %[[R]] over "ep"(2) reduce("avg") {dist.origin = {of = "router", pass = "forge-build-optimizer", phase = "optimizer", what = "gradient average over expert-parallel ranks"}} : tensor<4x4xf32>
// CHECK: %[[ES:.*]] = forge.scale %[[E]] by(5.000000e-01) : tensor<2x4x4xf32>
// CHECK: %[[SQR:.*]] = forge.global_norm %[[RA]] {squared} : tensor<4x4xf32> -> tensor<f32>
// CHECK: %[[SQE:.*]] = forge.global_norm %[[ES]] {squared} : tensor<2x4x4xf32> -> tensor<f32>
// CHECK: %[[SUM:.*]] = dist.all_reduce %[[SQE]] over "ep"(2) reduce("sum") {dist.origin = {of = "gradients split over ep", {{.*}}} : tensor<f32>
// CHECK: %[[TOT:.*]] = forge.add %[[SQR]], %[[SUM]] : tensor<f32>
// CHECK: forge.sqrt %[[TOT]] : tensor<f32>
