/* The oneDNN backend plugin: a shared library (libPolychipOneDNN.so) that exports only the
 * entry point of the Polychip backend ABI. Load it with `polychip --plugin PATH` or
 * `Polychip.loadPlugin(path:)`; its device is `onednn:0`. See docs/plugins.md. */
#ifndef POLYCHIP_ONEDNN_H
#define POLYCHIP_ONEDNN_H
#include "polychip_backend.h"
#endif
