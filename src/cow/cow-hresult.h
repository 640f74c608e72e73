/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The HRESULT a caller of the engine should report for its negative errno r
 * (cow-hresult.c; 0 gives VSS_S_OK). */

#include "vss/vss.h"

vss_hresult cow_errno_to_hresult(int r);
