//===- Mesh.cpp - Mesh groups and the network environment -----------------===//
//
// What every communication backend shares: which ranks form each mesh
// group, and KempnerForge's network settings for NCCL and gloo.
//
//===----------------------------------------------------------------------===//

#include "runtime/comm/Communicator.h"

#include <cstdlib>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/socket.h>

namespace forge::comm {

std::vector<MeshGroup> meshGroups(int rank, const MeshShape &mesh) {
  std::vector<MeshGroup> out;
  for (size_t d = 0; d < mesh.dims.size(); ++d) {
    if (mesh.sizes[d] <= 1)
      continue;
    int64_t stride = 1;
    for (size_t e = d + 1; e < mesh.dims.size(); ++e)
      stride *= mesh.sizes[e];
    MeshGroup g;
    g.dim = mesh.dims[d];
    g.coordinate = static_cast<int>((rank / stride) % mesh.sizes[d]);
    const int base = static_cast<int>(rank - g.coordinate * stride);
    for (int64_t k = 0; k < mesh.sizes[d]; ++k)
      g.members.push_back(static_cast<int>(base + k * stride));
    g.prefix = mesh.dims[d] + "/" + std::to_string(base);
    out.push_back(std::move(g));
  }
  return out;
}

std::string firstInfinibandInterface(
    const std::vector<std::pair<std::string, bool>> &interfaces) {
  for (const auto &[name, up] : interfaces)
    if (up && name.rfind("ib", 0) == 0)
      return name;
  return "";
}

std::string setNcclEnvironment() {
  std::vector<std::pair<std::string, bool>> interfaces;
  // KempnerForge takes the first ib* interface that is up. An IPoIB port
  // that is up without a link or without an IPv4 address makes NCCL's
  // bootstrap and gloo fail (or hang until the timeout), so forge also
  // wants the link running and an address: one entry per IPv4 address.
  if (ifaddrs *list = nullptr; getifaddrs(&list) == 0) {
    for (ifaddrs *i = list; i; i = i->ifa_next)
      if (i->ifa_name && i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
        interfaces.push_back({i->ifa_name, (i->ifa_flags & IFF_UP) &&
                                               (i->ifa_flags & IFF_RUNNING)});
    freeifaddrs(list);
  }
  std::string set;
  auto setDefault = [&](const char *var, const std::string &value) {
    if (value.empty() || std::getenv(var))
      return;
    setenv(var, value.c_str(), 0);
    set += std::string(set.empty() ? "" : " ") + var + "=" + value;
  };
  const std::string ib = firstInfinibandInterface(interfaces);
  setDefault("NCCL_SOCKET_IFNAME", ib);
  setDefault("GLOO_SOCKET_IFNAME", ib);
  setDefault("NCCL_IB_DISABLE", "0");
  setDefault("NCCL_NET_GDR_LEVEL", "2");
  return set;
}

} // namespace forge::comm
