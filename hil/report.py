"""The bench's report: a markdown and an HTML table, JUnit XML, one plot per row."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from hil.rows import Outcome
from hil.timing import formula, total

COLUMNS = (
    "fault", "state", "expected", "observed", "diagnosis", "limits", "open command",
    "coils open", "bound (diagnosis / limits / open / coils)", "result",
)  # fmt: skip


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def cells(o: Outcome) -> list[str]:
    """One table row: what was expected, seen, and within which bound."""
    row, b = o.row, o.bounds
    expected = (
        "none" if row.diagnosis == "none" else f"{row.diagnosis} ({row.level}, {row.reaction})"
    )
    if row.pending:
        expected = "pending: " + (row.note or "not documented yet")
    bound = "-"
    if b is not None and b.diagnosis:
        bound = " / ".join(_ms(total(t)) for t in (b.diagnosis, b.limits, b.open_command, b.coils))
    result = o.verdict if not o.error else f"FAIL ({o.error})"
    if o.failures:
        result += ": " + "; ".join(f.split(" = ")[0] for f in o.failures)
    return [
        row.fault, row.state, expected, ", ".join(o.observed) or "none",
        _ms(o.diagnosis_at), _ms(o.limits_at), _ms(o.open_at), _ms(o.coils_at), bound, result,
    ]  # fmt: skip


def summary(outcomes: list[Outcome]) -> str:
    failed = sum(not o.passed for o in outcomes)
    pending = sum(o.row.pending for o in outcomes)
    passed = len(outcomes) - failed - pending
    return f"{len(outcomes)} rows: {passed} passed, {failed} failed, {pending} pending"


def markdown(outcomes: list[Outcome], title: str, preamble: str = "") -> str:
    lines = [f"# {title}", ""]
    if preamble:
        lines += [preamble, ""]
    lines += [summary(outcomes), ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for o in outcomes:
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells(o)) + " |")
    lines += ["", "## How each bound is made up", ""]
    seen: set[tuple[str, str]] = set()
    for o in outcomes:
        key = (o.row.fault, o.row.diagnosis)
        if o.bounds is None or not o.bounds.diagnosis or key in seen:
            continue
        seen.add(key)
        b = o.bounds
        lines.append(f"- `{o.row.fault}` ({o.row.diagnosis}): diagnosis {formula(b.diagnosis)}; "
                     f"open command {formula(b.open_command[len(b.diagnosis):])} more; "
                     f"coils {formula(b.coils[len(b.open_command):])} more")  # fmt: skip
    return "\n".join(lines) + "\n"


def page(
    outcomes: list[Outcome], title: str, preamble: str = "", plots: dict[str, str] | None = None
) -> str:
    plots = plots or {}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in (*COLUMNS, "plot"))
    body = []
    for o in outcomes:
        style = "" if o.passed else ' style="background:#fdd"'
        tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells(o))
        plot = plots.get(o.row.name)
        link = f'<a href="{html.escape(plot)}">plot</a>' if plot else "-"
        body.append(f"<tr{style}>{tds}<td>{link}</td></tr>")
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;"
        "font:13px sans-serif}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(preamble)}</p>"
        f"<p>{html.escape(summary(outcomes))}</p>"
        f"<table><tr>{head}</tr>{''.join(body)}</table></body></html>\n"
    )


def junit(outcomes: list[Outcome], suite: str = "canbms hil") -> str:
    failures = sum(not o.passed for o in outcomes)
    skipped = sum(o.row.pending for o in outcomes)
    root = ET.Element("testsuite", name=suite, tests=str(len(outcomes)),
                      failures=str(failures), skipped=str(skipped))  # fmt: skip
    for o in outcomes:
        case = ET.SubElement(root, "testcase", classname=suite, name=o.row.name,
                             time=f"{o.duration_s:.3f}")  # fmt: skip
        if o.row.pending:
            ET.SubElement(
                case,
                "skipped",
                message="expectation pending; observed: " + (", ".join(o.observed) or "none"),
            )
        elif not o.passed:
            text = o.error or "; ".join(o.failures)
            ET.SubElement(case, "failure", message=text.split(";")[0]).text = text
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def plot_name(o: Outcome) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", o.row.name) + ".png"


def plot(o: Outcome, path: Path) -> None:
    """Cell envelope, current and limits around the onset, reactions marked (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = o.plot
    fig, (ax_v, ax_i) = plt.subplots(2, 1, sharex=True, figsize=(8, 5))
    ax_v.plot(d["t_cell"], d["vmax"], label="max cell")
    ax_v.plot(d["t_cell"], d["vmin"], label="min cell")
    ax_v.set_ylabel("V")
    ax_i.plot(d["t_i"], d["i"], label="current (+ charge)")
    ax_i.step(d["t_lim"], d["ccl"], where="post", label="CCL")
    ax_i.step(d["t_lim"], [-x for x in d["dcl"]], where="post", label="-DCL")
    ax_i.set_ylabel("A")
    ax_i.set_xlabel("s after the onset")
    marks = [("onset", 0.0), ("diagnosis", o.diagnosis_at), ("limits", o.limits_at),
             ("open command", o.open_at), ("coils open", o.coils_at)]  # fmt: skip
    for ax in (ax_v, ax_i):
        for _, at in marks:
            if at is not None:
                ax.axvline(at, linestyle=":", color="grey")
        ax.legend(loc="best", fontsize=7)
    for label, at in marks:
        if at is not None:
            ax_v.annotate(label, (at, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                          fontsize=7, va="top")  # fmt: skip
    fig.suptitle(f"{o.row.name}: {o.verdict}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(outcomes: list[Outcome], out: Path, title: str, preamble: str = "") -> list[str]:
    """Everything into ``out``; the notes to print (a plot skipped, for one)."""
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    plots: dict[str, str] = {}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        notes.append("plots skipped: matplotlib is not installed (pip install canbms[plot])")
    else:
        (out / "plots").mkdir(exist_ok=True)
        for o in outcomes:
            if o.plot and any(o.plot.values()):
                name = f"plots/{plot_name(o)}"
                plot(o, out / name)
                plots[o.row.name] = name
    (out / "report.md").write_text(markdown(outcomes, title, preamble), encoding="utf-8")
    (out / "report.html").write_text(page(outcomes, title, preamble, plots), encoding="utf-8")
    (out / "junit.xml").write_text(junit(outcomes), encoding="utf-8")
    return notes
