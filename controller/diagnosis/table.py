"""The catalogue as a Markdown table, for docs/diagnosis.md (a test keeps the two equal)."""

from __future__ import annotations

from controller.diagnosis.catalogue import Catalogue, Diagnosis

HEADER = (
    "| ID | code | severity | reaction | debounce (set / clear) | latching | element | cause |\n"
    "|---|---|---|---|---|---|---|---|"
)


def _debounce(d: Diagnosis) -> str:
    if d.configured_in is not None:
        return f"per level, `{d.configured_in}`"
    return f"{d.set_delay_ms:g} ms / {d.clear_delay_ms:g} ms"


def markdown(catalogue: Catalogue) -> str:
    rows = [
        f"| `{d.id}` | {d.code} | {d.severity} | {d.reaction} | {_debounce(d)} | "
        f"{'yes' if d.latching else 'no'} | {', '.join(d.elements)} | {d.cause} |"
        for d in catalogue
    ]
    return "\n".join((HEADER, *rows)) + "\n"
