/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* openvss's copy-on-write system provider (docs/cow-provider.md). */

#include "vss/provider.h"

#define VSS_COW_PROVIDER_ID "{6f70656e-7673-4373-af77-70726f760001}"

extern const struct vss_provider_ops vss_provider_cow;
