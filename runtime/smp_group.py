"""spikeflight's own SMP group (a user group, as mcumgr allows from 64 up): what the
standard groups cannot say, defined with the ``smp`` package's message classes so that
``smpclient`` sends it like any other request.

Group 72, command 0, read: the device report: target class, the id of the key images
must be signed by (SHA-256 of its DER public key, as KEYHASH), backend, slot size, the
stored security counter, the last boot (result, image, version, self-test, reason) and
the last events of the device's log.
"""

from __future__ import annotations

from typing import Any

import cbor2
from smp import error as smperror
from smp import header as smphdr
from smp import message as smpmsg

GROUP_ID = 72
REPORT = 0


class DeviceReportErrorV1(smperror.ErrorV1):
    _GROUP_ID = GROUP_ID


class DeviceReportErrorV2(smperror.ErrorV2[smperror.MGMT_ERR]):
    _GROUP_ID = GROUP_ID


class DeviceReportReadResponse(smpmsg.ReadResponse):
    _GROUP_ID = GROUP_ID
    _COMMAND_ID = REPORT

    target: str
    key_id: str
    backend: str
    slot_size: int
    security_counter: int
    boot: dict[str, Any]
    events: list[dict[str, Any]]


class DeviceReportReadRequest(smpmsg.ReadRequest):
    """Also a ``smpclient`` request: it names its response and error types."""

    _GROUP_ID = GROUP_ID
    _COMMAND_ID = REPORT
    _Response = DeviceReportReadResponse
    _ErrorV1 = DeviceReportErrorV1
    _ErrorV2 = DeviceReportErrorV2


def error_frame(request: smphdr.Header, error_class: type[smperror.ErrorV1],
                rc: smperror.MGMT_ERR, reason: str) -> bytes:
    """An SMP version-1 error response (``rc`` and a one-line reason ``rsn``, as Zephyr
    sends with verbose errors) to the request with header ``request``, encoded by the
    group's ``ErrorV1`` message class (the header needs the body's length first)."""
    length = len(cbor2.dumps({"rc": int(rc), "rsn": reason}, canonical=True))
    op = smphdr.OP.READ_RSP if request.op == smphdr.OP.READ else smphdr.OP.WRITE_RSP
    header = smphdr.Header(op=op, version=request.version, flags=smphdr.Flag(0),
                           length=length, group_id=request.group_id,
                           sequence=request.sequence, command_id=request.command_id)
    return bytes(error_class(header=header, rc=rc, rsn=reason))
