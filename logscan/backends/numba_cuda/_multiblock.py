"""Carry between blocks for the textbook tile kernels (any T, not only one block).

Summary of algorithm
--------------------
1. The tile kernel scans each tile of ``BLOCK`` steps on its own (the
   initial state folded into ``t = 0``), writing the tile-local prefix pairs
   (``b`` part into ``out``, ``a`` part into the workspace) and each tile's
   total pair into ``agg_a, agg_b`` of shape ``(outer, tiles, inner)``.
2. carry between blocks: the tile totals are themselves a recurrence; the
   same method scans them (recursively, so T up to ``BLOCK**levels``), which
   gives the state at the end of every tile.
3. fix-up (this kernel): every element of tile ``j >= 1`` applies its local
   prefix pair to the state at the end of tile ``j - 1``.

The fix-up grid is 1-D over the ``outer*(T - BLOCK)*inner`` elements past the
first tile, ``inner`` fastest (coalesced), with int64 indices and a
grid-stride loop, so the grid size stays within limits for any size.
"""

from __future__ import annotations

from ._elementwise import grid_stride, split_index


def make_fixup(space):
    """Kernel ``(local_a, out, states, outer, T, inner, block)``."""
    apply = space.apply

    def tile_fixup(local_a, out, states, outer, T, inner, block):
        rest = T - block
        n = outer * rest * inner
        e, step = grid_stride()
        while e < n:
            o, past_first, i = split_index(e, rest, inner)
            t = block + past_first
            j = t // block
            out[o, t, i] = apply(local_a[o, t, i], out[o, t, i], states[o, j - 1, i])
            e += step

    return tile_fixup
