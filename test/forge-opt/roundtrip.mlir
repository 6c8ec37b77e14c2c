// forge-opt parses, verifies and prints IR of the registered dialects.
// RUN: forge-opt %s | FileCheck %s
// RUN: forge-opt %s | forge-opt | FileCheck %s

// CHECK-LABEL: func.func @identity
// CHECK-SAME: (%[[ARG:.*]]: tensor<4xf32>) -> tensor<4xf32>
// CHECK: return %[[ARG]]
func.func @identity(%arg0: tensor<4xf32>) -> tensor<4xf32> {
  return %arg0 : tensor<4xf32>
}
