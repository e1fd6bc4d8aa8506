"""Paired bootstrap of strict F1: checked against seqeval and against cases with known answers."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from bioner_grid import significance as sig
from bioner_grid.corpus import DataError, read_rows
from bioner_grid.data import read_conll
from bioner_grid.scoring import score
from conftest import NCBI


def write(path, tokens, gold, pred):
    with open(path, "w", encoding="utf-8") as f:
        for t, g, p in zip(tokens, gold, pred):
            f.writelines(f"{a}\t{b}\t{c}\n" for a, b, c in zip(t, g, p))
            f.write("\n")
    return path


def drop_entities(tags: list[list[str]], fraction: float, seed: int) -> list[list[str]]:
    """Gold with a seeded ``fraction`` of its entities tagged O (missed), others kept."""
    rng = np.random.default_rng(seed)
    out = []
    for sent in tags:
        sent = list(sent)
        for _, start, end in sorted(sig.strict_spans(sent)):  # sorted: a set of str iterates in a per-process order
            if rng.random() < fraction:
                sent[start:end] = ["O"] * (end - start)
        out.append(sent)
    return out


@pytest.fixture(scope="module")
def ncbi_test():
    sents = read_conll(NCBI / "test.tsv", "Disease").sentences
    return [s.tokens for s in sents], [s.tags for s in sents]


def test_strict_spans_follow_seqeval_iob2():
    tags = ["B-D", "I-D", "I-C", "O", "I-D", "B-D", "B-C", "I-C", "I-C", "O-Task", "B-D"]
    assert sig.strict_spans(tags) == {("D", 0, 2), ("D", 5, 6), ("C", 6, 9), ("D", 10, 11)}


def test_counts_give_seqeval_strict_micro_f1_on_mangled_real_predictions(ncbi_test):
    _, gold = ncbi_test
    rng = np.random.default_rng(1)
    labels = ["O", "B-Disease", "I-Disease"]
    pred = [[labels[rng.integers(3)] if rng.random() < 0.1 else t for t in s] for s in gold]  # stray I-, cut spans
    counts = sig.sentence_counts(gold, pred)
    flat = lambda seqs: [t for s in seqs for t in s]  # noqa: E731
    assert np.array_equal(sig.flat_counts(flat(gold), flat(pred), [len(s) for s in gold]), counts)  # vectorised = loop
    expected = score(gold, pred)["strict"]
    tp, fp, fn = counts.sum(axis=0)
    assert tp / (tp + fp) == pytest.approx(expected["precision"])
    assert tp / (tp + fn) == pytest.approx(expected["recall"])
    assert sig.f1(counts.sum(axis=0)) == pytest.approx(expected["f1"])


def test_identical_predictions_differ_by_nothing(tmp_path, ncbi_test):
    tokens, gold = ncbi_test
    pred = drop_entities(gold, 0.2, 0)
    a = sig.read_predictions(write(tmp_path / "a.conll", tokens, gold, pred))
    b = sig.read_predictions(write(tmp_path / "b.conll", tokens, gold, pred))
    r = sig.compare(a, b, resamples=1000, seed=3)
    assert (r.delta, r.low, r.high, r.p) == (0.0, 0.0, 0.0, 1.0)
    assert r.within_noise and r.n == len(gold)


def test_one_fixed_entity_in_1000_sentences_is_within_noise():
    rng = np.random.default_rng(0)
    n = 1000
    gold_entities = rng.integers(1, 4, n)
    a = np.stack([gold_entities, np.zeros(n, int), np.zeros(n, int)], axis=1)
    a[:200, 0] -= 1  # A misses one entity in each of 200 sentences
    a[:200, 2] += 1
    b = a.copy()
    b[0] = (a[0, 0] + 1, 0, a[0, 2] - 1)  # B finds one of them
    r = sig.paired_bootstrap(a, b, resamples=2000, seed=0)
    assert 0 < r.delta < 0.05  # one entity of ~2000: a few hundredths of a point
    assert r.low <= 0 <= r.high and r.within_noise
    assert r.p > 0.5


def test_clearly_better_system_on_real_ncbi_excludes_zero(tmp_path, ncbi_test):
    tokens, gold = ncbi_test
    a = sig.read_predictions(write(tmp_path / "a.conll", tokens, gold, drop_entities(gold, 0.30, 1)))
    b = sig.read_predictions(write(tmp_path / "b.conll", tokens, gold, drop_entities(gold, 0.10, 2)))
    r = sig.compare(a, b, resamples=1000, seed=0)
    assert r.f1_a == pytest.approx(100 * score(gold, drop_entities(gold, 0.30, 1))["strict"]["f1"])
    assert r.delta > 5 and 0 < r.low < r.delta < r.high and not r.within_noise
    assert r.p < 0.01
    again = sig.compare(a, b, resamples=1000, seed=0)
    assert again == r  # seeded
    reverse = sig.compare(b, a, resamples=1000, seed=0)
    assert reverse.delta == pytest.approx(-r.delta) and reverse.high < 0


def test_runs_on_other_sentences_are_not_paired(tmp_path, ncbi_test):
    tokens, gold = ncbi_test
    a = sig.read_predictions(write(tmp_path / "a.conll", tokens, gold, gold))
    b = sig.read_predictions(write(tmp_path / "b.conll", tokens[:-1], gold[:-1], gold[:-1]))
    with pytest.raises(DataError, match="b.conll:0: not the same test sentences"):
        sig.compare(a, b)
    (tmp_path / "bad.conll").write_text("word\tB-Disease\tX-Disease\n")
    with pytest.raises(DataError, match="bad.conll:1: tag 'X-Disease'"):
        sig.read_predictions(tmp_path / "bad.conll")


def test_cache_round_trip_and_cli(tmp_path, ncbi_test, capsys):
    tokens, gold = ncbi_test
    path = write(tmp_path / "a.conll", tokens, gold, drop_entities(gold, 0.2, 0))
    first = sig.cached_predictions(path, tmp_path / "cache" / "run1.npz")
    path.unlink()  # the cache alone answers now
    second = sig.cached_predictions(path, tmp_path / "cache" / "run1.npz")
    assert np.array_equal(first.counts, second.counts) and first.fingerprint == second.fingerprint
    write(tmp_path / "b.conll", tokens, gold, gold)
    write(tmp_path / "a.conll", tokens, gold, drop_entities(gold, 0.2, 0))
    assert sig.main([str(tmp_path / "a.conll"), str(tmp_path / "b.conll"), "--resamples", "1000"]) == 0
    assert "ΔF1 (B − A) +" in capsys.readouterr().out


def test_fast_and_checking_readers_agree(tmp_path, ncbi_test, monkeypatch):
    tokens, gold = ncbi_test
    rng = np.random.default_rng(5)
    pred = [[["O", "B-Disease", "I-Disease", "O-Task"][rng.integers(4)] if rng.random() < 0.1 else t for t in s] for s in gold]
    path = write(tmp_path / "a.conll", tokens, gold, pred)
    fast = sig.read_predictions(path)
    monkeypatch.setattr(sig, "_columns", lambda p: None)
    checked = sig.read_predictions(path)
    assert np.array_equal(fast.counts, checked.counts) and fast.fingerprint == checked.fingerprint
    assert np.array_equal(fast.counts, sig.sentence_counts(gold, [[("O" if t == "O-Task" else t) for t in s] for s in pred]))


def test_resampling_weights_are_bootstrap_draws():
    w = sig.resample_weights(50, 1000, 0)
    assert w.shape == (1000, 50) and (w.sum(axis=1) == 50).all()  # n draws with replacement per replicate
    assert abs(w.mean() - 1) < 0.01 and abs(w.var() - (1 - 1 / 50)) < 0.05  # Binomial(n, 1/n) per sentence
    assert np.array_equal(w, sig.resample_weights(50, 1000, 0)) and not np.array_equal(w, sig.resample_weights(50, 1000, 1))


# --- One resampling for the interval and the p-value (issue 24): they cannot disagree ---

REAL = Path(__file__).parent / "data"  # MiniLM's predictions on the first 250 NCBI-disease test sentences (tests/data/README.md)


def real_predictions(tmp_path) -> dict[str, tuple[list, list, list]]:
    """Tokens, gold and predicted tags of the two real runs (vanilla and WeLT weights)."""
    out = {}
    for scheme in ("vanilla", "welt"):
        path = tmp_path / f"{scheme}.conll"
        path.write_bytes(gzip.decompress((REAL / f"predictions_ncbi_minilm_{scheme}.conll.gz").read_bytes()))
        rows = read_rows(path, 3)
        out[scheme] = ([[f[0] for _, f in s] for s in rows], [[f[1] for _, f in s] for s in rows], [[f[2] for _, f in s] for s in rows])
    return out


def test_p_below_005_exactly_when_the_interval_excludes_0_on_real_predictions(tmp_path):
    """Many pairs built from two real runs' predictions (each sentence's tags taken from one run or
    the other, at random, in every proportion) and from gold: p < 0.05 exactly when the 95% interval
    excludes 0, for every pair, including the pairs near the boundary."""
    real = real_predictions(tmp_path)
    tokens, gold, vanilla = real["vanilla"]
    welt = real["welt"][2]
    assert real["welt"][1] == gold
    rng = np.random.default_rng(0)
    base = sig.sentence_counts(gold, vanilla)
    results = []
    for k in range(120):
        take = rng.random(len(gold)) < rng.uniform(0, 0.6) ** 2  # sentences whose tags come from the WeLT run
        other = rng.random(len(gold)) < (rng.uniform(0, 0.04) if k % 3 == 0 else 0)  # and a few from gold
        mixed = [g if o else (w if t else v) for g, v, w, t, o in zip(gold, vanilla, welt, take, other)]
        resamples = (1000, 1999, 2000, 3001)[k % 4]  # odd counts too: the interval's rank is ⌈αB/2⌉
        r = sig.paired_bootstrap(base, sig.sentence_counts(gold, mixed), resamples, seed=k)
        assert (r.p < 0.05) == (not r.low <= 0 <= r.high) == (not r.within_noise), (k, r)
        results.append(r)
    ps = np.array([r.p for r in results])
    assert (ps < 0.05).sum() >= 10 and (ps >= 0.05).sum() >= 10  # both outcomes occur
    assert ((ps > 0.02) & (ps < 0.12)).sum() >= 10  # and pairs near the boundary, where a mismatch would show


def test_interval_and_p_are_the_order_statistics_and_counts_of_one_set_of_replicates(tmp_path):
    """Recomputed by hand from the replicates: the interval is [δ*_(j), δ*_(B+1−j)] with j = ⌈αB/2⌉
    and p = 2·min(#{δ* ≤ 0}, #{δ* ≥ 0}) / B (Efron & Tibshirani 1993, §15.4)."""
    real = real_predictions(tmp_path)
    tokens, gold, vanilla = real["vanilla"]
    a, b = sig.sentence_counts(gold, vanilla), sig.sentence_counts(gold, real["welt"][2])
    w = sig.resample_weights(len(a), 2000, 7).astype(np.float64)
    deltas = 100 * (sig.f1(w @ b) - sig.f1(w @ a))
    r = sig.paired_bootstrap(a, b, 2000, seed=7)
    ordered = np.sort(deltas)
    assert sig.order_index(2000) == 50 and sig.order_index(10000) == 250 and sig.order_index(1999) == 50
    assert (r.low, r.high) == pytest.approx((ordered[49], ordered[2000 - 50]))
    assert r.p == pytest.approx(min(1, 2 * min((deltas <= 0).sum(), (deltas >= 0).sum()) / 2000))
    assert r.delta == pytest.approx(100 * (sig.f1(b.sum(0)) - sig.f1(a.sum(0))))
    assert sig.p_text(0.0, 10000) == "< 0.0002" and sig.p_text(0.0890, 10000) == "0.0890"


def test_the_command_defaults_to_the_report_resample_count(tmp_path, capsys):
    from bioner_grid.spec import ReportSchema

    real = real_predictions(tmp_path)
    assert sig.main([str(tmp_path / "vanilla.conll"), str(tmp_path / "welt.conll")]) == 0
    out = capsys.readouterr().out
    assert f"{ReportSchema.resamples} paired bootstrap resamples" in out and ReportSchema.resamples == 10000
    a, b = (sig.read_predictions(tmp_path / f"{s}.conll") for s in ("vanilla", "welt"))
    assert sig.describe(sig.compare(a, b, ReportSchema.resamples, ReportSchema.seed)) in out
    assert len(real["vanilla"][0]) == 250


def test_a_predicted_type_the_gold_lacks_does_not_hide_the_matches():
    """Gold and predictions encode their entities with one type count: a predicted Gene where the
    gold has only diseases once made every disease a miss in ``flat_counts`` (issue 22's member slices)."""
    gold, pred = [["B-Disease", "O", "O"], ["O", "B-Disease"]], [["B-Disease", "B-Gene", "O"], ["B-Chemical", "B-Disease"]]
    flat = [t for s in gold for t in s], [t for s in pred for t in s]
    assert sig.flat_counts(*flat, [3, 2]).tolist() == sig.sentence_counts(gold, pred).tolist() == [[1, 1, 0], [1, 1, 0]]
