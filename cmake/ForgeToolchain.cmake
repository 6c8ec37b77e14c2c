# Compiler launcher and linker choices that keep builds fast on small machines.

find_program(FORGE_CCACHE ccache)
if(FORGE_CCACHE)
  set(CMAKE_C_COMPILER_LAUNCHER "${FORGE_CCACHE}")
  set(CMAKE_CXX_COMPILER_LAUNCHER "${FORGE_CCACHE}")
  set(CMAKE_CUDA_COMPILER_LAUNCHER "${FORGE_CCACHE}")
endif()

# lld links the MLIR-based tools several times faster than GNU ld.
find_program(FORGE_LLD NAMES ld.lld-22 ld.lld HINTS /usr/lib/llvm-22/bin)
if(FORGE_LLD)
  get_filename_component(_forge_lld_dir "${FORGE_LLD}" DIRECTORY)
  add_link_options("-fuse-ld=lld" "-B${_forge_lld_dir}")
endif()

add_compile_options(-Wall -Wextra -Wno-unused-parameter)

# The CUDA backend: a real switch. AUTO builds it when nvcc is available.
include(CheckLanguage)
set(FORGE_HAVE_CUDA OFF)
if(NOT FORGE_ENABLE_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90 100)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(FORGE_HAVE_CUDA ON)
  elseif(FORGE_ENABLE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "FORGE_ENABLE_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()
message(STATUS "forge: CUDA backend ${FORGE_HAVE_CUDA}")
