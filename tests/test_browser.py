"""The Lab in a real browser, as a user sees it: JupyterLab, Chromium, Run All, Train, and the
layout checked at two widths in the light and the dark theme.

Starts ``jupyter lab`` on a free loopback port with a random token, drives Debian's Chromium
(``/usr/bin/chromium``) through Playwright and runs every cell of
``notebooks/02_compare_backends.ipynb`` (two epochs). Then, in that one session and kernel:

- trains two MLPs in the Lab, on two backends (Lightning, then Keras): the progress bar fills,
  the leaderboard gains a row each time, the NLL curves overlay;
- renames one run, sorts the leaderboard (by seconds, descending; then back to NLL), exports
  the best run from the Export tab and writes the report with the "Write report" button;
- at 1,400 and 1,024 px wide, in JupyterLab Light and JupyterLab Dark (switched at run time
  through ``window.jupyterapp``, exposed by ``--LabApp.expose_app_in_browser``), opens every
  tab and checks in the page (:data:`CHECK_JS`) that no element of the Lab reaches past the
  right edge of its panel (scroll containers that scroll excepted), that no dropdown, label
  or button clips its text, and that every table header and every text of the NLL curve has
  a WCAG contrast ratio of at least :data:`MIN_CONTRAST` against its effective background
  (computed colours);
- saves a screenshot of every tab at every width and theme,
  ``test-artifacts/browser/<width>-<theme>-<tab>.png``, and what the checks found in
  ``test-artifacts/browser/checks.json``.

The layout and colour findings of every view are collected and asserted together at the end,
so one run reports all of them. Skipped when Chromium or Playwright is missing, except under
CI (``CI=true``), where ``.ci/run`` installs them and the test fails instead.

Run it alone with ``pytest -m browser``; leave it out with ``-m "not browser"``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import skip_or_fail

import binomlab as bl

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "02_compare_backends.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# JupyterLab settings for a quiet, deterministic page: every cell kept in the DOM (no
# windowing), no news or update checks.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
VIEWS = ((1400, "light"), (1024, "light"), (1024, "dark"), (1400, "dark"))
"""(viewport width, theme) in the order they are checked: the theme changes at run time."""
HEIGHT = 1000
TABS = ("Data", "Train", "Compare", "Calibration", "Export")
MIN_CONTRAST = 3.0
"""WCAG 2's minimum contrast ratio for large text and graphical objects (1.4.3, 1.4.11)."""
RENAMED = "keras MLP (renamed)"

pytestmark = pytest.mark.browser

# The checks that run in the page, on the Lab's visible tab. Returns
#   overflow: the outermost elements inside `.binomlab-lab` whose box reaches past the right
#     edge of the visible tab panel (or of the Lab, for what is outside the tabs), and the Lab
#     itself when it is wider than its output area. An element inside a scroller is not
#     counted (the scroller itself is): a scroller is an element of the Lab's own HTML with
#     overflow-x auto or scroll whose content is wider than it (`.binomlab-table-scroll`).
#     ipywidgets' boxes and tab contents are `overflow: auto` too, but one of them scrolling
#     means its content does not fit: that is reported under `clipped`;
#   clipped: `<select>`s whose selected option's text (measured with a canvas in the select's
#     font) is wider than the room inside the control; and elements, scrollers and text inputs
#     aside, that scroll or clip content wider than themselves (overflow-x auto, scroll,
#     hidden or clip): an ipywidgets box too narrow for its children, a label or button with
#     an ellipsis;
#   contrast: every `th` in the Lab and every `text` of the NLL curve SVG, with its colour
#     (`color`, or `fill` for SVG), its effective background (the element's and its ancestors'
#     background colours composited up to the first opaque one; white if none is) and the WCAG
#     contrast ratio of the two;
#   sizes: the viewport's, the Lab's, the panel's and the output area's widths; theme: the
#     body's data-jp-theme-name and data-jp-theme-light.
CHECK_JS = r"""
() => {
  const lab = document.querySelector('.binomlab-lab');
  if (!lab) return {error: 'no .binomlab-lab in the page'};
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 4;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const rgba = (css) => {  // any CSS colour the canvas understands -> [r, g, b, a]
    if (!css || css === 'none' || css.startsWith('url')) return null;
    ctx.clearRect(0, 0, 4, 4);
    ctx.fillStyle = 'rgba(0, 0, 0, 0)';
    ctx.fillStyle = css;
    ctx.fillRect(0, 0, 1, 1);
    const d = ctx.getImageData(0, 0, 1, 1).data;
    return [d[0], d[1], d[2], d[3] / 255];
  };
  const over = (top, bottom) => {  // source-over compositing
    const a = top[3] + bottom[3] * (1 - top[3]);
    if (a === 0) return [0, 0, 0, 0];
    const mix = (i) => (top[i] * top[3] + bottom[i] * bottom[3] * (1 - top[3])) / a;
    return [mix(0), mix(1), mix(2), a];
  };
  const luminance = (c) => {
    const lin = (v) => {
      v /= 255;
      return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
  };
  const hex = (c) => '#'
    + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, '0')).join('')
    + (c[3] < 1 ? ` (alpha ${c[3].toFixed(2)})` : '');
  const background = (el) => {
    const layers = [];
    for (let a = el; a; a = a.parentElement) {
      const c = rgba(getComputedStyle(a).backgroundColor);
      if (c && c[3] > 0) { layers.push({c, from: a}); if (c[3] >= 1) break; }
    }
    let bg = [255, 255, 255, 1];
    for (const layer of layers.slice().reverse()) bg = over(layer.c, bg);
    const from = layers.length ? layers[layers.length - 1].from : null;
    return {bg, from};
  };
  const name = (el) => {
    if (!el || !el.tagName) return String(el);
    const cls = typeof el.className === 'string'
      ? el.className : (el.className && el.className.baseVal) || '';
    const kept = cls.split(/\s+/).filter((c) => c && !c.startsWith('lm-') && !c.startsWith('p-')
      && c !== 'jupyter-widgets' && !c.startsWith('jupyter-widget-'));
    return el.tagName.toLowerCase() + kept.map((c) => '.' + c).join('');
  };
  const path = (el) => {
    const parts = [];
    for (let a = el; a && a !== lab && parts.length < 6; a = a.parentElement) {
      parts.unshift(name(a));
    }
    return parts.join(' > ');
  };
  const label = (el) => {  // the ipywidgets description next to a control, if any
    const box = el.closest('.widget-inline-hbox, .widget-hbox, .widget-dropdown, .widget-text');
    const l = box && box.querySelector(':scope > label, :scope > .widget-label');
    const t = l ? l.textContent.replace(/[\s\u200b]+/g, ' ').trim() : '';
    return t || null;
  };
  const text = (el) => (el.textContent || '').replace(/[\s\u200b]+/g, ' ').trim().slice(0, 80);
  const shown = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 || r.height > 0;
  };
  const round = (v) => Math.round(v * 10) / 10;

  const contents = lab.querySelector('.widget-tab-contents');
  const panel = contents && [...contents.children].find(shown);
  const labBox = lab.getBoundingClientRect();
  const panelBox = panel ? panel.getBoundingClientRect() : labBox;
  const area = lab.closest('.jp-OutputArea-output') || lab.parentElement;
  const areaBox = area.getBoundingClientRect();
  // A scroller: an element of the Lab's own HTML (not an ipywidgets box: every widget's
  // element is a `.jupyter-widgets`/`.lm-Widget`, and ipywidgets makes its boxes and the tab
  // contents `overflow: auto`, so a box whose content does not fit scrolls or clips it) with
  // overflow-x auto or scroll whose content is wider than it: `.binomlab-table-scroll`.
  const scroller = (el) => {
    if (!(el instanceof HTMLElement) || el.matches('.jupyter-widgets, .lm-Widget')) return false;
    const s = getComputedStyle(el);
    return /(auto|scroll)/.test(s.overflowX) && el.scrollWidth > el.clientWidth + 1;
  };
  const inScroller = (el) => {
    for (let a = el.parentElement; a && a !== lab; a = a.parentElement) {
      if (scroller(a)) return true;
    }
    return false;
  };

  const overflowing = new Map();
  if (labBox.right > areaBox.right + 1) {
    overflowing.set(lab, areaBox.right);
  }
  const all = [lab, ...lab.querySelectorAll('*')].filter(shown);
  for (const el of all) {
    if (inScroller(el)) continue;
    const r = el.getBoundingClientRect();
    let limit = labBox.right;
    if (panel && el !== panel && panel.contains(el)) limit = Math.min(limit, panelBox.right);
    if (r.right > limit + 1) overflowing.set(el, limit);
  }
  const overflow = [];
  for (const [el, limit] of overflowing) {
    if (el !== lab && overflowing.has(el.parentElement)) continue;  // the outermost only
    const r = el.getBoundingClientRect();
    const inner = [...overflowing.keys()].filter((d) => d !== el && el.contains(d)
      && ![...d.children].some((c) => overflowing.has(c)));
    overflow.push({
      element: path(el), label: label(el), text: text(el),
      left: round(r.left), right: round(r.right),
      width: round(r.width), limit: round(limit), past: round(r.right - limit),
      style_width: el.style ? el.style.width || null : null,
      // why it is wide: the boxes from the first innermost one up to this one
      chain: (inner.length ? [inner[0]] : []).flatMap((d) => {
        const boxes = [];
        for (let a = d; a && a !== el.parentElement; a = a.parentElement) {
          const s = getComputedStyle(a);
          boxes.push(`${name(a)} ${round(a.getBoundingClientRect().width)}px`
            + ` overflow-x:${s.overflowX} min-width:${s.minWidth} flex:${s.flex}`
            + ` scroll/client:${a.scrollWidth}/${a.clientWidth}`);
        }
        return boxes;
      }),
      innermost: inner.slice(0, 4).map((d) => ({
        element: path(d), text: text(d), width: round(d.getBoundingClientRect().width),
        right: round(d.getBoundingClientRect().right),
        style_width: d.style ? d.style.width || null : null,
      })),
    });
  }

  const clipped = [];
  for (const el of all) {
    if (el.tagName === 'SELECT') {
      if (el.multiple || el.selectedIndex < 0) continue;
      const s = getComputedStyle(el);
      ctx.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
      const shownText = el.options[el.selectedIndex].textContent;
      const need = ctx.measureText(shownText).width;
      const room = el.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
      if (need > room + 0.5) {
        clipped.push({kind: 'select', element: path(el), label: label(el), text: shownText,
          text_width: round(need), room: round(room),
          width: round(el.getBoundingClientRect().width),
          style_width: el.parentElement.style.width || null});
      }
    } else if (el instanceof HTMLElement && !/^(INPUT|TEXTAREA)$/.test(el.tagName)
               && !scroller(el) && !inScroller(el)) {
      // a box that scrolls or clips sideways (an ipywidgets box, a label with an ellipsis)
      const s = getComputedStyle(el);
      const hides = /(auto|scroll|hidden|clip)/.test(s.overflowX);
      if (hides && el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) {
        const widest = [...el.children].filter(shown).sort(
          (a, b) => b.getBoundingClientRect().width - a.getBoundingClientRect().width)[0];
        clipped.push({kind: /(auto|scroll)/.test(s.overflowX) ? 'scrolls' : 'clipped',
          element: path(el), label: label(el), text: text(el),
          content_width: el.scrollWidth, width: el.clientWidth,
          style_width: el.style.width || null,
          widest_child: widest ? `${name(widest)} ${round(widest.getBoundingClientRect().width)}px`
            + ` (style width ${widest.style.width || 'none'})` : null});
      }
    }
  }

  const contrast = [];
  const targets = [
    ...lab.querySelectorAll('th'), ...lab.querySelectorAll('svg.binomlab-curve text'),
  ];
  for (const el of targets) {
    if (!shown(el) || !text(el)) continue;
    const s = getComputedStyle(el);
    const svg = el instanceof SVGElement;
    const ink = rgba(svg ? s.fill : s.color);
    if (!ink) continue;
    const {bg, from} = background(el);
    const fg = ink[3] < 1 ? over(ink, bg) : ink;
    const l1 = luminance(fg), l2 = luminance(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    contrast.push({
      element: path(el), text: text(el), ratio: Math.round(ratio * 100) / 100,
      colour: hex(ink), css_colour: svg ? s.fill : s.color, background: hex(bg),
      background_from: from ? name(from) : 'none (white assumed)',
      table: el.closest('table') ? name(el.closest('table')) : null,
    });
  }
  return {
    overflow, clipped, contrast,
    sizes: {viewport: window.innerWidth, lab: round(labBox.width), panel: round(panelBox.width),
            output_area: round(areaBox.width)},
    theme: {name: document.body.dataset.jpThemeName, light: document.body.dataset.jpThemeLight},
  };
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(workdir: Path) -> tuple[Path, Path]:
    """A copy of notebook 02 with EPOCHS = 2 injected, and a JupyterLab settings folder."""
    import nbformat

    notebooks = workdir / "notebooks"
    notebooks.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell("EPOCHS = 2\nQUICK = True"))
    nbformat.write(nb, notebooks / NOTEBOOK.name)
    settings = workdir / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return notebooks, settings


@pytest.fixture
def jupyter_lab(tmp_path: Path) -> Iterator[str]:
    """URL (with token) of a JupyterLab serving a copy of notebook 02 from
    ``tmp_path / "notebooks"`` (the kernel's working folder); shut down afterwards."""
    if not CHROMIUM.exists():
        skip_or_fail(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    for module in ("playwright", "jupyterlab", "nbformat"):
        if importlib.util.find_spec(module) is None:
            skip_or_fail(f"{module} is not installed: pip install {module}")
    notebooks, settings = _prepare(tmp_path)
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    env.pop("MPLBACKEND", None)  # the kernel draws with its inline backend
    log = (tmp_path / "jupyter.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={notebooks}", "--allow-root",
         "--LabApp.extension_manager=readonly",
         # window.jupyterapp: the test switches the theme through the app's commands
         "--LabApp.expose_app_in_browser=True"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"jupyter lab did not start:\n{(tmp_path / 'jupyter.log').read_text()}"
                    )
                time.sleep(0.5)
        yield f"{base}/lab/tree/{NOTEBOOK.name}?token={token}"
    finally:
        try:
            request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(request, timeout=10)
            server.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.close()


# -- helpers on the page ---------------------------------------------------------------------


def _visible_panel(lab: Any) -> Any:
    """The Lab's visible tab panel."""
    return lab.locator(".widget-tab-contents > .lm-Widget:visible")


def _open_tab(lab: Any, title: str) -> Any:
    lab.locator(".widget-tab-bar .lm-TabBar-tab", has_text=title).click()
    panel = _visible_panel(lab)
    panel.wait_for(timeout=10_000)
    return panel


def _control(scope: Any, kind: str, label: str) -> Any:
    """The input of the ipywidgets control of ``kind`` (``dropdown`` → its ``select``,
    ``text`` → its ``input``) whose description is ``label``."""
    inner = {"dropdown": "select", "text": "input"}[kind]
    exact = re.compile(rf"^\s*{re.escape(label)}\s*$")
    return (
        scope.locator(f".widget-{kind}")
        .filter(has=scope.page.locator("label", has_text=exact))
        .locator(inner)
    )


def _option_values(select: Any) -> list[str]:
    return select.evaluate("s => [...s.options].map(o => o.value)")


def _choose(select: Any, pattern: str) -> str:
    """Select the first option whose value matches the regex ``pattern``; its value.
    (Options are matched on their value: ipywidgets writes the label's spaces as no-break
    spaces in the option's text.)"""
    values = _option_values(select)
    value = next((v for v in values if re.search(pattern, v)), None)
    assert value is not None, f"no option matching {pattern!r} in {values}"
    select.select_option(value=value)
    return value


def _board(lab: Any) -> tuple[list[str], list[list[str]]]:
    """The leaderboard's headers and cell texts, as shown."""
    return lab.locator(".binomlab-leaderboard-table").evaluate(
        """t => [[...t.querySelectorAll('thead th')].map(th => th.textContent.trim()),
                 [...t.querySelectorAll('tbody tr')].map(
                   tr => [...tr.querySelectorAll('td')].map(td => td.textContent.trim()))]"""
    )


def _wait_until(check: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll ``check()`` until it returns something truthy; fail saying ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def _number(cell: str) -> float:
    try:
        return float(cell.replace(",", ""))
    except ValueError:
        return float("-inf")  # "—": shown last when descending


def _set_theme(page: Any, theme: str) -> None:
    """Switch JupyterLab's theme through its command and wait until the page applies it."""
    name = THEMES[theme]
    page.evaluate(
        "name => window.jupyterapp.commands.execute('apputils:change-theme', {theme: name})", name
    )
    page.wait_for_function(
        "([name, light]) => document.body.dataset.jpThemeName === name"
        " && document.body.dataset.jpThemeLight === light",
        arg=[name, "true" if theme == "light" else "false"],
        timeout=30_000,
    )
    page.wait_for_timeout(500)  # the theme's stylesheet applied, the layout settled


def _shoot(page: Any, lab: Any, path: Path) -> None:
    """A screenshot of the whole Lab: the window made tall enough to show all of it (the
    notebook scrolls inside the page, so a part outside the window would come out blank),
    then set back."""
    size = page.viewport_size
    height = lab.evaluate("e => e.getBoundingClientRect().height")
    if height + 220 > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": int(height) + 220})
        page.wait_for_timeout(300)
    lab.evaluate("e => e.scrollIntoView({block: 'start'})")
    lab.screenshot(path=str(path))
    if page.viewport_size != size:
        page.set_viewport_size(size)
        page.wait_for_timeout(300)


# -- the steps -------------------------------------------------------------------------------


def _train(lab: Any, expect: Any, *, backend: str | None, rows: int, curves: int) -> None:
    """Press Train (after choosing ``backend``), wait for the run to end: the progress bar full
    and green, the leaderboard at ``rows`` rows, ``curves`` polylines on the plot."""
    panel = _open_tab(lab, "Train")
    if backend is not None:
        select = _control(panel, "dropdown", "backend")
        select.select_option(value=backend)
        expect(_control(panel, "dropdown", "model")).to_have_value(re.compile("MLP|mlp"))
        expect(_control(panel, "text", "hidden layers")).to_be_enabled()
    button = lab.locator("button.binomlab-train")
    expect(button).to_be_enabled(timeout=30_000)
    button.click()
    leaderboard_rows = lab.locator(".binomlab-leaderboard-table tbody tr")
    expect(leaderboard_rows).to_have_count(rows, timeout=240_000)
    bar = lab.locator(".binomlab-progress .progress-bar")
    expect(bar).to_have_class("progress-bar progress-bar-success", timeout=30_000)
    expect(bar).to_have_attribute("style", re.compile(r"width: 100%"), timeout=10_000)
    expect(lab.locator(".binomlab-status")).to_contain_text("stopped: completed")
    expect(lab.locator(".binomlab-curve polyline")).to_have_count(curves, timeout=10_000)


def _manage_runs(lab: Any, page: Any, expect: Any, new_runs: list[str]) -> None:
    """The workbench steps of issue 19 in the Compare tab: rename a run, sort the leaderboard
    (by seconds, descending; then by NLL, ascending: the best run first and highlighted)."""
    # rename the Keras run in the Compare tab
    panel = _open_tab(lab, "Compare")
    run = _control(panel, "dropdown", "run")
    old = next(n for n in new_runs if "keras" in n)
    run.select_option(value=old)
    _control(panel, "text", "rename to").fill(RENAMED)
    panel.locator("button", has_text="Rename").click()
    expect(panel).to_contain_text(f"Renamed {old!r} to {RENAMED!r}", timeout=30_000)
    expect(lab.locator(".binomlab-leaderboard-table")).to_contain_text(RENAMED)
    assert old not in _option_values(run)

    # sort by seconds, descending: the board's rows follow
    sort_by = _control(panel, "dropdown", "sort by")
    _choose(sort_by, r"^seconds$")
    panel.locator(".widget-toggle-buttons button", has_text="descending").click()

    def by_seconds() -> bool:
        headers, cells = _board(lab)
        column = headers.index("seconds")
        values = [_number(row[column]) for row in cells]
        return len(values) > 1 and values == sorted(values, reverse=True)

    _wait_until(by_seconds, "the leaderboard sorted by seconds, descending")
    _shoot(page, lab, ARTIFACTS / "04-sorted-by-seconds.png")
    # back to NLL, ascending: the best run first and highlighted
    _choose(sort_by, r"^nll\b")
    panel.locator(".widget-toggle-buttons button", has_text="ascending").click()
    first_best = ".binomlab-leaderboard-table tbody tr:first-child td.binomlab-best"
    expect(lab.locator(first_best).first).to_be_visible(timeout=30_000)


def _export_and_report(lab: Any, expect: Any, workdir: Path) -> None:
    """Export the best run from the Export tab (where it is preselected) and write the report
    with the button under the tabs; both checked on disk. (After the screenshots, which then
    show no temporary paths.)"""
    _open_tab(lab, "Compare")  # sorted by NLL, ascending: the best run first
    best = _board(lab)[1][0][0]
    assert lab.locator(".binomlab-leaderboard-table tbody tr:first-child td.binomlab-best").count()

    # export: the best run is preselected
    panel = _open_tab(lab, "Export")
    expect(panel).to_contain_text(f"best: {best}")
    model = _control(panel, "dropdown", "model")
    expect(model).to_have_value(best)
    panel.locator("button", has_text="Export").click()
    expect(panel).to_contain_text("Wrote", timeout=180_000)
    written = Path(panel.locator("code").first.inner_text())
    assert written.is_dir(), written
    assert (written / "manifest.json").is_file(), sorted(p.name for p in written.iterdir())

    # the report, from the button under the tabs
    report = lab.locator(".binomlab-report")
    report.locator("button", has_text="Write report").click()
    expect(report).to_contain_text("Wrote the report", timeout=180_000)
    page_text = (workdir / "report.html").read_text(encoding="utf-8")
    assert page_text.lstrip().lower().startswith("<!doctype html"), page_text[:80]
    assert RENAMED in page_text


def _ready(panel: Any, tab: str, expect: Any) -> None:
    """Wait until ``tab``'s content is drawn."""
    if tab == "Data":
        expect(panel.locator(".binomlab-features")).to_contain_text("carrier")
    elif tab == "Train":
        expect(panel.locator("svg.binomlab-curve")).to_be_visible()
    elif tab == "Compare":
        expect(panel.locator(".binomlab-leaderboard-table")).to_be_visible()
        expect(panel.locator(".binomlab-leaderboard-table")).to_contain_text(RENAMED)
    elif tab == "Calibration":
        expect(panel.locator("img").first).to_be_visible(timeout=120_000)
    elif tab == "Export":
        expect(panel.locator("button", has_text="Export")).to_be_visible()


def _short(path: str, parts: int = 3) -> str:
    """The last ``parts`` steps of an element's path (checks.json has the whole of it)."""
    steps = path.split(" > ")
    return ("… > " if len(steps) > parts else "") + " > ".join(steps[-parts:])


def _findings(view: str, result: dict[str, Any]) -> list[str]:
    """What a view's checks found, one line each (boxes that fail alike on one line)."""
    lines = []
    for item in result["overflow"]:
        inner = "; ".join(
            f"{_short(d['element'], 2)} ({d['width']} px wide, right {d['right']}, "
            f"style width {d['style_width']}) {d['text'][:40]!r}"
            for d in item["innermost"][:2]
        )
        lines.append(
            f"{view}: OVERFLOW {_short(item['element'])} [{item['label'] or ''}] "
            f"{item['width']} px wide, right edge {item['right']} > panel's {item['limit']} "
            f"(by {item['past']} px; style width {item['style_width']}) {item['text'][:50]!r}"
            + (f" — innermost: {inner}" if inner else "")
        )
    boxes: dict[tuple[Any, ...], list[str]] = {}
    for item in result["clipped"]:
        if item["kind"] == "select":
            lines.append(
                f"{view}: CLIPPED dropdown [{item['label'] or ''}] {_short(item['element'])} "
                f"shows {item['text']!r}: needs {item['text_width']} px, has {item['room']} px "
                f"(control {item['width']} px, style width {item['style_width']})"
            )
        else:
            key = (item["kind"], _short(item["element"]), item["content_width"], item["width"],
                   item["style_width"], item["widest_child"])  # fmt: skip
            boxes.setdefault(key, []).append(item["label"] or item["text"][:50])
    for (kind, element, content, width, style, widest), names in boxes.items():
        what = "SCROLLS SIDEWAYS" if kind == "scrolls" else "CLIPPED"
        lines.append(
            f"{view}: {what} {element}{f' ×{len(names)}' if len(names) > 1 else ''} "
            f"{', '.join(map(repr, names[:9]))}: "
            f"content {content} px in {width} px (style width {style}; widest child {widest})"
        )
    low: dict[tuple[str, str, str, str], list[str]] = {}
    for item in result["contrast"]:
        if item["ratio"] < MIN_CONTRAST:
            key = (item["table"] or _short(item["element"]), item["colour"], item["background"],
                   f"{item['ratio']}")  # fmt: skip
            low.setdefault(key, []).append(item["text"])
    for (where, colour, background, ratio), texts in low.items():
        lines.append(
            f"{view}: LOW CONTRAST {ratio} < {MIN_CONTRAST} in {where}: text {colour} on "
            f"{background} ({len(texts)} elements: {', '.join(map(repr, texts[:6]))})"
        )
    return lines


def _check_views(page: Any, lab: Any, expect: Any) -> list[str]:
    """Every tab at every width and theme: checks and a screenshot each; what the checks
    found, one line per problem (and all they measured in checks.json)."""
    problems: list[str] = []
    report: dict[str, Any] = {}
    for width, theme in VIEWS:
        page.set_viewport_size({"width": width, "height": HEIGHT})
        _set_theme(page, theme)
        for tab in TABS:
            panel = _open_tab(lab, tab)
            _ready(panel, tab, expect)
            lab.scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            view = f"{width}-{theme}-{tab.lower()}"
            result = page.evaluate(CHECK_JS)
            assert "error" not in result, result
            assert result["theme"] == {
                "name": THEMES[theme],
                "light": "true" if theme == "light" else "false",
            }, result["theme"]
            if tab in ("Data", "Train", "Compare"):  # tables, and the curve
                assert result["contrast"], f"{view}: no table header or curve text checked"
            report[view] = result
            problems += _findings(view, result)
            _shoot(page, lab, ARTIFACTS / f"{view}.png")
    (ARTIFACTS / "checks.json").write_text(json.dumps(report, indent=1))
    return problems


def test_lab_trains_in_jupyterlab(jupyter_lab: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in (*ARTIFACTS.glob("*.png"), *ARTIFACTS.glob("*.json")):
        old.unlink()
    workdir = tmp_path / "notebooks"  # the kernel's working folder

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": HEIGHT},
        )
        try:
            page = context.new_page()
            page.goto(jupyter_lab)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=30_000)
            page.wait_for_function("() => window.jupyterapp !== undefined", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "01-notebook-open.png"))

            # Run → Run All Cells, as a user would
            page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator("li.lm-Menu-item[data-command='runmenu:run-all']").click()
            lab = page.locator(".binomlab-lab")
            lab.wait_for(timeout=180_000)
            lab.scroll_into_view_if_needed()
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
            leaderboard_rows = lab.locator(".binomlab-leaderboard-table tbody tr")
            expect(leaderboard_rows).not_to_have_count(0)
            before = leaderboard_rows.count()
            # the notebook trained a logistic model and an MLP on every network backend, and
            # boosted trees on every backend that grows them
            plugins = [b for b in bl.backends.available() if b != "reference"]
            networks = [b for b in plugins if "mlp" in bl.backends.get(b).specs]
            trees = [b for b in plugins if "gbdt" in bl.backends.get(b).specs]
            assert before == 2 * len(networks) + len(trees), before
            if not {"lightning", "keras"} <= set(plugins):
                skip_or_fail(f"the Lab trains on lightning and keras; installed: {plugins}")
            _shoot(page, lab, ARTIFACTS / "02-lab-before-training.png")
            runs_before = set(_option_values(_control(lab, "dropdown", "run")))

            # two MLPs trained in the Lab, on two backends: a row and two curves each
            _train(lab, expect, backend=None, rows=before + 1, curves=2)
            _train(lab, expect, backend="keras", rows=before + 2, curves=4)
            _shoot(page, lab, ARTIFACTS / "03-lab-trained.png")
            new_runs = [
                n for n in _option_values(_control(lab, "dropdown", "run")) if n not in runs_before
            ]
            assert len(new_runs) == 2, new_runs

            _manage_runs(lab, page, expect, new_runs)
            problems = _check_views(page, lab, expect)
            _export_and_report(lab, expect, workdir)
        finally:
            context.close()

    shots = {p.name for p in ARTIFACTS.glob("*.png")}
    expected = {
        "01-notebook-open.png",
        "02-lab-before-training.png",
        "03-lab-trained.png",
        "04-sorted-by-seconds.png",
        *(f"{w}-{t}-{tab.lower()}.png" for w, t in VIEWS for tab in TABS),
    }
    assert shots == expected, sorted(shots ^ expected)
    assert not problems, (
        f"{len(problems)} layout or contrast problem(s) (details in {ARTIFACTS / 'checks.json'}):\n"
        + "\n".join(problems)
    )
