"""Register-blocked XOR-popcount micro-kernels, written as LLVM vector IR for numba.

    out[b + r, n + c] = K − 2 · Σ_j popcount(x[b + r, j] XOR w[n + c, j])

Two block shapes, both with one 512-bit accumulator (``<8 x i64>``) per eight outputs or
per output kept in registers over the whole row:

- :func:`xor_popcount_outer_block` (the dense kernel's main block): R input rows × 8·V
  weight rows from a *transposed* weight tile; each step broadcasts one input word to the
  eight lanes and XORs it with word j of eight weight rows, so every lane is one output:
  no horizontal sum, no tail step, any number of words.
- :func:`xor_popcount_block` (small batches, untransposed weights): R input rows × C weight
  rows, eight consecutive words of a row per step. A row of J ≥ 8 words is ⌊J/8⌋ full steps
  plus, when 8 ∤ J, one step over its *last* eight words with the lanes already counted
  masked off (no load past the row; J < 8 is padded by the caller); C = 8 sums its eight
  accumulators with a transposing add tree (three levels of interleave + add, the eight
  sums in one vector in output order), other C one horizontal sum per output.

The vector type is written out instead of left to the loop vectoriser, which on Intel
targets prefers 256-bit vectors (and a scalar tail for short rows): on a CPU with
AVX512_VPOPCNTDQ LLVM lowers ``llvm.ctpop.v8i64`` to one ``VPOPCNTQ zmm``; elsewhere it
splits the vector (AVX2: nibble-table popcounts), with the same results. Every block
stores K − 2·s as int32. Arrays are C-contiguous: x (B, J) and w (N, J) or the tile (J, T)
uint64, out (B, N) int32.
"""

from __future__ import annotations

import functools

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["LANES", "xor_popcount_block", "xor_popcount_outer_block"]

LANES = 8
"""64-bit words per vector step."""

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_VECTOR = ir.VectorType(_I64, LANES)
_RESULT = ir.VectorType(_I32, LANES)


def _call(builder: ir.IRBuilder, name: str, result: ir.Type, *values: ir.Value) -> ir.Value:
    function = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(result, [v.type for v in values]), name)
    return builder.call(function, list(values))


def _splat(builder: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """<8 x i64> with every lane ``value``."""
    lane = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), value, _I32(0))
    return _shuffle(builder, lane, ir.Constant(_VECTOR, ir.Undefined), [0] * LANES)


def _shuffle(builder: ir.IRBuilder, a: ir.Value, b: ir.Value, lanes: list[int]) -> ir.Value:
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, len(lanes)), lanes))


def _transposed_sums(builder: ir.IRBuilder, vectors: list[ir.Value]) -> ir.Value:
    """v with v[c] = Σ_lanes vectors[c] for eight vectors: interleave-and-add, 3 levels."""
    level = vectors
    for step in (1, 2, 4):
        # pair k of this level: lanes in blocks of `step`, even blocks from a, odd from b
        low = [i + (LANES if (i // step) % 2 else 0) - (step if (i // step) % 2 else 0)
               for i in range(LANES)]
        high = [i + (LANES if (i // step) % 2 else 0) + (0 if (i // step) % 2 else step)
                for i in range(LANES)]
        level = [builder.add(_shuffle(builder, level[k], level[k + 1], low),
                             _shuffle(builder, level[k], level[k + 1], high))
                 for k in range(0, len(level), 2)]
    return level[0]


def _codegen(rows: int, columns: int):
    def codegen(context, builder, signature, args):
        x_type, w_type, out_type = signature.args[:3]
        x = context.make_array(x_type)(context, builder, args[0])
        w = context.make_array(w_type)(context, builder, args[1])
        out = context.make_array(out_type)(context, builder, args[2])
        b, n, features = args[3], args[4], args[5]
        words = builder.extract_value(x.shape, 1)
        width = builder.extract_value(out.shape, 1)
        x_rows = [builder.gep(x.data, [builder.mul(builder.add(b, _I64(r)), words)]) for r in range(rows)]
        w_rows = [builder.gep(w.data, [builder.mul(builder.add(n, _I64(c)), words)]) for c in range(columns)]
        zero = ir.Constant(_VECTOR, [0] * LANES)
        sums = [[cgutils.alloca_once_value(builder, zero) for _ in range(columns)] for _ in range(rows)]

        def load(row: ir.Value, offset: ir.Value, mask: ir.Value | None) -> ir.Value:
            pointer = builder.bitcast(builder.gep(row, [offset]), _VECTOR.as_pointer())
            vector = builder.load(pointer, align=8)
            return vector if mask is None else builder.and_(vector, mask)

        def accumulate(offset: ir.Value, mask: ir.Value | None = None) -> None:
            inputs = [load(x_rows[r], offset, mask) for r in range(rows)]
            for c in range(columns):
                weights = load(w_rows[c], offset, mask)
                for r in range(rows):
                    counts = _call(builder, "llvm.ctpop.v8i64", _VECTOR, builder.xor(inputs[r], weights))
                    builder.store(builder.add(builder.load(sums[r][c]), counts), sums[r][c])

        full_steps = builder.udiv(words, _I64(LANES))
        with cgutils.for_range(builder, full_steps) as loop:
            accumulate(builder.mul(loop.index, _I64(LANES)))
        tail = builder.urem(words, _I64(LANES))
        with builder.if_then(builder.icmp_unsigned("!=", tail, _I64(0)), likely=False):
            # the row's last eight words; the first 8 − tail of them were counted above
            counted = builder.sub(_I64(LANES), tail)
            lanes = ir.Constant(_VECTOR, list(range(LANES)))
            keep = builder.sext(builder.icmp_unsigned(">=", lanes, _splat(builder, counted)), _VECTOR)
            accumulate(builder.sub(words, _I64(LANES)), keep)

        for r in range(rows):
            start = builder.add(builder.mul(builder.add(b, _I64(r)), width), n)
            target = builder.gep(out.data, [start])
            if columns == LANES:
                total = _transposed_sums(builder, [builder.load(s) for s in sums[r]])
                doubled = builder.shl(total, ir.Constant(_VECTOR, [1] * LANES))
                value = builder.trunc(builder.sub(_splat(builder, features), doubled), _RESULT)
                builder.store(value, builder.bitcast(target, _RESULT.as_pointer()), align=4)
            else:
                for c in range(columns):
                    total = _call(builder, "llvm.vector.reduce.add.v8i64", _I64, builder.load(sums[r][c]))
                    value = builder.trunc(builder.sub(features, builder.shl(total, _I64(1))), _I32)
                    builder.store(value, builder.gep(target, [_I64(c)]))
        return context.get_dummy_value()

    return codegen


def _outer_codegen(rows: int, vectors: int):
    def codegen(context, builder, signature, args):
        x_type, t_type, out_type = signature.args[:3]
        x = context.make_array(x_type)(context, builder, args[0])
        tile = context.make_array(t_type)(context, builder, args[1])
        out = context.make_array(out_type)(context, builder, args[2])
        b, column, n, features = args[3], args[4], args[5], args[6]
        words = builder.extract_value(x.shape, 1)
        tile_width = builder.extract_value(tile.shape, 1)
        width = builder.extract_value(out.shape, 1)
        x_rows = [builder.gep(x.data, [builder.mul(builder.add(b, _I64(r)), words)]) for r in range(rows)]
        zero = ir.Constant(_VECTOR, [0] * LANES)
        sums = [[cgutils.alloca_once_value(builder, zero) for _ in range(vectors)] for _ in range(rows)]
        with cgutils.for_range(builder, words) as loop:
            j = loop.index
            start = builder.add(builder.mul(j, tile_width), column)
            pointers = [builder.gep(tile.data, [builder.add(start, _I64(LANES * v))]) for v in range(vectors)]
            weights = [builder.load(builder.bitcast(p, _VECTOR.as_pointer()), align=8) for p in pointers]
            for r in range(rows):
                word = _splat(builder, builder.load(builder.gep(x_rows[r], [j])))
                for v in range(vectors):
                    counts = _call(builder, "llvm.ctpop.v8i64", _VECTOR, builder.xor(word, weights[v]))
                    builder.store(builder.add(builder.load(sums[r][v]), counts), sums[r][v])
        for r in range(rows):
            row_start = builder.add(builder.mul(builder.add(b, _I64(r)), width), n)
            for v in range(vectors):
                doubled = builder.shl(builder.load(sums[r][v]), ir.Constant(_VECTOR, [1] * LANES))
                value = builder.trunc(builder.sub(_splat(builder, features), doubled), _RESULT)
                target = builder.gep(out.data, [builder.add(row_start, _I64(LANES * v))])
                builder.store(value, builder.bitcast(target, _RESULT.as_pointer()), align=4)
        return context.get_dummy_value()

    return codegen


def _is_c_array(value, dtype) -> bool:
    return isinstance(value, types.Array) and value.ndim == 2 and value.layout == "C" and value.dtype == dtype


@functools.cache
def xor_popcount_block(rows: int, columns: int):
    """The numba intrinsic ``block(x, w, out, b, n, K)`` writing out[b:b+rows, n:n+columns].

    Args (of the intrinsic): x (B, J) and w (N, J) C-contiguous uint64 with J ≥ 8 words
    (padding bits 0); out (B, N) C-contiguous int32; b, n, K int64 with b + rows ≤ B and
    n + columns ≤ N (not checked: the caller's loops guarantee them).
    ``columns`` is 8 (sums by the transposing tree, one vector store) or any count ≤ 8
    (one horizontal sum per output).
    """
    if not 1 <= rows <= 8 or not 1 <= columns <= LANES:
        raise ValueError(f"block sizes must be in 1..8, got {rows} x {columns}")

    @intrinsic
    def block(typingctx, x, w, out, b, n, features):
        if not (_is_c_array(x, types.uint64) and _is_c_array(w, types.uint64)
                and _is_c_array(out, types.int32)):
            return None
        return types.none(x, w, out, types.int64, types.int64, types.int64), _codegen(rows, columns)

    return block


@functools.cache
def xor_popcount_outer_block(rows: int, vectors: int):
    """The numba intrinsic ``block(x, tile, out, b, column, n, K)`` writing
    out[b:b+rows, n:n+8·vectors] from a transposed weight tile, one output per lane:

        out[b + r, n + i] = K − 2 · Σ_j popcount(x[b + r, j] XOR tile[j, column + i])

    Each step broadcasts one input word to all eight lanes and XORs it with eight weight
    rows' words at once, so the accumulators need no horizontal sum and a row of any number
    of words has no tail step. Args (of the intrinsic): x (B, J) uint64, tile (J, T) uint64
    (tile[j, i] = w[n_tile + i, j]), out (B, N) int32, all C-contiguous; b, column, n, K int64
    with b + rows ≤ B, column + 8·vectors ≤ T, n + 8·vectors ≤ N (the caller's loops).
    """
    if not 1 <= rows <= 8 or not 1 <= vectors <= 4:
        raise ValueError(f"block sizes must be rows in 1..8 and vectors in 1..4, got {rows} x {vectors}")

    @intrinsic
    def block(typingctx, x, tile, out, b, column, n, features):
        if not (_is_c_array(x, types.uint64) and _is_c_array(tile, types.uint64)
                and _is_c_array(out, types.int32)):
            return None
        return (types.none(x, tile, out, types.int64, types.int64, types.int64, types.int64),
                _outer_codegen(rows, vectors))

    return block
