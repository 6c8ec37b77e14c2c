// Only the hidden state may cross, one stage at a time: a value of layer 0
// read on the last stage (a skip connection, or MoE aux losses summed at the
// end) is refused.
module attributes {dist.mesh = {dims = ["pp"], sizes = [3]}} {
  func.func @train_step(%t: tensor<2x4xf32>, %l: tensor<2x4xi64>) -> tensor<f32> {
    %a = forge.scale %t by(2.0) : tensor<2x4xf32> loc("layers.0")
    %b = forge.scale %a by(2.0) : tensor<2x4xf32> loc("layers.1")
    %c = forge.scale %b by(2.0) : tensor<2x4xf32> loc("layers.2")
    %d = forge.add %c, %a : tensor<2x4xf32> loc("layers.2")
    %n = forge.global_norm %d : tensor<2x4xf32> -> tensor<f32> loc("loss")
    return %n : tensor<f32>
  }
}
