"""The report's comparison of the ways of using several corpora: AIONER's Table 3 (Luo et al. 2023).

Per member corpus, one row; its columns the settings the store holds runs of, side by side:

- **BL1**: the member alone (``dataset.only=[Member]``, task tags: ``aio_members`` names one member);
- **BL2**: the member plus BioRED's annotations of the member's type, no tags (``aio_merge=plain``,
  two members, one restricted: ``aio_types_only=BioRED:Disease``);
- **plain**: several members merged without task tags, none restricted (AIONER's "w/o AIONER");
- **MTL**: one output layer per member (``aio_merge=mtl``; shown only where runs have it);
- **AIO**: several members merged with task tags (the all-in-one model).

A run's setting comes from its tags alone (``setting``); runs are grouped by (``aio_members``,
``aio_merge``, ``aio_types_only``), so a tagged and a plain merge of the same members are never
averaged together. Each cell: mean ± sd (n) of the member's strict F1 over seeds; Δ: the mean minus
BL1's, with the paired bootstrap 95 % interval of that difference on the member's test sentences
(``significance.Bootstrap``, the report's resamples and seed; seeds averaged within each replicate).

The pairing: every setting tags the same test sentences of the member (the members' splits do not
depend on which others are merged; a cap keeps the first N of each member), so BL1's and the
setting's predictions of the member pair sentence by sentence. A run's ``predictions_<split>.conll``
holds all its members' sentences in member order; the run tag ``aio_slices`` (``aio.slices_tag``)
records where each member's sentences lie and which types it is scored on, so the member's part is
cut out, task tags removed and other types' labels counted as O, exactly as the member's
``<split>_<member>_strict_f1`` was scored. Runs recorded before that tag get no interval (counted
in the note); two slices that are not the same sentences (other caps) are not paired either.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd

from bioner_grid.aio import plain
from bioner_grid.corpus import DataError, unsuffixed
from bioner_grid.runtable import finished
from bioner_grid.significance import Predictions, _columns, flat_counts

SETTINGS = ("BL1", "BL2", "plain", "MTL", "AIO")
NAMES = {"BL1": "BL1 (alone)", "BL2": "BL2 (+BioRED, its type)", "plain": "plain merge", "MTL": "MTL", "AIO": "all-in-one"}


def _text(value) -> str:
    return value if isinstance(value, str) else ""  # a missing tag reads as NaN


def setting(members, merge, types_only) -> tuple[str, str] | None:
    """(setting, member it is a baseline of, "" for plain/MTL/AIO) of a run from its tags
    ``aio_members``, ``aio_merge`` (absent: ``tags``) and ``aio_types_only``; None where the run is
    none of the table's settings (e.g. a tagged merge with a restricted member)."""
    names = [n for n in _text(members).split(",") if n]
    merge = _text(merge) or "tags"
    restricted = {part.split(":")[0] for part in _text(types_only).split(",") if part}
    if not names:
        return None
    if merge == "mtl":
        return ("MTL", "") if not restricted and len(names) > 1 else None
    if len(names) == 1:
        return ("BL1", names[0]) if merge == "tags" and not restricted else None
    if merge == "plain" and len(names) == 2 and len(restricted) == 1:
        return "BL2", next(n for n in names if n not in restricted)
    if restricted:
        return None
    return {"plain": ("plain", ""), "tags": ("AIO", "")}.get(merge)


def classify(runs: pd.DataFrame) -> pd.DataFrame:
    """The all-in-one runs of ``runs`` with columns ``setting`` and ``baseline_of`` (``setting``);
    runs of no setting are dropped."""
    aio = runs[runs["aio_members"].notna()] if "aio_members" in runs else runs.iloc[:0]
    got = [setting(r.get("aio_members"), r.get("aio_merge"), r.get("aio_types_only")) for _, r in aio.iterrows()]
    out = aio.assign(setting=[g[0] if g else None for g in got], baseline_of=[g[1] if g else None for g in got])
    return out[out["setting"].notna()]


def member_predictions(path, slices: dict, member: str, split: str, tagged: bool, source: str) -> Predictions | None:
    """One member's sentences of a run's predictions file, scored as its ``<split>_<member>_strict_f1``:
    ``slices[member][split]`` = [first, end) sentence indices, ``types`` the types it is scored on;
    ``tagged``: the sentences carry task tags (``aio.plain`` removes them); a multi-task run's labels
    are read without their member (``corpus.unsuffixed``). None where the file is
    not a well-formed token/gold/pred file or the slice lies outside it."""
    info = slices.get(member)
    columns = _columns(path) if info and split in info else None
    if columns is None:
        return None
    tokens, gold, pred, lengths = columns
    first, end = info[split]
    if end > len(lengths) or first > end:
        return None
    starts = np.r_[0, np.cumsum(lengths)]
    types = list(info["types"])
    toks, golds, preds = [], [], []
    for i in range(first, end):
        t, g, p = (x[starts[i]:starts[i + 1]] for x in (tokens, gold, pred))
        if tagged:
            (t, g), p = plain(t, g, types), plain(t, p, types)[1]
        else:
            g, p = ([x if x[0] != "O" and x[2:] in types else "O" for x in map(unsuffixed, y)] for y in (g, p))
        toks.append(t)
        golds.append(g)
        preds.append(p)
    def flat(xs):
        return [x for s in xs for x in s]

    size = [len(t) for t in toks]
    # the fingerprint read_predictions computes, of the member's untagged sentences: the same for every setting
    digest = hashlib.sha256("\x1f".join(flat(toks)).encode())
    digest.update("\x1f".join(flat(golds)).encode())
    digest.update(np.asarray(size, dtype=np.int64).tobytes())
    return Predictions(flat_counts(flat(golds), flat(preds), size), digest.hexdigest()[:16], f"{source}#{member}")


class Pairing:
    """Member predictions of runs (``files``: the report's ``RunFiles``) and their paired bootstrap
    (``boot``: the report's ``significance.Bootstrap``); ``untested`` counts the comparisons left out."""

    def __init__(self, runs: pd.DataFrame, files=None, boot=None, split: str = "test"):
        self.runs, self.files, self.boot, self.split = runs.set_index("run_id", drop=False), files, boot, split
        self.untested = 0
        self._preds: dict[tuple[str, str], Predictions | None] = {}

    def predictions(self, run_id: str, member: str) -> Predictions | None:
        key = (run_id, member)
        if key not in self._preds:
            pred = None
            row = self.runs.loc[run_id]
            raw = _text(row.get("aio_slices"))
            if self.files is not None and raw:
                path = self.files.path(run_id, f"predictions_{self.split}.conll")
                tagged = (_text(row.get("aio_merge")) or "tags") == "tags"
                pred = None if path is None else member_predictions(path, json.loads(raw), member, self.split, tagged, run_id)
            self._preds[key] = pred
        return self._preds[key]

    def compare(self, member: str, base: list[str], other: list[str]):
        """The other setting's runs against BL1's on the member's sentences, or None (counted)."""
        if self.boot is None or not base or not other:
            self.untested += bool(base and other)
            return None
        sides = [[self.predictions(r, member) for r in ids] for ids in (base, other)]
        try:
            if all(p is not None for side in sides for p in side):
                return self.boot.compare(*sides)
        except DataError:  # not the same sentences (other caps): no pairing
            pass
        self.untested += 1
        return None


def _groups(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """The table's columns: (setting, aio_members of the group; "" for BL1/BL2, which are per member),
    in AIONER's order; plain/MTL/AIO once per distinct member set."""
    cols = []
    for s in SETTINGS:
        sub = runs[runs["setting"] == s]
        if sub.empty:
            continue
        keys = [""] if s in ("BL1", "BL2") else sorted(set(sub["aio_members"]), key=lambda m: (len(m.split(",")), m))
        cols += [(s, k) for k in keys]
    return cols


def _label(s: str, key: str, cols) -> str:
    if sum(c[0] == s for c in cols) > 1:
        return f"{NAMES[s]} ({len(key.split(','))} corpora)"
    return NAMES[s]


def comparison_rows(runs: pd.DataFrame, split: str, fmt, pairing: Pairing):
    """(header, rows of (text, mark) cells) of one model and scheme's classified runs."""
    cols = _groups(runs)
    members = list(dict.fromkeys(m for ms in runs["aio_members"] for m in ms.split(",")))
    header = ["Corpus"]
    for s, key in cols:
        header += [_label(s, key, cols)] + ([] if s == "BL1" else [f"Δ {_label(s, key, cols)}"])
    rows = []
    for name in members:
        metric = f"{split}_{name}_strict_f1"
        cells, stats, value_at = [], [], []
        base = runs[(runs["setting"] == "BL1") & (runs["baseline_of"] == name)]
        base_ids = list(base.loc[base[metric].notna(), "run_id"]) if metric in runs else []
        for s, key in cols:
            if s in ("BL1", "BL2"):
                sub = runs[(runs["setting"] == s) & (runs["baseline_of"] == name)]
            else:
                sub = runs[(runs["setting"] == s) & (runs["aio_members"] == key)]
                sub = sub[sub["aio_members"].str.split(",").map(lambda ms, name=name: name in ms)]
            values = 100 * sub[metric].dropna() if metric in sub else pd.Series(dtype=float)
            mean = float(values.mean()) if len(values) else float("nan")
            sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            stats.append(mean)
            value_at.append(len(cells))
            cells.append([fmt(mean, sd, len(values)), None])
            if s == "BL1":
                continue
            base_mean = stats[0] if cols[0][0] == "BL1" else float("nan")
            delta = mean - base_mean
            if math.isnan(delta):
                cells.append([fmt(None), None])
                continue
            ids = list(sub.loc[sub[metric].notna(), "run_id"])
            r = pairing.compare(name, base_ids, ids)
            text = f"{delta:+.2f}" + (f" [{r.low:+.2f}, {r.high:+.2f}]" if r is not None else "")
            cells.append([text, "tied" if r is not None and r.within_noise else None])
        shown = [round(v, 2) for v in stats if not math.isnan(v)]
        top = max(shown, default=None)
        for mean, at in zip(stats, value_at):  # bold: the best mean of the row (as printed; equal ones share it)
            if not math.isnan(mean) and round(mean, 2) == top:
                cells[at][1] = "best"
        rows.append([(name, None)] + [tuple(c) for c in cells])
    return header, rows


def tables(df: pd.DataFrame, split: str, fmt, files=None, boot=None):
    """(title, header, rows of (text, mark), note) of the comparison, one per model and scheme that
    has classified all-in-one runs (finished runs only); none where no run is one."""
    runs = classify(finished(df)) if not df.empty else df
    if runs.empty:
        return []
    out = []
    # one table per model, scheme, lr, batch size and overlap policy: runs that differ in any of these
    # are other configurations, never seeds of one setting (a data.overlap=warn run beside a drop run)
    keys = ["model_name", "scheme", "lr", "batch_size"] + (["overlap.policy"] if "overlap.policy" in runs else [])
    combos = runs.groupby(keys, dropna=False).groups
    # a title names the model and scheme, and the other keys where they differ between tables
    varying = [i for i, k in enumerate(keys) if runs[k].astype(str).nunique() > 1 or i < 2]
    names = {"lr": "lr", "batch_size": "batch", "overlap.policy": "overlap"}
    for combo, idx in combos.items():
        pairing = Pairing(runs.loc[idx], files, boot, split)
        header, rows = comparison_rows(runs.loc[idx], split, fmt, pairing)
        shown = ", ".join(f"{names[keys[i]]}={combo[i]}" if i >= 2 else str(combo[i]) for i in varying)
        which = f"; {shown}" if len(combos) > 1 else ""
        test = (f"[95 % interval] of the paired bootstrap of the setting against BL1 on the member's {split} sentences "
                f"({boot.resamples} resamples; seeds averaged)" if boot is not None else
                "no interval: the report has no predictions to pair (report.mode=default, or none given)")
        note = ("Per member corpus, its strict F1 in each setting (mean ± sd over seeds, n runs). Δ: the mean minus BL1's "
                f"(F1 points), {test}. Bold: the best mean of the row; underlined Δ: its interval contains 0 (within "
                "noise of BL1).")
        if pairing.untested and boot is not None:
            note += (f" {pairing.untested} comparison(s) without an interval (no predictions or member slices logged, "
                     "or not the same sentences).")
        out.append((f"Settings per member corpus, AIONER Table 3 ({split} strict F1, %{which})", header, rows, note))
    return out


# ---------------------------------------------------------------------------------------------
# The hooks the report calls for any runs (``report.VARIANTS``): runs read back from the store,
# not a corpus being trained (that is ``aio.AllInOne``)


class ReportHooks:
    """The all-in-one corpus in the report: the runs' member corpora (the ``aio_members`` tag,
    ``AllInOne.run_tags``) as a column, corpora of one name told apart by their members in the corpus
    tables, and the comparison of this module (``tables``). ``runs`` is the report's frame of runs
    (pandas, one row a run, ``report.load_runs``); ``fmt`` the report's formatter of a percentage
    (``report.fmt``); ``ranker`` its ``Ranker`` (the predictions and the bootstrap that pair runs)."""

    column = "aio_members"  # the run tag read into the report's column of the same name

    def corpus_label(self, dataset: str, members) -> str:
        """The corpus tables' name for runs of ``dataset`` with these members (NaN: not an
        all-in-one run): ``aio (NCBIdisease)``, ``aio (BioRED + NCBIdisease)``, ``aio (9 corpora)``
        (up to three members by name, so that two merges of two corpora are told apart)."""
        if not isinstance(members, str):
            return dataset
        parts = members.split(",")
        return f"{dataset} ({' + '.join(parts) if len(parts) <= 3 else f'{len(parts)} corpora'})"

    def tables(self, runs, split: str, fmt, ranker) -> list[tuple[str, list[str], list[list[tuple]], str]]:
        """AIONER's Table 3 (``tables``), paired by ``ranker``'s predictions and bootstrap."""
        return tables(runs, split, fmt, ranker.files, ranker.boot)


REPORT = ReportHooks()
