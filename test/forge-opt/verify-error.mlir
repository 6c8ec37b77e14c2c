// A verifier error is a located diagnostic, not a crash.
// RUN: forge-opt %s -split-input-file -verify-diagnostics

func.func @wrong_return(%arg0: tensor<4xf32>) -> tensor<8xf32> {
  // expected-error @+1 {{type of return operand 0 ('tensor<4xf32>') doesn't match function result type ('tensor<8xf32>')}}
  return %arg0 : tensor<4xf32>
}
