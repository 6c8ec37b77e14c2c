//===- Gemm.cpp - cuBLASLt matmuls of the CUDA backend --------------------===//

#include "runtime/cuda/Gemm.h"

namespace forge::cuda {

namespace {
cudaDataType_t cudaType(Dt dt) {
  switch (dt) {
  case Dt::bf16:
    return CUDA_R_16BF;
  case Dt::f16:
    return CUDA_R_16F;
  default:
    return CUDA_R_32F;
  }
}
} // namespace

const char *statusName(cublasStatus_t status) {
  switch (status) {
  case CUBLAS_STATUS_SUCCESS:
    return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED:
    return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED:
    return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE:
    return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_ARCH_MISMATCH:
    return "CUBLAS_STATUS_ARCH_MISMATCH";
  case CUBLAS_STATUS_EXECUTION_FAILED:
    return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_NOT_SUPPORTED:
    return "CUBLAS_STATUS_NOT_SUPPORTED";
  default:
    return "CUBLAS_STATUS_ERROR";
  }
}

Gemm::~Gemm() {
  if (a_)
    cublasLtMatrixLayoutDestroy(a_);
  if (b_)
    cublasLtMatrixLayoutDestroy(b_);
  if (c_)
    cublasLtMatrixLayoutDestroy(c_);
  if (op_)
    cublasLtMatmulDescDestroy(op_);
}

std::string Gemm::init(cublasLtHandle_t handle, bool transA, bool transB,
                       int64_t m, int64_t n, int64_t k, Dt ab, Dt c,
                       size_t workspaceBytes, uint32_t alignment) {
  if (!supported(ab, c))
    return "cuBLASLt cannot write these operands' product to this dtype";
  handle_ = handle;
  // Column-major view: C^T[n, m] = op(B)^T[n, k] op(A)^T[k, m]. A row-major
  // [r, c] matrix is a column-major [c, r] one with leading dimension c, so
  // the column-major "A" is our B and "B" our A, with the same transposes.
  if (std::string e = describe(transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                               transA ? CUBLAS_OP_T : CUBLAS_OP_N);
      !e.empty())
    return e;
  // Stored column-major shapes (rows, cols, leading dimension).
  // Our B (row-major [k, n], or [n, k] when transposed) is cuBLAS's A.
  const uint64_t aRows = transB ? k : n, aCols = transB ? n : k;
  const uint64_t bRows = transA ? m : k, bCols = transA ? k : m;
  if (std::string e = layouts(cudaType(ab), aRows, aCols, cudaType(ab), bRows,
                              bCols, cudaType(c), n, m);
      !e.empty())
    return e;
  return chooseAlgorithm(workspaceBytes, alignment);
}

std::string Gemm::describe(cublasOperation_t opA, cublasOperation_t opB) {
  cublasStatus_t st =
      cublasLtMatmulDescCreate(&op_, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &opA,
                                        sizeof(opA));
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &opB,
                                        sizeof(opB));
  return st == CUBLAS_STATUS_SUCCESS
             ? ""
             : std::string("the cuBLASLt matmul descriptor: ") + statusName(st);
}

std::string Gemm::layouts(cudaDataType_t ta, uint64_t aRows, uint64_t aCols,
                          cudaDataType_t tb, uint64_t bRows, uint64_t bCols,
                          cudaDataType_t tc, uint64_t cRows, uint64_t cCols) {
  // Column-major and dense: each leading dimension is the row count.
  cublasStatus_t st = cublasLtMatrixLayoutCreate(&a_, ta, aRows, aCols, aRows);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatrixLayoutCreate(&b_, tb, bRows, bCols, bRows);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatrixLayoutCreate(&c_, tc, cRows, cCols, cRows);
  return st == CUBLAS_STATUS_SUCCESS
             ? ""
             : std::string("cublasLtMatrixLayoutCreate failed: ") +
                   statusName(st);
}

std::string Gemm::initFp8(cublasLtHandle_t handle, int64_t m, int64_t n,
                          int64_t k, bool aE4m3, bool bE4m3, Dt c,
                          const float *aDequant, const float *bDequant,
                          size_t workspaceBytes, uint32_t alignment) {
  if (!aE4m3 && !bE4m3)
    return "cuBLASLt has no e5m2 x e5m2 matmul";
  if (m % 16 || n % 16 || k % 16)
    return "fp8 matmuls need m, n and k divisible by 16 (here " +
           std::to_string(m) + ", " + std::to_string(n) + ", " +
           std::to_string(k) + ")";
  handle_ = handle;
  // Column-major view as in init: C^T[n, m] = B[n, k] A[m, k]^T. Our
  // row-major B[n, k] is a column-major [k, n] matrix, cuBLAS's A taken
  // transposed; our A[m, k] is a column-major [k, m] one, cuBLAS's B as it
  // is: the "TN" layout fp8 kernels require.
  if (std::string e = describe(CUBLAS_OP_T, CUBLAS_OP_N); !e.empty())
    return e;
  // cuBLAS's A is our B: its scale is our B's.
  const void *scaleA = bDequant, *scaleB = aDequant;
  cublasStatus_t st;
  if ((st = cublasLtMatmulDescSetAttribute(
           op_, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &scaleA,
           sizeof(scaleA))) != CUBLAS_STATUS_SUCCESS ||
      (st = cublasLtMatmulDescSetAttribute(
           op_, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &scaleB,
           sizeof(scaleB))) != CUBLAS_STATUS_SUCCESS)
    return std::string("setting the fp8 scales failed: ") + statusName(st);
  // Fast accumulation (no periodic promotion of the partial sums) stays
  // off: torchao turns it on for the forward matmul only, and forge's
  // matmuls follow the CPU reference's f32 accumulation.
  const cudaDataType_t fa = aE4m3 ? CUDA_R_8F_E4M3 : CUDA_R_8F_E5M2;
  const cudaDataType_t fb = bE4m3 ? CUDA_R_8F_E4M3 : CUDA_R_8F_E5M2;
  if (std::string e = layouts(fb, k, n, fa, k, m, cudaType(c), n, m);
      !e.empty())
    return e;
  return chooseAlgorithm(workspaceBytes, alignment);
}

uint32_t commonAlignment(std::initializer_list<const void *> ptrs) {
  uint32_t a = 256;
  for (const void *p : ptrs) {
    const auto address = reinterpret_cast<uintptr_t>(p);
    while (a > 1 && address % a)
      a /= 2;
  }
  return a;
}

std::string Gemm::chooseAlgorithm(size_t workspaceBytes, uint32_t alignment) {
  cublasStatus_t st;
  auto fail = [&](const char *what) {
    return std::string(what) + " failed: " + statusName(st);
  };
  cublasLtMatmulPreference_t pref = nullptr;
  if ((st = cublasLtMatmulPreferenceCreate(&pref)) != CUBLAS_STATUS_SUCCESS)
    return fail("cublasLtMatmulPreferenceCreate");
  // An algorithm chosen for the default 256-byte alignment could refuse
  // operands that have less when it runs.
  for (cublasLtMatmulPreferenceAttributes_t attr :
       {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    if ((st = cublasLtMatmulPreferenceSetAttribute(pref, attr, &alignment,
                                                   sizeof(alignment))) !=
        CUBLAS_STATUS_SUCCESS) {
      cublasLtMatmulPreferenceDestroy(pref);
      return fail("setting the operands' alignment");
    }
  if ((st = cublasLtMatmulPreferenceSetAttribute(
           pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspaceBytes,
           sizeof(workspaceBytes))) != CUBLAS_STATUS_SUCCESS) {
    cublasLtMatmulPreferenceDestroy(pref);
    return fail("setting the workspace size");
  }
  // Split-K partial sums reduced in f32 (the compute type) or not split:
  // the in-place and output-type schemes keep partial sums in the output
  // type, which rounds them to 16 bits for a bf16 result, unlike the CPU's
  // one f32 accumulation.
  const uint32_t schemes =
      CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
  if ((st = cublasLtMatmulPreferenceSetAttribute(
           pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
           sizeof(schemes))) != CUBLAS_STATUS_SUCCESS) {
    cublasLtMatmulPreferenceDestroy(pref);
    return fail("setting the split-K reduction");
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  st = cublasLtMatmulAlgoGetHeuristic(handle_, op_, a_, b_, c_, c_, pref, 1,
                                      &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS)
    return fail("cublasLtMatmulAlgoGetHeuristic");
  if (found == 0)
    return "cuBLASLt has no algorithm for this matmul";
  algo_ = result.algo;
  return "";
}

cublasStatus_t Gemm::run(const void *a, const void *b, void *c, void *workspace,
                         size_t workspaceBytes, cudaStream_t stream) const {
  const float one = 1.0f, zero = 0.0f;
  // cuBLAS's A is our B and vice versa (see init).
  return cublasLtMatmul(handle_, op_, &one, b, a_, a, b_, &zero, c, c_, c, c_,
                        &algo_, workspace, workspaceBytes, stream);
}

} // namespace forge::cuda
