"""Gen-SER and CE heads: interface, masks, determinism, and learning a separable toy problem."""
import pytest
import torch

from c2ser.heads import CEHeadConfig, GenSERConfig, HeadConfig, build_head
from c2ser.heads.train_head import collate_features, evaluate_head, train_head

LABELS = ["neutral", "happy", "sad", "angry"]
H = 16
TINY_GEN = GenSERConfig(code_dim=64, token_dim=16, d_model=64, layers=2, heads=4, ffn=128)
TINY_CE = CEHeadConfig(hidden=64, dropout=0.0)


def toy_batches(n_batches, batch=32, seed=0, noise=0.5):
    """Conditioning = class prototype at every valid position + noise, random lengths and padding."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(len(LABELS), H, generator=torch.Generator().manual_seed(123))
    out = []
    for _ in range(n_batches):
        y = torch.randint(len(LABELS), (batch,), generator=g)
        items = []
        for label in y.tolist():
            L = int(torch.randint(2, 7, (1,), generator=g))
            items.append((protos[label] + noise * torch.randn(L, H, generator=g), label))
        out.append(collate_features(items))
    return out


def make(kind, **gen_changes):
    torch.manual_seed(0)
    cfg = HeadConfig(kind=kind, gen_ser=GenSERConfig(**{**TINY_GEN.__dict__, **gen_changes}), ce=TINY_CE)
    return build_head(cfg, LABELS, H)


@pytest.fixture(scope="module")
def trained():
    train, test = toy_batches(8), toy_batches(4, seed=1)
    heads = {}
    for kind in ("gen_ser", "ce"):
        head = make(kind)
        res = train_head(head, train, steps=250, lr=2e-3, warmup=20, seed=0)
        heads[kind] = (head, res["history"], test)
    return heads


@pytest.mark.parametrize("kind", ["gen_ser", "ce"])
def test_head_learns_separable_toy_problem(trained, kind):
    head, history, test = trained[kind]
    assert sum(history[-20:]) / 20 < 0.5 * sum(history[:20]) / 20  # loss decreases
    m = evaluate_head(head, test)
    assert m["wa"] == 1.0 and m["ua"] == 1.0 and m["macro_f1"] == 1.0
    assert torch.allclose(m["scores"].sum(-1), torch.ones(len(m["pred"])), atol=1e-5)


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_gen_ser_steps_run_and_are_deterministic(trained, steps):
    head, _, test = trained["gen_ser"]
    cond, mask, y = test[0]
    p1, s1 = head.sample(cond, mask, steps=steps, generator=torch.Generator().manual_seed(5))
    p2, s2 = head.sample(cond, mask, steps=steps, generator=torch.Generator().manual_seed(5))
    assert torch.equal(p1, p2) and torch.equal(s1, s2)
    assert (p1 == y).float().mean() >= 0.9
    p3, _ = head.predict(cond, mask)  # default seed from config
    p4, _ = head.predict(cond, mask)
    assert torch.equal(p3, p4)


@pytest.mark.parametrize("kind", ["gen_ser", "ce"])
def test_allowed_class_mask_respected(trained, kind):
    head, _, test = trained[kind]
    cond, mask, y = test[0]
    allowed = torch.tensor([True, False, True, False])
    pred, scores = head.predict(cond, mask, allowed=allowed)
    assert set(pred.tolist()) <= {0, 2}
    assert torch.all(scores[:, [1, 3]] == 0)
    per_item = torch.ones(len(y), 4, dtype=torch.bool)
    per_item[0] = torch.tensor([False, False, False, True])
    assert head.predict(cond, mask, allowed=per_item)[0][0] == 3


def test_padding_does_not_change_outputs(trained):
    for kind in ("gen_ser", "ce"):
        head = trained[kind][0]
        cond, mask, _ = trained[kind][2][0]
        padded = torch.cat([cond, torch.randn(cond.shape[0], 3, H)], 1)
        pmask = torch.cat([mask, torch.zeros(cond.shape[0], 3, dtype=torch.bool)], 1)
        a, b = head.predict(cond, mask)[1], head.predict(padded, pmask)[1]
        assert torch.allclose(a, b, atol=1e-5)


def test_gen_ser_multi_slot_and_class_weights():
    torch.manual_seed(0)
    head = build_head(HeadConfig(gen_ser=TINY_GEN), [LABELS, ["male", "female"]], H)
    cond, mask = torch.randn(3, 4, H), torch.ones(3, 4, dtype=torch.bool)
    labels = torch.tensor([[0, 1], [3, -1], [2, 0]])
    loss, stats = head.loss(cond, mask, labels, class_weights=[torch.ones(4), torch.tensor([1.0, 2.0])])
    loss.backward()
    assert torch.isfinite(loss) and {"mse", "ce", "loss"} <= set(stats)
    preds, scores = head.sample(cond, mask, steps=2)
    assert [p.shape for p in preds] == [(3,), (3,)] and [s.shape for s in scores] == [(3, 4), (3, 2)]


def test_bad_inputs_raise_clear_errors():
    head = make("gen_ser")
    with pytest.raises(ValueError, match="no valid position"):
        head.loss(torch.randn(2, 3, H), torch.tensor([[True] * 3, [False] * 3]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="expected cond"):
        head.predict(torch.randn(2, H), torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown head kind"):
        build_head(HeadConfig(kind="svm"), LABELS, H)
    with pytest.raises(ValueError, match="unknown pooling"):
        build_head(HeadConfig(kind="ce", ce=CEHeadConfig(pooling="max")), LABELS, H)


def test_ce_head_mean_pooling_and_ema():
    torch.manual_seed(0)
    head = build_head(HeadConfig(kind="ce", ce=CEHeadConfig(pooling="mean", hidden=32, dropout=0.0)), LABELS, H)
    train = toy_batches(4, seed=3)
    res = train_head(head, train, steps=60, lr=3e-3, ema=0.9)
    assert res["history"][-1] < res["history"][0]
    m = evaluate_head(res["ema"], toy_batches(2, seed=4))
    assert m["wa"] >= 0.9


def test_clip_seed_is_stable_across_processes():
    from c2ser.heads.bridge import clip_seed
    # fixed values: a salted hash() would change between interpreter runs (PYTHONHASHSEED)
    assert clip_seed("casia-201-wangzhe-angry", 0) == 0x0B00B07594AFE66B
    assert clip_seed("casia-201-wangzhe-angry", 1) != clip_seed("casia-201-wangzhe-angry", 0)


@pytest.mark.parametrize("steps,rho", [(1, 0.0), (4, 0.5)])
def test_gen_ser_answer_depends_only_on_the_clip_and_its_key(steps, rho):
    """One clip alone, in a batch, in reverse order, and in a padded batch: same answer and scores."""
    head = make("gen_ser")  # untrained: the answer depends strongly on the start noise
    g = torch.Generator().manual_seed(7)
    items = [(torch.randn(int(L), H, generator=g), 0) for L in (3, 5, 2, 6, 4, 3)]
    keys = [f"clip-{i}" for i in range(len(items))]
    cond, mask, _ = collate_features(items)
    pred, scores = head.predict(cond, mask, steps=steps, rho=rho, keys=keys)
    rev = list(range(len(items)))[::-1]
    rcond, rmask, _ = collate_features([items[i] for i in rev])
    rpred, rscores = head.predict(rcond, rmask, steps=steps, rho=rho, keys=[keys[i] for i in rev])
    assert rpred.tolist() == [pred[i].item() for i in rev]
    assert torch.allclose(rscores, scores[rev], atol=1e-5)
    for i in (0, 3):
        c, m, _ = collate_features([items[i]])
        p, s = head.predict(c, m, steps=steps, rho=rho, keys=[keys[i]])
        assert p.item() == pred[i].item() and torch.allclose(s[0], scores[i], atol=1e-5)
    # the noise really matters here: another key gives other scores, so the checks above are not vacuous
    _, other = head.predict(cond, mask, steps=steps, rho=rho, keys=[k + "-x" for k in keys])
    assert (other - scores).abs().max() > 1e-2
    with pytest.raises(ValueError, match="3 clip keys for a batch of 6"):
        head.predict(cond, mask, keys=keys[:3])
