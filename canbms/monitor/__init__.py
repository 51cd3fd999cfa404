"""``canbms monitor``: a read-only live view of the buses.

`model.MonitorModel` decodes the frames and keeps what the screen shows (plain, testable,
no terminal); `faults` maps BMS_ActiveFaults bits to the diagnosis catalogue; `load` measures
bus load; `source` reads the buses; `app.MonitorApp` is the textual front end (the optional
extra ``monitor``).
"""
