"""Stage arithmetic of the latency harness on hand-made order records."""
import numpy as np

from engine import schema
from engine.latency import STAGES, order_stages, percentiles


def _order(origin, step_ns, action=schema.ACT_NEW, infer=True):
    o = np.zeros(1, schema.ORDER_DTYPE)
    o["action"], o["mono_origin"] = action, origin
    t = origin
    for name in ("t_book", "t_features", "t_infer", "t_strategy", "t_risk", "t_send"):
        t += step_ns if (name != "t_infer" or infer) else 0
        o[name] = t
    return o


def test_stages_add_up_and_warmup_is_left_out():
    s = 1_000_000_000
    recs = np.concatenate([_order(0 * s + 1, 50_000),            # warm-up: first order
                           _order(2 * s, 10_000), _order(3 * s, 20_000, infer=False),
                           _order(4 * s, 10_000, action=schema.ACT_CANCEL),   # not a NEW order
                           _order(5 * s, 30_000)])
    st = order_stages(recs, warmup_s=1.0)
    assert list(st) == [n for n, _, _ in STAGES] + ["first_order_out"]
    assert st["tick_to_trade"].tolist() == [60_000, 100_000, 180_000]
    assert st["feed"].tolist() == [10_000, 20_000, 30_000]
    assert st["inference"].tolist() == [10_000, 30_000]          # no inference stamp on the second
    assert sum(st[n][0] for n in ("feed", "features", "inference", "strategy", "risk", "send")) == st["tick_to_trade"][0]


def test_parse_and_book_split_the_feed_stage_when_stamped():
    a, b = _order(5, 1000), _order(9, 1000)
    a["t_parse"] = 5 + 400                       # fused: parsed 400 ns after the read, book at +1000
    st = order_stages(np.concatenate([a, b]), warmup_s=0.0)
    assert st["parse"].tolist() == [400] and st["book"].tolist() == [600]
    assert st["feed"].tolist() == [1000, 1000]   # both orders: the feed stage needs no parse stamp


def test_first_order_out_is_per_message_whatever_the_action():
    s = 1_000_000_000
    a = _order(2 * s, 10_000, action=schema.ACT_CANCEL)       # the cancel went out first ...
    b = _order(2 * s, 20_000)                                # ... then the NEW of the same message
    c = _order(3 * s, 5_000)
    st = order_stages(np.concatenate([a, b, c]), warmup_s=0.0)
    assert st["first_order_out"].tolist() == [60_000, 30_000]
    assert st["tick_to_trade"].tolist() == [120_000, 30_000]


def test_an_order_without_an_origin_or_a_send_is_not_a_sample():
    a, b = _order(5, 1000), _order(0, 1000)
    a["t_send"] = 0
    st = order_stages(np.concatenate([a, b]), warmup_s=0.0)
    assert all(len(v) == 0 for v in st.values())
    assert percentiles(st["tick_to_trade"]) == {"unit": "us", "n": 0}


def test_percentiles_are_in_microseconds():
    p = percentiles(np.arange(1, 1001) * 1000)
    assert p["n"] == 1000 and p["max"] == 1000.0 and abs(p["p50"] - 500.5) < 1e-9


def test_since_leaves_out_orders_of_earlier_messages():
    s = 1_000_000_000
    recs = np.concatenate([_order(1 * s, 10_000), _order(2 * s, 20_000), _order(3 * s, 30_000)])
    st = order_stages(recs, warmup_s=0.0, since_ns=2 * s)
    assert st["tick_to_trade"].tolist() == [120_000, 180_000]
    assert st["first_order_out"].tolist() == [120_000, 180_000]
