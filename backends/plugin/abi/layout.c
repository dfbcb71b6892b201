/*
 * The ABI's layout, pinned. A plugin is compiled by another compiler, maybe years later: these
 * checks fail the build here if a change to polychip_backend.h moves a field that version 1
 * plugins rely on (x86-64 and AArch64 System V / LP64 layouts). Appending fields changes only
 * the sizes, and then the version-1 offsets below still hold.
 */
#include "polychip_backend.h"

#include <stddef.h>

#if defined(__LP64__)
_Static_assert(offsetof(polychip_backend_api, struct_size) == 0, "polychip_backend_api.struct_size");
_Static_assert(offsetof(polychip_backend_api, abi_version) == 4, "polychip_backend_api.abi_version");
_Static_assert(offsetof(polychip_backend_api, name) == 8, "polychip_backend_api.name");
_Static_assert(offsetof(polychip_backend_api, init) == 24, "polychip_backend_api.init");
_Static_assert(offsetof(polychip_backend_api, execute) == 104, "polychip_backend_api.execute");
_Static_assert(offsetof(polychip_backend_api, kernel_tiling) == 120, "polychip_backend_api.kernel_tiling");
_Static_assert(offsetof(polychip_op, kernel) == 4, "polychip_op.kernel");
_Static_assert(offsetof(polychip_op, matmul) == 8, "polychip_op.matmul");
_Static_assert(offsetof(polychip_op, moe) == 120, "polychip_op.moe");
_Static_assert(sizeof(polychip_op) >= 136, "polychip_op");
_Static_assert(offsetof(polychip_tensor, shape) == 16, "polychip_tensor.shape");
_Static_assert(offsetof(polychip_tensor, buffer) == 80, "polychip_tensor.buffer");
_Static_assert(offsetof(polychip_tensor, name) == 96, "polychip_tensor.name");
_Static_assert(offsetof(polychip_device_info, memory_bytes) == 200, "polychip_device_info.memory_bytes");
_Static_assert(offsetof(polychip_device_info, details) == 272, "polychip_device_info.details");
_Static_assert(offsetof(polychip_tile_boundary, dim) == 16, "polychip_tile_boundary.dim");
#endif

