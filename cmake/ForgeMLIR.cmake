# MLIR 22 from Debian. Included after the runtime and the config frontend because
# it turns exceptions and RTTI off for everything configured after it.
# MLIR's version file accepts only an exact major.minor request, so ask for
# any version from the LLVM 22 prefix and check the major here.
find_package(MLIR REQUIRED CONFIG HINTS /usr/lib/llvm-22/lib/cmake/mlir)
if(NOT LLVM_VERSION_MAJOR EQUAL 22)
  message(FATAL_ERROR "forge needs MLIR 22, found ${LLVM_PACKAGE_VERSION}")
endif()
message(STATUS "forge: MLIR ${LLVM_PACKAGE_VERSION} from ${MLIR_DIR}")
list(APPEND CMAKE_MODULE_PATH "${MLIR_CMAKE_DIR}" "${LLVM_CMAKE_DIR}")
include(TableGen)
include(AddLLVM)
include(AddMLIR)
include(HandleLLVMOptions)
include_directories(SYSTEM ${LLVM_INCLUDE_DIRS} ${MLIR_INCLUDE_DIRS})
separate_arguments(_forge_llvm_defs NATIVE_COMMAND "${LLVM_DEFINITIONS}")
add_definitions(${_forge_llvm_defs})
# Debian ships `lit`, not `llvm-lit`.
set(LLVM_EXTERNAL_LIT /usr/lib/llvm-22/bin/lit CACHE FILEPATH "lit")
# Generated .inc files are included as "dialects/forge/IR/ForgeOps.h.inc".
include_directories("${CMAKE_BINARY_DIR}")
