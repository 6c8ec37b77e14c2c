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
// CHECK: func.func @optimizer_step(%[[STEP:.*]]: tensor<i64>) -> (tensor<f32>, tensor<f32>)
// CHECK: %[[NORM:.*]] = forge.global_norm %{{.*}}, %{{.*}}, %{{.*}} : tensor<4x4xf32>, tensor<4xf32>, tensor<2x4xf32> -> tensor<f32>
// CHECK: %[[CLIP:.*]] = forge.clip_coefficient %[[NORM]] max_norm(1.000000e+00) : tensor<f32>
// CHECK: %[[F:.*]] = forge.lr_factor %[[STEP]] {{{.*}}max_steps = 100 : i64{{.*}}schedule = "cosine"{{.*}}warmup = 10 : i64
// CHECK: %[[LR:.*]] = forge.scale %[[F]] by(3.000000e-04) : tensor<f32>
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

// expected-error @+1 {{forge-build-optimizer: optimizer 'muon' is not supported yet; adamw and lion are implemented}}
module attributes {
  forge.train = {grad_accum_steps = 1 : i64, grad_clip_norm = 1.0 : f64, max_steps = 10 : i64},
  forge.optimizer = {name = "muon", lr = 1.0e-04 : f64, weight_decay = 0.1 : f64, beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64},
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
