/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Writes seed inputs (valid diff areas with snapshots and copies) into dir. */
int fuzz_cow_make_corpus(const char *dir);
