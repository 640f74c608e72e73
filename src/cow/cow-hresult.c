/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The engine speaks errnos (cow.h lists them); callers inside openvss report
 * VSS HRESULTs.  This adapter is the one place where the two meet, so the
 * engine itself needs nothing of vss.h.
 */

#include <errno.h>

#include "cow/cow-hresult.h"

vss_hresult cow_errno_to_hresult(int r)
{
        switch (r < 0 ? -r : r) {
        case 0:
                return VSS_S_OK;
        case EINVAL:
                return VSS_E_INVALIDARG;
        case ENOMEM:
                return VSS_E_OUTOFMEMORY;
        case ENOENT:
        case ESTALE:
                return VSS_E_OBJECT_NOT_FOUND;
        case EEXIST:
                return VSS_E_OBJECT_ALREADY_EXISTS;
        case EMLINK:
                return VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED;
        case ENOSPC:
                return VSS_E_INSUFFICIENT_STORAGE;
        case EBADMSG:
        case EPROTONOSUPPORT:
                return VSS_E_VOLUME_NOT_SUPPORTED;
        case EACCES:
        case EPERM:
                return VSS_E_ACCESSDENIED;
        case EBUSY:
                return VSS_E_VOLUME_IN_USE;
        case EINPROGRESS:
                return VSS_E_REVERT_IN_PROGRESS;
        case ENOTRECOVERABLE:
                return VSS_E_REVERT_VOLUME_LOST;
        default:
                return VSS_E_UNEXPECTED_PROVIDER_ERROR;
        }
}

