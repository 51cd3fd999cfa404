"""Export the battery node's dictionary as a CiA 306 EDS file.

canopen writes the file; this module supplies the file information canopen would otherwise
take from a shared mutable default argument, with correct times (canopen's default format
puts the month where the minutes belong). COB-IDs are written node-relative
(``$NODEID+0x180``); a node ID given here is recorded in ``[DeviceComissioning]`` so tools
that load the file without one resolve them for that node.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TextIO

from canopen.objectdictionary import ObjectDictionary
from canopen.objectdictionary.eds import export_eds as _canopen_export_eds


def export_eds(
    od: ObjectDictionary,
    dest: TextIO,
    *,
    file_name: str = "canbms.eds",
    node_id: int | None = None,
    when: datetime | None = None,
) -> None:
    """Write ``od`` as EDS text to ``dest``; ``node_id`` adds the commissioning section."""
    when = when or datetime.now(UTC)
    date, time = when.strftime("%m-%d-%Y"), when.strftime("%I:%M%p")
    file_info = {
        "FileName": file_name,
        "FileVersion": "1",
        "FileRevision": "0",
        "EdsVersion": "4.0",
        "Description": "canbms battery management system, CiA 418 battery node",
        "CreationDate": date,
        "CreationTime": time,
        "CreatedBy": "canbms",
        "ModificationDate": date,
        "ModificationTime": time,
        "ModifiedBy": "canbms",
    }
    saved = od.node_id
    od.node_id = node_id
    try:
        _canopen_export_eds(od, dest, file_info, device_commisioning=node_id is not None)
    finally:
        od.node_id = saved
