//===- Plugin.cpp - Finding and loading libforge-cuda.so ------------------===//

#include "runtime/cuda/Plugin.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>

namespace forge::cuda {

const Plugin *loadPlugin(std::string &why) {
  static std::once_flag once;
  static const Plugin *plugin = nullptr;
  static std::string error;
  std::call_once(once, [] {
    std::string path;
    if (const char *env = std::getenv("FORGE_CUDA_PLUGIN"); env && *env) {
      path = env;
    } else {
      std::error_code ec;
      const std::filesystem::path exe =
          std::filesystem::read_symlink("/proc/self/exe", ec);
      const std::filesystem::path beside =
          exe.parent_path().parent_path() / "lib" / kPluginFile;
      path = !ec && std::filesystem::exists(beside, ec) ? beside.string()
                                                        : kPluginFile;
    }
    // RTLD_LOCAL: the library's symbols never resolve anyone else's.
    void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char *e = dlerror();
      error = "cannot load the CUDA backend " + path + ": " +
              (e ? e : "unknown error");
      return;
    }
    using Entry = const Plugin *(*)();
    auto entry = reinterpret_cast<Entry>(dlsym(handle, "forge_cuda_plugin"));
    if (!entry) {
      error = path + " is not forge's CUDA backend (no forge_cuda_plugin)";
      return;
    }
    const Plugin *p = entry();
    if (!p || p->abi != kPluginAbi) {
      error = path + " was built for another forge (plugin ABI " +
              std::to_string(p ? p->abi : -1) + ", this forge-run needs " +
              std::to_string(kPluginAbi) + "); rebuild both together";
      return;
    }
    plugin = p;
  });
  why = error;
  return plugin;
}

} // namespace forge::cuda
