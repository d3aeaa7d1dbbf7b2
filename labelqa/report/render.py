"""Render a `ReportData` as one self-contained HTML5 page: inline CSS and hand-written SVG, no
script and no external resource, so the file can be mailed, archived or opened offline.

Every number a chart or table shows is also written exactly (`repr` of a float, `str` of an
int) in `data-*` attributes, so tests read values back without parsing rounded text:

* noise chart bars: `<rect data-class data-series="label_noise"|"inverse_label_noise"
  data-value>`;
* score histogram bars: `<rect data-bin data-series="flagged"|"not_flagged" data-value>`,
  cutoff line: `<line data-cutoff>`;
* table rows: `<tr data-class>` (joint, noise changes), `<tr data-id data-rank data-score>`
  (worst examples); numbers in tables and the summary and change blocks:
  `data-field="<model field>" data-value`;
* tags of the worst examples: `<span|ins|del class="tag" data-tag data-change>`;
* reviewers' verdicts (only when the run has reviews): `<tr data-scope data-key>` with
  `data-field` cells `reviewed`, `confirmed`, `precision`, `precision_low`, `precision_high`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from numbers import Integral

from labelqa.core.separation import WEAK_SEPARATION_ADVICE, WEAK_SEPARATION_AUC, is_weak
from labelqa.report.model import (
    AnnotatorRow,
    Annotators,
    Change,
    ClassRow,
    NoiseChange,
    PrecisionRow,
    ReportData,
    ScoreHistogram,
    WorstExample,
)

LABEL_NOISE_COLOUR = "#c0392b"  # flagged / label noise (annotated but confidently absent)
INVERSE_COLOUR = "#2c7fb8"  # not flagged / inverse noise (missing but confidently present)
_GRID = "#e6e6e6"
_AXIS = "#999"
_LABEL_CHARS = 28  # visible SVG label length; the full name stays in data-class and <title>
_CHART_WIDTH = 900

_FONTS = ('system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, '
          '"Noto Sans", sans-serif')

_CSS = f"""
:root {{ color-scheme: light; }}
body {{ margin: 0; background: #fff; color: #222; font-family: {_FONTS};
  font-size: 15px; line-height: 1.45; }}
main {{ max-width: 1200px; margin: 0 auto; padding: 24px 32px 40px; }}
header h1 {{ font-size: 1.6rem; margin: 0 0 2px; overflow-wrap: anywhere; }}
header p {{ margin: 0; color: #666; }}
h2 {{ font-size: 1.2rem; margin: 40px 0 12px; padding-bottom: 4px;
  border-bottom: 1px solid #ddd; }}
p.lead, p.muted, .muted {{ color: #666; }}
p.lead {{ margin-top: 0; font-size: .9rem; }}
dl.meta {{ display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px;
  margin: 0 0 16px; font-size: .9rem; }}
dl.meta dt {{ color: #666; }}
dl.meta dd {{ margin: 0; overflow-wrap: anywhere; }}
.stats {{ display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 12px; }}
.stat {{ border: 1px solid #e0e0e0; border-radius: 6px; padding: 10px 16px;
  min-width: 130px; }}
.stat .value {{ display: block; font-size: 1.8rem; font-weight: 600;
  font-variant-numeric: tabular-nums; }}
.stat .label {{ color: #666; font-size: .85rem; }}
.badge {{ display: inline-block; padding: 0 8px; border-radius: 10px; background: #eee;
  font-size: .85rem; }}
.badge.bad {{ background: #fbeaea; color: {LABEL_NOISE_COLOUR}; }}
table {{ border-collapse: collapse; width: 100%; font-size: .85rem; margin: 8px 0; }}
th, td {{ border: 1px solid #e3e3e3; padding: 4px 8px; text-align: left;
  vertical-align: top; }}
thead th {{ background: #f6f6f6; font-weight: 600; }}
td.stands-out {{ font-weight: 600; color: {LABEL_NOISE_COLOUR}; }}
td.num, th.num {{ text-align: right; font-variant-numeric: tabular-nums;
  white-space: nowrap; }}
/* header words wrap (numbers never do) so that the 12 columns of the confident joint fit in
   the 1200 px main column of a 1280 px window */
thead th.num {{ white-space: normal; }}
td.name {{ overflow-wrap: anywhere; max-width: 200px; }}
td.text {{ overflow-wrap: break-word; }}
td.id {{ white-space: nowrap; }}  /* an id is read and copied whole */
td.note {{ min-width: 140px; }}
.scroll {{ overflow-x: auto; }}
td.note {{ color: #666; font-size: .8rem; }}
.tag {{ display: inline-block; margin: 1px 2px; padding: 0 6px; border-radius: 3px;
  background: #f0f0f0; overflow-wrap: anywhere; }}
ins.tag {{ background: #e6f4ea; color: #1e7b34; text-decoration: none; }}
del.tag {{ background: #fbeaea; color: {LABEL_NOISE_COLOUR}; text-decoration: line-through; }}
p.warning {{ border-left: 4px solid {LABEL_NOISE_COLOUR}; background: #fbeaea;
  padding: 8px 12px; }}
.worse {{ color: {LABEL_NOISE_COLOUR}; }}
.better {{ color: #1e7b34; }}
svg {{ display: block; width: 100%; height: auto; margin: 8px 0; }}
svg text {{ font-family: inherit; fill: #333; }}
footer {{ margin-top: 48px; padding-top: 8px; border-top: 1px solid #eee; color: #888;
  font-size: .8rem; }}
"""


# ---------------------------------------------------------------- formatting helpers


def _esc(value: object) -> str:
    """Escape text for element content and quoted attributes.

    Backticks become entities too (old parsers took them as quotes), and "://" in user text
    is broken up by an entity so the document never contains a literal URL: parsing still
    gives the exact text back.
    """
    text = html.escape(str(value), quote=True)
    return text.replace("`", "&#96;").replace("://", "&#58;//")


def _attrs(attrs: dict[str, object]) -> str:
    return "".join(f' {name}="{_esc(value)}"' for name, value in attrs.items())


def _exact(value: float | int) -> str:
    """The machine-readable form: str of an integer, repr of a float."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        return str(int(value))
    return repr(float(value))


def _dec(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _signed(value: float | int, digits: int = 4) -> str:
    text = f"{value:+,}" if isinstance(value, Integral) else f"{value:+.{digits}f}"
    return text.replace("-", "−")  # typographic minus for display only


def _short(value: float) -> str:
    return f"{value:.3g}"


def _clip(text: str, limit: int = _LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num_td(field: str, value: float | int | None, shown: str,
            extra: dict[str, object] | None = None) -> str:
    """A right-aligned number cell carrying the exact value (empty data-value when None)."""
    attrs: dict[str, object] = {"class": "num", "data-field": field,
                                "data-value": "" if value is None else _exact(value)}
    attrs.update(extra or {})
    return f"<td{_attrs(attrs)}>{_esc(shown)}</td>"


def _nice_ticks(vmax: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values from 0 up to at least vmax, for readable axis labels."""
    if not vmax > 0:
        vmax = 1.0
    raw = vmax / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    multiples = (1.0, 2.0, 5.0, 10.0) if integer else (1.0, 2.0, 2.5, 5.0, 10.0)
    step = next(m * magnitude for m in multiples if m * magnitude >= raw * (1 - 1e-12))
    if integer:
        step = max(1.0, step)
    steps = math.ceil(vmax / step - 1e-9)
    return [i * step for i in range(steps + 1)]


def _tick_label(value: float, integer: bool = False) -> str:
    if integer:
        return f"{int(round(value)):,}"
    return f"{round(value, 10):g}"


def _svg_open(width: float, height: float, label: str) -> str:
    # no xmlns: inline SVG in HTML5 does not need it, and it would be a URL
    return (f'<svg viewBox="0 0 {width:g} {height:g}" width="100%" role="img" '
            f'aria-label="{_esc(label)}">')


def _text(x: float, y: float, content: str, anchor: str = "start", size: int = 11,
          extra: str = "", title: str | None = None) -> str:
    hover = "" if title is None else f"<title>{_esc(title)}</title>"
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}"'
            f"{extra}>{_esc(content)}{hover}</text>")


def _legend(x: float, y: float, entries: Sequence[tuple[str, str]]) -> str:
    """Colour swatches (no data-* attributes, so they never count as bars)."""
    parts = []
    for label, colour in entries:
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" '
                     f'fill="{colour}"/>')
        parts.append(_text(x + 14, y, label))
        x += 24 + 6.5 * len(label)
    return "".join(parts)


# ---------------------------------------------------------------- sections


def _section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{section_id}">\n<h2>{_esc(title)}</h2>\n{body}\n</section>'


def _stat(field: str, value: float | int, shown: str, label: str, sub: str = "") -> str:
    attrs = _attrs({"class": "value", "data-field": field, "data-value": _exact(value)})
    sub_html = f'<br><span class="label">{_esc(sub)}</span>' if sub else ""
    return (f'<div class="stat"><span{attrs}>{_esc(shown)}</span>'
            f'<span class="label">{_esc(label)}</span>{sub_html}</div>')


def _summary(data: ReportData) -> str:
    status = data.status or "unknown"
    bad = any(word in status.lower() for word in ("fail", "error"))
    badge = f'<span class="badge{" bad" if bad else ""}">{_esc(status)}</span>'
    meta = [("dataset", _esc(data.dataset)), ("run date", _esc(data.run_date)),
            ("run id", _esc(data.run_id or "—")), ("status", badge),
            ("generated at", _esc(data.generated_at)),
            ("filter_by", f"<code>{_esc(data.filter_by)}</code>"),
            ("scoring method", f"<code>{_esc(data.scoring_method)}</code>")]
    meta_html = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in meta)
    share = (f"{data.num_label_issues / data.num_examples:.2%} of examples"
             if data.num_examples > 0 else "")
    stats = [
        _stat("num_examples", data.num_examples, _count(data.num_examples), "examples"),
        _stat("num_classes", data.num_classes, _count(data.num_classes), "classes"),
        _stat("num_label_issues", data.num_label_issues, _count(data.num_label_issues),
              "label issues", share),
        _stat("overall_health_score", data.overall_health_score,
              _dec(data.overall_health_score), "health score", "1 − issues / examples"),
        _stat("rows_quarantined", data.rows_quarantined, _count(data.rows_quarantined),
              "rows quarantined"),
    ]
    if data.separation_auc is not None:
        stats.append(_stat("separation_auc", data.separation_auc, _dec(data.separation_auc, 3),
                           "model separation", "mean AUC, given vs absent tags"))
    body = f'<dl class="meta">{meta_html}</dl>\n<div class="stats">{"".join(stats)}</div>'
    if is_weak(data.separation_auc):
        weak = sum(is_weak(c.separation_auc) for c in data.classes)
        body += (f'\n<p class="warning" id="weak-separation">Weak model: its '
                 f"probabilities separate given from absent tags with a mean AUC of "
                 f"{data.separation_auc:.3f}, below {WEAK_SEPARATION_AUC} ({weak} of "
                 f"{len(data.classes)} classes below; see the AUC column of the confident "
                 f"joint). {_esc(WEAK_SEPARATION_ADVICE[0].upper() + WEAK_SEPARATION_ADVICE[1:])}"
                 ".</p>")
    return _section("summary", "Summary", body)


def _noise_order(classes: Iterable[ClassRow]) -> list[ClassRow]:
    """Noisiest classes first; class_index breaks ties so the order is stable."""
    return sorted(classes, key=lambda c: (-(c.label_noise + c.inverse_label_noise),
                                          c.class_index))


def _noise_chart(rows: Sequence[ClassRow]) -> str:
    left, right, top, bottom = 210.0, 70.0, 34.0, 44.0
    bar_h, group_h = 9.0, 26.0
    plot_w = _CHART_WIDTH - left - right
    plot_bottom = top + group_h * len(rows)
    height = plot_bottom + bottom
    peak = max((max(r.label_noise, r.inverse_label_noise) for r in rows), default=0.0)
    ticks = _nice_ticks(peak)
    scale = plot_w / ticks[-1]
    parts = [_svg_open(_CHART_WIDTH, height,
                       f"Label noise and inverse label noise for {len(rows)} classes"),
             _legend(left, 16, (("label noise", LABEL_NOISE_COLOUR),
                                ("inverse label noise", INVERSE_COLOUR)))]
    for tick in ticks:
        x = left + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4:.1f}" x2="{x:.1f}" '
                     f'y2="{plot_bottom:.1f}" stroke="{_GRID}"/>')
        parts.append(_text(x, plot_bottom + 16, _tick_label(tick), "middle"))
    parts.append(f'<line x1="{left:.1f}" y1="{plot_bottom:.1f}" x2="{left + plot_w:.1f}" '
                 f'y2="{plot_bottom:.1f}" stroke="{_AXIS}"/>')
    parts.append(_text(left + plot_w / 2, plot_bottom + 36,
                       "share of all examples", "middle", 12))
    for i, row in enumerate(rows):
        y = top + i * group_h + 3
        name = row.class_name
        parts.append(_text(left - 8, y + bar_h + 3, _clip(name), "end", title=name))
        series = (("label_noise", "label noise", row.label_noise, LABEL_NOISE_COLOUR),
                  ("inverse_label_noise", "inverse label noise", row.inverse_label_noise,
                   INVERSE_COLOUR))
        for j, (key, label, value, colour) in enumerate(series):
            bar_y = y + j * (bar_h + 1)
            width = max(0.0, value * scale)
            attrs = _attrs({"x": f"{left:.1f}", "y": f"{bar_y:.1f}", "width": f"{width:.2f}",
                            "height": f"{bar_h:g}", "fill": colour, "data-class": name,
                            "data-series": key, "data-value": _exact(float(value))})
            parts.append(f"<rect{attrs}><title>{_esc(name)} — {label}: {value:.4f}</title>"
                         "</rect>")
            parts.append(_text(left + width + 4, bar_y + bar_h - 1, _short(value),
                               size=9, extra=' fill="#666"'))
    parts.append("</svg>")
    return "".join(parts)


def _noise(data: ReportData, max_classes: int) -> str:
    ordered = _noise_order(data.classes)
    shown = ordered[:max_classes]
    total = len(ordered)
    if total == 0:
        return _section("noise", "Label noise per class",
                        '<p class="muted">No classes to show.</p>')
    scope = (f"showing {len(shown)} of {total} classes" if len(shown) < total
             else f"all {total} classes")
    lead = ("<p class=\"lead\">Label noise: examples annotated with the class that are "
            "confidently without it; inverse label noise: examples missing the class that "
            f"confidently have it; both as a share of all examples. {_esc(scope)}, "
            "noisiest first (label noise + inverse label noise).</p>")
    return _section("noise", "Label noise per class", lead + "\n" + _noise_chart(shown))


def _bar_height(count: int, scale: float) -> float:
    """Linear height, but at least 1px for a non-zero count so small bins stay visible."""
    return 0.0 if count <= 0 else max(1.0, count * scale)


def _check_histogram(hist: ScoreHistogram) -> int:
    bins = len(hist.flagged)
    if len(hist.not_flagged) != bins or len(hist.edges) != bins + 1:
        raise ValueError(f"histogram: {len(hist.edges)} edges for {bins} flagged and "
                         f"{len(hist.not_flagged)} not flagged counts (want bins + 1 edges)")
    return bins


def _score_chart(hist: ScoreHistogram) -> str:
    bins = _check_histogram(hist)
    left, right, top, plot_h, bottom = 64.0, 24.0, 44.0, 260.0, 48.0
    plot_w = _CHART_WIDTH - left - right
    base = top + plot_h
    x_ticks = _nice_ticks(max(1.0, hist.edges[-1]))
    lo, hi = min(0.0, hist.edges[0]), x_ticks[-1]

    def x_of(score: float) -> float:
        return left + (score - lo) / (hi - lo) * plot_w

    totals = [f + n for f, n in zip(hist.flagged, hist.not_flagged)]
    y_ticks = _nice_ticks(max(totals, default=0), integer=True)
    scale = plot_h / y_ticks[-1]
    parts = [_svg_open(_CHART_WIDTH, base + bottom,
                       f"Histogram of label quality scores in {bins} bins, flagged stacked "
                       "under not flagged"),
             _legend(left, 14, (("flagged", LABEL_NOISE_COLOUR),
                                ("not flagged", INVERSE_COLOUR)))]
    for tick in y_ticks:
        y = base - tick * scale
        parts.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{left + plot_w:.1f}" '
                     f'y2="{y:.1f}" stroke="{_GRID}"/>')
        parts.append(_text(left - 6, y + 4, _tick_label(tick, integer=True), "end"))
    for tick in x_ticks:
        parts.append(_text(x_of(tick), base + 16, _tick_label(tick), "middle"))
    for i in range(bins):
        x0, x1 = x_of(hist.edges[i]), x_of(hist.edges[i + 1])
        gap = min(1.0, (x1 - x0) * 0.1)  # a hairline between bins, none when bins are thin
        width = max(0.0, x1 - x0 - gap)
        bin_range = f"score {hist.edges[i]:.2f}–{hist.edges[i + 1]:.2f}"
        stack_top = base
        for key, label, count, colour in (
                ("flagged", "flagged", hist.flagged[i], LABEL_NOISE_COLOUR),
                ("not_flagged", "not flagged", hist.not_flagged[i], INVERSE_COLOUR)):
            h = _bar_height(count, scale)
            stack_top -= h
            attrs = _attrs({"x": f"{x0 + gap / 2:.2f}", "y": f"{stack_top:.2f}",
                            "width": f"{width:.2f}", "height": f"{h:.2f}", "fill": colour,
                            "data-bin": i, "data-series": key, "data-value": _exact(count)})
            parts.append(f"<rect{attrs}><title>{_esc(bin_range)}: {count:,} {label}"
                         "</title></rect>")
    parts.append(f'<line x1="{left:.1f}" y1="{base:.1f}" x2="{left + plot_w:.1f}" '
                 f'y2="{base:.1f}" stroke="{_AXIS}"/>')
    parts.append(_text(left + plot_w / 2, base + 38,
                       "label quality score (lower = more likely wrongly annotated)",
                       "middle", 12))
    parts.append(_text(14, top + plot_h / 2, "examples", "middle", 12,
                       extra=f' transform="rotate(-90 14 {top + plot_h / 2:.1f})"'))
    if hist.cutoff is not None:
        parts.append(_cutoff_line(x_of(hist.cutoff), hist.cutoff, top, base, left + plot_w))
    parts.append("</svg>")
    return "".join(parts)


def _cutoff_line(x: float, cutoff: float, top: float, base: float, right_edge: float) -> str:
    label = f"least severe flagged example: {cutoff:.4f}"
    # keep the label inside the chart: to the left of the line when it is near the right
    near_right = x + 6.5 * len(label) > right_edge
    anchor, label_x = ("end", x - 4) if near_right else ("start", x + 4)
    line = (f'<line x1="{x:.2f}" y1="{top - 10:.1f}" x2="{x:.2f}" y2="{base:.1f}" '
            f'stroke="#333" stroke-width="1.2" stroke-dasharray="5 4" '
            f'data-cutoff="{_exact(float(cutoff))}"><title>{_esc(label)}</title></line>')
    return line + _text(label_x, top - 2, label, anchor)


def _scores(data: ReportData) -> str:
    hist = data.histogram
    if not hist.flagged:
        return _section("scores", "Label quality scores", '<p class="muted">No scores.</p>')
    flagged, not_flagged = sum(hist.flagged), sum(hist.not_flagged)
    lead = (f'<p class="lead">{flagged:,} flagged and {not_flagged:,} not flagged examples by '
            "label quality score; flagged examples are stacked at the bottom of each bin.</p>")
    if hist.cutoff is None:
        lead += '<p class="muted">No example was flagged.</p>'
    return _section("scores", "Label quality scores", lead + "\n" + _score_chart(hist))


def _shade(count: int, row_total: int, rgb: tuple[int, int, int],
           row_name: str) -> dict[str, object]:
    """Background intensity from the cell's share of its joint row (sqrt: small shares show)."""
    share = count / row_total if row_total > 0 else 0.0
    if share <= 0:
        return {}
    alpha = 0.08 + 0.55 * math.sqrt(share)  # capped well below 1 so the text stays readable
    r, g, b = rgb
    return {"style": f"background: rgba({r}, {g}, {b}, {alpha:.3f})",
            "title": f"{share:.1%} of the {row_name} row"}


_RED = (192, 57, 43)
_BLUE = (44, 127, 184)


def _joint_row(row: ClassRow) -> str:
    given_total = row.cj_given_given + row.cj_given_not
    missing_total = row.cj_not_given + row.cj_not_not
    cells = [
        f'<td class="name">{_esc(row.class_name)}</td>',
        _num_td("num_given", row.num_given, _count(row.num_given)),
        _num_td("threshold_given", row.threshold_given, _dec(row.threshold_given)),
        _num_td("threshold_not_given", row.threshold_not_given, _dec(row.threshold_not_given)),
        _num_td("cj_given_given", row.cj_given_given, _count(row.cj_given_given)),
        _num_td("cj_given_not", row.cj_given_not, _count(row.cj_given_not),
                _shade(row.cj_given_not, given_total, _RED, "annotated")),
        _num_td("cj_not_given", row.cj_not_given, _count(row.cj_not_given),
                _shade(row.cj_not_given, missing_total, _BLUE, "not annotated")),
        _num_td("cj_not_not", row.cj_not_not, _count(row.cj_not_not)),
        _num_td("label_issues", row.label_issues, _count(row.label_issues)),
        _num_td("inverse_label_issues", row.inverse_label_issues,
                _count(row.inverse_label_issues)),
        _num_td("separation_auc", row.separation_auc, _dec(row.separation_auc, 3)),
        f'<td class="note">{_esc(row.note or "")}</td>',
    ]
    return f'<tr data-class="{_esc(row.class_name)}">{"".join(cells)}</tr>'


def _joint(data: ReportData) -> str:
    title = "Confident joint per class"
    if not data.classes:
        return _section("joint", title, '<p class="muted">No classes.</p>')
    lead = ('<p class="lead">The calibrated 2×2 confident joint of every class: annotated or '
            "not, against confidently present or confidently absent; t1 and t0 are the "
            "class's confident thresholds for the annotated and the not annotated side. "
            "Off-diagonal cells (the label issues and the inverse label issues) are shaded "
            "by their share of the row.</p>")
    head = ('<thead><tr><th rowspan="2">class</th><th rowspan="2" class="num">annotated</th>'
            '<th rowspan="2" class="num">t1</th><th rowspan="2" class="num">t0</th>'
            '<th colspan="2">given (annotated) and</th><th colspan="2">not given and</th>'
            '<th rowspan="2" class="num">label issues</th>'
            '<th rowspan="2" class="num">inverse label issues</th>'
            '<th rowspan="2" class="num" title="ROC AUC of the probabilities, annotated '
            'against not annotated">AUC</th>'
            '<th rowspan="2">note</th></tr>'
            '<tr><th class="num">confidently present</th><th class="num">confidently absent</th>'
            '<th class="num">confidently present</th><th class="num">confidently absent</th>'
            "</tr></thead>")
    rows = "\n".join(_joint_row(r) for r in sorted(data.classes, key=lambda c: c.class_index))
    return _section("joint", title, f'{lead}\n<div class="scroll"><table>{head}\n<tbody>\n'
                    f"{rows}\n</tbody></table></div>")


def _tag(tag: str, element: str = "span", change: str | None = None, prefix: str = "") -> str:
    attrs: dict[str, object] = {"class": "tag", "data-tag": tag}
    if change is not None:
        attrs["data-change"] = change
    return f"<{element}{_attrs(attrs)}>{_esc(prefix + tag)}</{element}>"


def _tag_diff(given: Sequence[str], suggested: Sequence[str]) -> str:
    """Suggested tags: kept ones plain, then additions (+, green), then removals (−, red)."""
    given_set, suggested_set = set(given), set(suggested)
    kept = [_tag(t, change="kept") for t in suggested if t in given_set]
    added = [_tag(t, "ins", "added", "+") for t in suggested if t not in given_set]
    removed = [_tag(t, "del", "removed", "−") for t in given if t not in suggested_set]
    return " ".join(kept + added + removed) or '<span class="muted">no tags</span>'


def _worst_row(example: WorstExample) -> str:
    attrs = _attrs({"data-id": example.id, "data-rank": example.issue_rank,
                    "data-score": _exact(float(example.label_quality_score))})
    given = " ".join(_tag(t) for t in example.given) or '<span class="muted">no tags</span>'
    cells = [
        _num_td("issue_rank", example.issue_rank, str(example.issue_rank)),
        f'<td class="id">{_esc(example.id)}</td>',
        _num_td("label_quality_score", float(example.label_quality_score),
                _dec(example.label_quality_score)),
        f'<td class="tags given">{given}</td>',
        f'<td class="tags suggested">{_tag_diff(example.given, example.suggested)}</td>',
        f'<td class="text">{_esc(example.explanation)}</td>',
    ]
    return f"<tr{attrs}>{''.join(cells)}</tr>"


def _worst(data: ReportData, max_examples: int) -> str:
    title = "Worst examples"
    ordered = sorted(data.worst, key=lambda e: e.issue_rank)
    shown = ordered[:max_examples]
    if not shown:
        return _section("worst", title, '<p class="muted">No examples to show.</p>')
    more = f" (showing {len(shown)} of {len(ordered)})" if len(shown) < len(ordered) else ""
    lead = (f'<p class="lead">The examples with the lowest label quality score, most severe '
            f"first{_esc(more)}. Suggested tags: <ins class=\"tag\">+added</ins> "
            '<del class="tag">−removed</del>.</p>')
    head = ('<thead><tr><th class="num">rank</th><th>id</th><th class="num">score</th>'
            "<th>given tags</th><th>suggested tags</th><th>explanation</th></tr></thead>")
    rows = "\n".join(_worst_row(e) for e in shown)
    return _section("worst", title, f"{lead}\n<table>{head}\n<tbody>\n{rows}\n</tbody></table>")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _rate_cells(kind: str, flagged: int, rate: float | None, low: float | None,
                high: float | None, ratio: float | None, stands_out: bool | None) -> str:
    shown = f"{_percent(rate)} ({_percent(low)}–{_percent(high)})"
    mark = {"class": "num stands-out"} if stands_out else {}
    return "".join([
        _num_td(f"flagged_{kind}", flagged, _count(flagged)),
        _num_td(f"{kind}_rate", rate, shown, mark),
        _num_td(f"{kind}_ratio", ratio, "—" if ratio is None else f"{ratio:.2f}×"),
    ])


def _annotator_row(row: AnnotatorRow) -> str:
    name = '<span class="muted">(none)</span>' if row.annotator is None else _esc(row.annotator)
    cells = [
        f'<td class="id">{name}</td>',
        _num_td("examples_tagged", row.examples_tagged, _count(row.examples_tagged)),
        _num_td("tags_given", row.tags_given, _count(row.tags_given)),
        _rate_cells("extraneous", row.flagged_extraneous, row.extraneous_rate,
                    row.extraneous_rate_low, row.extraneous_rate_high, row.extraneous_ratio,
                    row.extraneous_stands_out),
        _rate_cells("missing", row.flagged_missing, row.missing_rate, row.missing_rate_low,
                    row.missing_rate_high, row.missing_ratio, row.missing_stands_out),
    ]
    return f"<tr{_attrs({'data-annotator': row.annotator or ''})}>{''.join(cells)}</tr>"


def _annotators(summary: Annotators) -> str:
    title = "Annotators who stand out"
    pooled = (f"All {summary.count:,} annotators together: "
              f"{_percent(summary.pooled_extraneous_rate)} of the tags they gave are flagged as "
              "wrong, and "
              f"{_percent(summary.pooled_missing_rate)} of the tags they could have given are "
              "flagged as missing.")
    if not summary.standing_out:
        body = (f'<p class="lead">{_esc(pooled)} No annotator\'s rate is above these with 95 % '
                "confidence.</p>")
        return _section("annotators", title, body)
    more = f" ({summary.more} more not shown)" if summary.more else ""
    lead = (f'<p class="lead">{_esc(pooled)} These annotators\' rates are above them with 95 % '
            f"confidence (the Wilson interval, in brackets, lies above){_esc(more)}; the "
            "ratio compares a rate with all annotators'.</p>")
    head = ('<thead><tr><th>annotator</th><th class="num">examples</th><th class="num">tags'
            '</th><th class="num">flagged wrong</th><th class="num">rate</th><th class="num">'
            'ratio</th><th class="num">flagged missing</th><th class="num">rate</th>'
            '<th class="num">ratio</th></tr></thead>')
    rows = "\n".join(_annotator_row(r) for r in summary.standing_out)
    return _section("annotators", title, f"{lead}\n<table>{head}\n<tbody>\n{rows}\n</tbody>"
                                         "</table>")


def _trend_class(delta: float, higher_is_better: bool) -> str:
    if delta == 0:
        return ""
    return "better" if (delta > 0) == higher_is_better else "worse"


def _change_row(label: str, fields: tuple[str, str, str], previous: float | int | None,
                now: float | int, higher_is_better: bool) -> str:
    """previous | now | signed difference; integers stay integers, floats show 4 decimals."""
    def shown(value: float | int | None) -> str:
        return _count(value) if isinstance(value, Integral) else _dec(value)

    cells = [f"<th>{_esc(label)}</th>", _num_td(fields[0], previous, shown(previous)),
             _num_td(fields[1], now, shown(now))]
    if previous is None:
        cells.append(_num_td(fields[2], None, "—"))
    else:
        delta = now - previous
        trend = _trend_class(delta, higher_is_better)
        cells.append(_num_td(fields[2], delta, _signed(delta),
                             {"class": f"num {trend}".strip()}))
    return f"<tr>{''.join(cells)}</tr>"


def _noise_change_row(change: NoiseChange) -> str:
    cells = [f'<td class="name">{_esc(change.class_name)}</td>']
    for previous, now, delta in (("previous_label_noise", "label_noise", "change"),
                                 ("previous_inverse_label_noise", "inverse_label_noise",
                                  "inverse_change")):
        moved = getattr(change, delta)
        trend = _trend_class(moved, higher_is_better=False)
        cells += [_num_td(previous, getattr(change, previous), _dec(getattr(change, previous))),
                  _num_td(now, getattr(change, now), _dec(getattr(change, now))),
                  _num_td(delta, moved, _signed(moved), {"class": f"num {trend}".strip()})]
    return f'<tr data-class="{_esc(change.class_name)}">{"".join(cells)}</tr>'


def _change_body(data: ReportData, change: Change) -> str:
    overview = "".join([
        "<thead><tr><th></th><th class=\"num\">previous</th><th class=\"num\">now</th>"
        "<th class=\"num\">change</th></tr></thead><tbody>",
        _change_row("health score", ("previous_health_score", "overall_health_score",
                                     "health_score_change"),
                    change.previous_health_score, data.overall_health_score, True),
        _change_row("label issues", ("previous_num_label_issues", "num_label_issues",
                                     "num_label_issues_change"),
                    change.previous_num_label_issues, data.num_label_issues, False),
        "</tbody>",
    ])
    parts = [f'<p class="lead">Compared with the previous run of this dataset, on '
             f"{_esc(change.previous_run_date)}.</p>",
             f'<table class="overview">{overview}</table>']
    flows = [(label, field, value) for label, field, value in
             (("new issues", "new_issues", change.new_issues),
              ("resolved issues", "resolved_issues", change.resolved_issues))
             if value is not None]
    if flows:
        stats = "".join(_stat(field, value, _count(value), label) for label, field, value in flows)
        parts.append(f'<div class="stats">{stats}</div>')
    if change.class_noise_changes:
        head = ('<thead><tr><th>class</th><th class="num">previous label noise</th>'
                '<th class="num">label noise now</th><th class="num">change</th>'
                '<th class="num">previous inverse label noise</th>'
                '<th class="num">inverse label noise now</th><th class="num">change</th>'
                '</tr></thead>')
        rows = "\n".join(_noise_change_row(c) for c in change.class_noise_changes)
        parts.append('<h3>Classes whose label noise or inverse label noise (forgotten tags) '
                     'moved most</h3>'
                     f'<table class="noise-changes">{head}\n<tbody>\n{rows}\n</tbody></table>')
    else:
        parts.append('<p class="muted">No class\'s label noise or inverse label noise '
                     'changed.</p>')
    return "\n".join(parts)


def _change(data: ReportData) -> str:
    title = "Change since the previous run"
    change = data.change
    if change.previous_run_date is None:
        body = '<p class="muted">No previous run of this dataset to compare with.</p>'
    else:
        body = _change_body(data, change)
    return _section("change", title, body)


_SCOPES = {"overall": "all reviewed findings", "class": "class", "decile": "rank decile"}


def _precision_row(row: PrecisionRow) -> str:
    label = _SCOPES[row.scope] if row.key is None else f"{_SCOPES[row.scope]} {row.key}"
    cells = [f'<td class="name">{_esc(label)}</td>',
             _num_td("reviewed", row.reviewed, _count(row.reviewed)),
             _num_td("confirmed", row.confirmed, _count(row.confirmed)),
             _num_td("precision", row.precision, _dec(row.precision, 3)),
             _num_td("precision_low", row.precision_low, _dec(row.precision_low, 3)),
             _num_td("precision_high", row.precision_high, _dec(row.precision_high, 3))]
    attrs = _attrs({"data-scope": row.scope, "data-key": row.key or ""})
    return f"<tr{attrs}>{''.join(cells)}</tr>"


def _reviews(data: ReportData) -> str:
    reviews = data.reviews
    overall = reviews.precision[0]
    lead = ('<p class="lead">How often the findings are right, as reviewers judged them: '
            "precision = confirmed / (confirmed + rejected) over the reviewed flagged tags, "
            "with a Wilson 95 % interval; overall, per class and per decile of issue rank "
            "(1 = the most severe tenth of the flagged examples). Corrected tags are ones "
            "reviewers changed that labelqa did not flag.</p>")
    stats = "".join([
        _stat("review_precision", overall.precision if overall.precision is not None else 0.0,
              _dec(overall.precision, 3), "precision",
              f"95 % interval {_dec(overall.precision_low, 3)}–"
              f"{_dec(overall.precision_high, 3)}"),
        _stat("confirmed_pairs", reviews.confirmed, _count(reviews.confirmed), "confirmed"),
        _stat("rejected_pairs", reviews.rejected, _count(reviews.rejected), "rejected"),
        _stat("corrected_pairs", reviews.corrected, _count(reviews.corrected), "corrected")])
    head = ('<thead><tr><th></th><th class="num">reviewed</th><th class="num">confirmed</th>'
            '<th class="num">precision</th><th class="num">95 % low</th>'
            '<th class="num">95 % high</th></tr></thead>')
    rows = "\n".join(_precision_row(r) for r in reviews.precision)
    return _section("reviews", "Reviewers' verdicts",
                    f'{lead}\n<div class="stats">{stats}</div>\n<table class="precision">'
                    f"{head}\n<tbody>\n{rows}\n</tbody></table>")


# ---------------------------------------------------------------- document


def render_html(data: ReportData, max_classes: int = 40, max_examples: int = 25) -> str:
    """The whole report as one HTML5 document (str), with no external resources.

    The noise chart shows the `max_classes` noisiest classes, the worst-examples table the
    first `max_examples` by issue rank; the confident-joint table lists every class.
    """
    if max_classes < 0 or max_examples < 0:
        raise ValueError(f"max_classes and max_examples must be >= 0, got {max_classes} and "
                         f"{max_examples}")
    title = f"labelqa report: {data.dataset} {data.run_date}"
    sections = [_summary(data), _noise(data, max_classes), _scores(data), _joint(data),
                _worst(data, max_examples), _change(data)]
    if data.reviews is not None:  # the number that says whether to trust the findings
        sections.insert(1, _reviews(data))
    if data.annotators is not None:
        sections.append(_annotators(data.annotators))
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<header><h1>Label audit: {_esc(data.dataset)}</h1>"
        f"<p>run of {_esc(data.run_date)}</p></header>",
        *sections,
        f"<footer>generated by labelqa · {_esc(data.generated_at)}</footer>",
        "</main>",
        "</body>",
        "</html>",
        "",
    ])
