"""A layered (Sugiyama) drawing of a model graph, top to bottom, in pure Python.

1. Ranks: longest path from the inputs, then every node whose out-degree is at
   least its in-degree moves down next to its first consumer (an input sits
   right above the layer that reads it, not at the top of the page).
2. Edges spanning several ranks go through one dummy node per rank crossed.
3. Order within each rank: a depth-first start, then barycentre sweeps down
   and up, keeping the order with the fewest crossings (counted exactly).
4. x: Brandes and Koepf's four alignments (chains of layers and long edges
   become straight vertical blocks), balanced; then each rank's order and
   spacing are enforced by a least-squares fit (pool adjacent violators).

Everything is linear or ``n log n`` per sweep: a 1,000-layer model takes a
fraction of a second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

NODE_GAP = 28.0  # between two layer boxes of a rank
DUMMY_WIDTH = 8.0  # an edge passing through a rank
DUMMY_GAP = 10.0
RANK_GAP = 34.0  # between two ranks, before edge labels
LABEL_LINE = 13.0  # one edge label under a node
MARGIN = 16.0


@dataclass
class Edge:
    """One tensor from output ``out`` of ``src`` to argument ``pos`` of ``dst``."""

    src: int
    dst: int
    out: int = 0
    pos: int = 0


@dataclass
class Route:
    """Where an edge is drawn: ports on its two nodes, the dummies in between."""

    edge: Edge
    out_dx: float  # the source port, from the source's centre
    in_dx: float  # the target port, from the target's centre
    dummies: list[tuple[float, int]]  # (x, rank) of each rank crossed
    points: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Label:
    """The shape label of output ``out`` of node ``node``: row ``row`` under it, from
    ``dx`` right of its centre."""

    node: int
    out: int
    dx: float
    row: int


@dataclass
class Drawing:
    """Node boxes (centre x, top y), ranks, routes, labels, and the total size."""

    x: list[float]
    y: list[float]
    w: list[float]
    h: list[float]
    rank: list[int]
    rank_top: list[float]
    rank_height: list[float]
    rank_gap: list[float]
    routes: list[Route]
    labels: list[Label]
    width: float
    height: float


def ranks_of(n: int, succ: list[list[int]], pred: list[list[int]]) -> tuple[list[int], list[int]]:
    """A topological order (Kahn's, by index) and each node's rank."""
    indeg = [len(p) for p in pred]
    ready = [v for v in range(n) if indeg[v] == 0]
    ready.reverse()
    order: list[int] = []
    while ready:
        v = ready.pop()
        order.append(v)
        for s in reversed(succ[v]):
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    if len(order) < n:  # a cycle (not in a Keras graph): keep the rest in index order
        seen = set(order)
        order += [v for v in range(n) if v not in seen]
    rank = [0] * n
    for v in order:
        for p in pred[v]:
            rank[v] = max(rank[v], rank[p] + 1)
    for v in reversed(order):  # ties move down, next to their first consumer
        if succ[v] and len(pred[v]) <= len(succ[v]):
            rank[v] = max(rank[v], min(rank[s] for s in succ[v]) - 1)
    return order, rank


def _inversions(values: list[float]) -> int:
    """Pairs i < j with values[i] > values[j] (merge sort)."""
    if len(values) < 2:
        return 0
    mid = len(values) // 2
    left, right = values[:mid], values[mid:]
    count = _inversions(left) + _inversions(right)
    left.sort()
    right.sort()
    j = 0
    for v in left:  # right elements below v
        while j < len(right) and right[j] < v:
            j += 1
        count += j
    return count


def _crossings(layers: list[list[int]], down: list[list[int]], pos: list[int],
               frac: dict[tuple[int, int], tuple[float, float]]) -> int:
    """Edge crossings between adjacent ranks, each edge at its ports."""
    total = 0
    for r in range(len(layers) - 1):
        pairs = []
        for u in layers[r]:
            for v in down[u]:
                fo, fi = frac.get((u, v), (0.0, 0.0))
                pairs.append((pos[u] + fo, pos[v] + fi))
        if len(pairs) > 1:
            pairs.sort()
            total += _inversions([b for _, b in pairs])
    return total


def _order(layers: list[list[int]], up: list[list[int]], down: list[list[int]],
           frac: dict[tuple[int, int], tuple[float, float]],
           budget: float) -> list[list[int]]:
    """Barycentre sweeps; the ordering with the fewest crossings wins."""
    pos = [0] * len(up)

    def index() -> None:
        for layer in layers:
            for i, v in enumerate(layer):
                pos[v] = i

    index()
    best = [list(layer) for layer in layers]
    best_c = _crossings(layers, down, pos, frac)
    start = time.perf_counter()
    stale = 0
    for it in range(24):
        if best_c == 0 or stale >= 4 or time.perf_counter() - start > budget:
            break
        sweep = range(1, len(layers)) if it % 2 == 0 else range(len(layers) - 2, -1, -1)
        downward = it % 2 == 0
        for r in sweep:
            layer = layers[r]

            def key(v: int) -> tuple[float, int]:
                if downward:  # at the ports it is fed from
                    ks = [pos[u] + frac.get((u, v), (0.0, 0.0))[0] for u in up[v]]
                else:  # at the ports it feeds
                    ks = [pos[w] + frac.get((v, w), (0.0, 0.0))[1] for w in down[v]]
                return (sum(ks) / len(ks) if ks else pos[v], pos[v])

            layer.sort(key=key)
            for i, v in enumerate(layer):
                pos[v] = i
        c = _crossings(layers, down, pos, frac)
        if c < best_c:
            best_c, best, stale = c, [list(layer) for layer in layers], 0
        else:
            stale += 1
    return best


def _brandes_koepf(layers: list[list[int]], up: list[list[int]], down: list[list[int]],
                   sep: Callable[[int, int], float], lext: list[float],
                   rext: list[float], real: list[bool]) -> list[float]:
    """x of every node: "Fast and Simple Horizontal Coordinate Assignment" (2001)."""
    total = len(up)
    order = [0] * total
    for layer in layers:
        for i, v in enumerate(layer):
            order[v] = i
    conflicts: set[tuple[int, int]] = set()  # (upper, lower): crosses an inner segment
    for r in range(1, len(layers)):
        prev, layer = layers[r - 1], layers[r]
        k0 = scan = 0
        for i, v in enumerate(layer):
            inner = up[v][0] if not real[v] and up[v] and not real[up[v][0]] else None
            k1 = order[inner] if inner is not None else len(prev)
            if inner is not None or i == len(layer) - 1:
                for s in layer[scan:i + 1]:
                    for u in up[s]:
                        if (order[u] < k0 or k1 < order[u]) and (real[u] or real[s]):
                            conflicts.add((u, s))
                scan, k0 = i + 1, k1

    variants = []
    for vert in "ud":
        vlayers = layers if vert == "u" else layers[::-1]
        near = up if vert == "u" else down
        for horiz in "lr":
            lay = vlayers if horiz == "l" else [layer[::-1] for layer in vlayers]
            pos = [0] * total
            for layer in lay:
                for i, v in enumerate(layer):
                    pos[v] = i
            root = list(range(total))
            align = list(range(total))
            for layer in lay:
                prev_idx = -1
                for v in layer:
                    ws = sorted(near[v], key=pos.__getitem__)
                    if not ws:
                        continue
                    mid = (len(ws) - 1) / 2
                    for i in range(int(mid), int(mid + 0.5) + 1):
                        w = ws[i]
                        if (align[v] == v and prev_idx < pos[w]
                                and (w, v) not in conflicts and (v, w) not in conflicts):
                            align[w] = v
                            align[v] = root[v] = root[w]
                            prev_idx = pos[w]
            # compaction over the graph of blocks, left neighbour -> right neighbour
            succ: dict[int, dict[int, float]] = {}
            pred: dict[int, dict[int, float]] = {}
            for layer in lay:
                for a, b in zip(layer, layer[1:]):
                    ra, rb = root[a], root[b]
                    gap = sep(a, b) if horiz == "l" else sep(b, a)
                    if succ.setdefault(ra, {}).get(rb, -1.0) < gap:
                        succ[ra][rb] = gap
                        pred.setdefault(rb, {})[ra] = gap
            blocks = [v for v in range(total) if root[v] == v]
            indeg = {b: len(pred.get(b, ())) for b in blocks}
            ready = [b for b in blocks if indeg[b] == 0]
            topo = []
            while ready:
                b = ready.pop()
                topo.append(b)
                for c in succ.get(b, ()):
                    indeg[c] -= 1
                    if indeg[c] == 0:
                        ready.append(c)
            bx = dict.fromkeys(blocks, 0.0)
            for b in topo:
                for a, gap in pred.get(b, {}).items():
                    bx[b] = max(bx[b], bx[a] + gap)
            for b in reversed(topo):
                right = succ.get(b)
                if right:
                    bx[b] = max(bx[b], min(bx[c] - gap for c, gap in right.items()))
            xs = [bx[root[v]] for v in range(total)]
            if horiz == "r":
                xs = [-x for x in xs]
            variants.append(xs)
    if not total:
        return []

    def span(xs: list[float]) -> float:
        return (max(x + rext[v] for v, x in enumerate(xs))
                - min(x - lext[v] for v, x in enumerate(xs)))

    smallest = min(variants, key=span)
    lo, hi = min(smallest), max(smallest)
    for k, xs in enumerate(variants):  # ul, ur, dl, dr: left ones to the left edge
        delta = lo - min(xs) if k % 2 == 0 else hi - max(xs)
        variants[k] = [x + delta for x in xs]
    out = []
    for v in range(total):
        four = sorted(xs[v] for xs in variants)
        out.append((four[1] + four[2]) / 2)
    return out


def _place(layer: list[int], want: list[float], weight: list[float],
           sep: list[float], x: list[float]) -> None:
    """Least-squares x for ``layer`` near ``want``, in order, at least ``sep`` apart."""
    offset = [0.0]
    for s in sep:
        offset.append(offset[-1] + s)
    blocks: list[list[float]] = []  # [weight, weighted sum, count]
    for i, v in enumerate(layer):
        w = weight[v]
        blocks.append([w, w * (want[i] - offset[i]), 1])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][0] >= blocks[-1][1] / blocks[-1][0]:
            w2, s2, c2 = blocks.pop()
            blocks[-1][0] += w2
            blocks[-1][1] += s2
            blocks[-1][2] += c2
    i = 0
    for w, s, c in blocks:
        value = s / w
        for _ in range(int(c)):
            x[layer[i]] = value + offset[i]
            i += 1


def _spread(k: int, j: int, w: float, step: float) -> float:
    """The offset of port ``j`` of ``k`` on a box ``w`` wide, ``step`` apart at most."""
    if k <= 1:
        return 0.0
    step = min(step, (w - 16) / (k - 1)) if w > 16 else 0.0
    return (j - (k - 1) / 2) * step


def layout(sizes: list[tuple[float, float]], edges: list[Edge], *,
           labels: dict[tuple[int, int], float] | None = None,
           budget: float = 2.0) -> Drawing:
    """Lay out ``len(sizes)`` boxes (width, height) joined by ``edges``.

    ``labels`` maps (node, output) to the width of a label drawn under the
    node, right of that output's port (one row each, by output index); they
    are kept clear of the next box.  ``budget`` bounds the seconds spent
    reducing crossings.
    """
    n = len(sizes)
    labels = labels or {}
    succ: list[list[int]] = [[] for _ in range(n)]
    pred: list[list[int]] = [[] for _ in range(n)]
    pairs: dict[tuple[int, int], list[Edge]] = {}
    for e in edges:
        if e.src == e.dst:
            continue
        if (e.src, e.dst) not in pairs:
            pairs[(e.src, e.dst)] = []
            succ[e.src].append(e.dst)
            pred[e.dst].append(e.src)
        pairs[(e.src, e.dst)].append(e)
    order, rank = ranks_of(n, succ, pred)

    # ports: an output with an edge or a label; an argument position
    width = [float(w) for w, _ in sizes]
    outs: list[list[int]] = [[] for _ in range(n)]
    ins: list[list[int]] = [[] for _ in range(n)]
    for e in edges:
        if e.out not in outs[e.src]:
            outs[e.src].append(e.out)
        if e.pos not in ins[e.dst]:
            ins[e.dst].append(e.pos)
    for v, out in labels:
        if out not in outs[v]:
            outs[v].append(out)
    for ports in outs + ins:
        ports.sort()

    def out_dx(v: int, out: int) -> float:
        return _spread(len(outs[v]), outs[v].index(out), width[v], 16.0)

    def in_dx(v: int, pos: int) -> float:
        return _spread(len(ins[v]), ins[v].index(pos), width[v], 22.0)

    def frac(ports: list[int], p: int) -> float:
        return (ports.index(p) - (len(ports) - 1) / 2) / len(ports) if len(ports) > 1 else 0.0

    label_rows: list[Label] = []
    rows_below = [0] * n
    lext = [w / 2 for w in width]
    rext = [w / 2 for w in width]
    for v in range(n):  # rows under the node, right of its rightmost port
        dx = out_dx(v, outs[v][-1]) if outs[v] else 0.0
        row = 0
        for out in outs[v]:
            if (v, out) in labels:
                label_rows.append(Label(v, out, dx, row))
                rext[v] = max(rext[v], dx + 5 + labels[(v, out)])
                row += 1
        rows_below[v] = row

    # dummies: ids n.. , one per rank an edge crosses
    node_rank = list(rank)
    up: list[list[int]] = [[] for _ in range(n)]
    down: list[list[int]] = [[] for _ in range(n)]
    chain: dict[tuple[int, int], list[int]] = {}
    seg_frac: dict[tuple[int, int], tuple[float, float]] = {}
    for (u, v), es in pairs.items():
        if rank[u] >= rank[v]:
            continue
        fo = sum(frac(outs[u], e.out) for e in es) / len(es)
        fi = sum(frac(ins[v], e.pos) for e in es) / len(es)
        prev, ids = u, []
        for r in range(rank[u] + 1, rank[v]):
            d = len(node_rank)
            node_rank.append(r)
            lext.append(DUMMY_WIDTH / 2)
            rext.append(DUMMY_WIDTH / 2)
            up.append([prev])
            down.append([])
            down[prev].append(d)
            seg_frac[(prev, d)] = (fo if prev == u else 0.0, 0.0)
            ids.append(d)
            prev = d
        down[prev].append(v)
        up[v].append(prev)
        seg_frac[(prev, v)] = (fo if prev == u else 0.0, fi)
        chain[(u, v)] = ids
    total = len(node_rank)
    real = [v < n for v in range(total)]
    depth = max(node_rank, default=-1) + 1
    layers: list[list[int]] = [[] for _ in range(depth)]

    # a depth-first start keeps each branch together
    placed = [False] * total
    stack = [v for v in reversed(order) if not up[v]]
    while stack:
        v = stack.pop()
        if placed[v]:
            continue
        placed[v] = True
        layers[node_rank[v]].append(v)
        stack.extend(reversed([s for s in down[v] if not placed[s]]))
    for v in range(total):
        if not placed[v]:
            layers[node_rank[v]].append(v)

    layers = _order(layers, up, down, seg_frac, budget)

    # x: Brandes-Koepf, then each rank's order and spacing enforced exactly
    def sep(a: int, b: int) -> float:  # a left of b
        return rext[a] + lext[b] + (NODE_GAP if real[a] and real[b] else DUMMY_GAP)

    x = _brandes_koepf(layers, up, down, sep, lext, rext, real)
    ones = [1.0] * total
    for layer in layers:
        _place(layer, [x[v] for v in layer], ones, [sep(a, b) for a, b in zip(layer, layer[1:])],
               x)
    left = min((x[v] - lext[v] for v in range(total)), default=0.0)
    for v in range(total):
        x[v] += MARGIN - left
    right = max((x[v] + rext[v] for v in range(total)), default=0.0)

    # y: ranks top to bottom, each followed by its nodes' label rows
    heights = [float(h) for _, h in sizes]
    rank_height = [0.0] * depth
    rows = [0] * depth
    for v in range(n):
        r = rank[v]
        rank_height[r] = max(rank_height[r], heights[v])
        rows[r] = max(rows[r], rows_below[v])
    rank_gap = [RANK_GAP + LABEL_LINE * k for k in rows]
    for r in range(depth):
        rank_height[r] = rank_height[r] or 20.0
    rank_top = []
    y0 = MARGIN
    for r in range(depth):
        rank_top.append(y0)
        y0 += rank_height[r] + rank_gap[r]
    bottom = (y0 - RANK_GAP + MARGIN) if depth else 2 * MARGIN

    routes = []
    for e in edges:
        dummies = [(x[d], node_rank[d]) for d in chain.get((e.src, e.dst), [])]
        routes.append(Route(e, out_dx(e.src, e.out), in_dx(e.dst, e.pos), dummies))
    drawing = Drawing(x=x[:n], y=[rank_top[rank[v]] for v in range(n)], w=width,
                      h=heights, rank=rank, rank_top=rank_top, rank_height=rank_height,
                      rank_gap=rank_gap, routes=routes, labels=label_rows,
                      width=right + MARGIN, height=bottom)
    for route in routes:
        route.points = points(drawing, route)
    return drawing


def points(d: Drawing, route: Route) -> list[tuple[float, float]]:
    """The route's polyline: source port, the top and bottom of each dummy, target port."""
    e = route.edge
    pts = [(d.x[e.src] + route.out_dx, d.y[e.src] + d.h[e.src])]
    for x, r in route.dummies:
        pts.append((x, d.rank_top[r]))
        pts.append((x, d.rank_top[r] + d.rank_height[r]))
    pts.append((d.x[e.dst] + route.in_dx, d.y[e.dst]))
    return pts


def path_data(pts: list[tuple[float, float]]) -> str:
    """An SVG path through ``pts``: vertical-tangent curves, straight where vertical."""
    if not pts:
        return ""
    out = [f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if abs(x1 - x0) < 0.5:
            out.append(f"L{x1:.1f},{y1:.1f}")
        else:
            my = (y0 + y1) / 2
            out.append(f"C{x0:.1f},{my:.1f} {x1:.1f},{my:.1f} {x1:.1f},{y1:.1f}")
    return "".join(out)
