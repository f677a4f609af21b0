"""The simplest market-making rule, for comparisons with other backtesters.

One bid one tick behind the best bid and one ask one tick behind the best ask (post-only,
``quote_lots`` each); when the wanted price of a side changes, cancel and replace it; no
new order on a side that would take the position beyond ``max_position_lots``. No
features, no model: it needs only a valid book.
"""
from __future__ import annotations

import numpy as np

from engine import schema


class TouchQuoter:
    def __init__(self, inst: int, *, quote_lots: int = 1, max_position_lots: int = 10, behind_ticks: int = 1,
                 strategy_id: int = 4, client_id_base: int = 4 << 40):
        if quote_lots <= 0 or max_position_lots < quote_lots or behind_ticks < 0:
            raise ValueError("TouchQuoter: quote_lots > 0, max_position_lots >= quote_lots, behind_ticks >= 0")
        self.inst, self.lots, self.max_pos, self.behind = inst, quote_lots, max_position_lots, behind_ticks
        self.strategy_id = strategy_id
        self.next_id = client_id_base
        self.owner = client_id_base >> 40
        self.position = 0
        self.quotes = {schema.SIDE_BUY: None, schema.SIDE_SELL: None}    # side -> (client id, px)
        self.quotes_sent = self.cancels_sent = 0

    def _intent(self, action, side, px, lots, ts, ref=0):
        a = np.zeros(1, schema.ORDER_DTYPE)
        a["action"], a["side"], a["otype"], a["inst"] = action, side, schema.OT_POST_ONLY, self.inst
        a["client_id"], a["ref_client_id"], a["px"], a["qty"] = self.next_id, ref, px, lots
        a["strategy"], a["event_ts"] = self.strategy_id, ts
        self.next_id += 1
        return a

    def on_market(self, ts, bb, ba, f, ready, valid, signal: float = 0.0):
        out = []
        want = {schema.SIDE_BUY: bb - self.behind if self.position + self.lots <= self.max_pos else 0,
                schema.SIDE_SELL: ba + self.behind if self.position - self.lots >= -self.max_pos else 0}
        if not valid or bb <= 0 or ba <= bb:
            want = {schema.SIDE_BUY: 0, schema.SIDE_SELL: 0}
        for side, px in want.items():
            cur = self.quotes[side]
            if cur is not None and cur[1] == px:
                continue
            if cur is not None:
                out.append(self._intent(schema.ACT_CANCEL, side, cur[1], 0, ts, ref=cur[0]))
                self.cancels_sent += 1
                self.quotes[side] = None
            if px > 0:
                it = self._intent(schema.ACT_NEW, side, px, self.lots, ts)
                self.quotes[side] = (int(it["client_id"][0]), px)
                self.quotes_sent += 1
                out.append(it)
        return out

    def on_exec(self, e) -> None:
        cid = int(e["client_id"])
        if cid >> 40 != self.owner:
            return
        kind = int(e["kind"])
        if kind in (schema.EX_PARTIAL, schema.EX_FILL):
            q = int(e["qty"])
            self.position += q if int(e["side"]) == schema.SIDE_BUY else -q
        if kind in (schema.EX_FILL, schema.EX_CANCELED, schema.EX_EXPIRED, schema.EX_REJECT):
            for side, cur in self.quotes.items():
                if cur is not None and cur[0] == cid:
                    self.quotes[side] = None
